//! Fuzzes the HTTP/1 request-head checks the proxy runs on bytes as they arrive (request
//! line, framing headers): no panic, and the same verdict however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_proxy::fuzzing::head_scan(data);
});

//! Fuzzes what the proxy reads first from the network: TLS ClientHello and HTTP request-line
//! inspection, and request path normalization.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_proxy::fuzzing::inspect_and_normalize(data);
});

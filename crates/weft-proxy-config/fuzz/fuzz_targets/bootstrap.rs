//! Fuzzes bootstrap parsing and conversion: arbitrary input must give a verdict, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_proxy_config::fuzzing::parse_and_convert(data);
});

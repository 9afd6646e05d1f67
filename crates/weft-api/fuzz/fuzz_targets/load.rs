//! Fuzzes the configuration loader: arbitrary bytes must never panic it, and every resource it
//! decodes must round-trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_api::load::fuzz::check_bytes(data);
});

//! Fuzzes translation: whatever Istio configuration loads and validates, translating it for
//! any proxy must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_xds::fuzzing::translate_bytes(data);
});

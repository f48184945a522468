//! Fuzz target: `fuzzing::client_request` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::client_request(data));

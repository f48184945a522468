//! Fuzz target: `fuzzing::peer_message` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::peer_message(data));

//! Fuzz target: `fuzzing::snapshot_stream` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::snapshot_stream(data));

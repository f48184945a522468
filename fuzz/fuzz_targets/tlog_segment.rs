//! Fuzz target: `fuzzing::tlog_segment` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::tlog_segment(data));

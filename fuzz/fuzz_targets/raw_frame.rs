//! cargo-fuzz target: the properties of `edgeseg::fuzzing::raw_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeseg::fuzzing::raw_frame(data));

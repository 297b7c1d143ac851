//! cargo-fuzz target: the properties of `edgeseg::fuzzing::compressed_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeseg::fuzzing::compressed_frame(data));

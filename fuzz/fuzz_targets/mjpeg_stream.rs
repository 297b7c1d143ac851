//! cargo-fuzz target: the properties of `edgeseg::fuzzing::mjpeg_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeseg::fuzzing::mjpeg_stream(data));

//! Fuzz target `onnx_meta`: an ONNX file's metadata, shapes and the graph the load-time rewrites walk
//! (`edgeseg::input_checks::onnx_meta`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeseg::input_checks::onnx_meta(data));

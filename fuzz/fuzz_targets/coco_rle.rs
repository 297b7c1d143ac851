//! Fuzz target `coco_rle`: a COCO ground-truth file and its RLE masks
//! (`edgeseg::input_checks::coco_rle`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeseg::input_checks::coco_rle(data));

//! Int8 execution of QDQ models against onnxruntime, on a hand-built model whose
//! per-channel weight scales span three orders of magnitude (tests/models, written by
//! scripts/make_perchannel_test_model.py): a runtime that reads one scale per tensor,
//! or rounds differently from QuantizeLinear, is far off here.

use edgeseg::model::graph_stats::graph_stats;
use edgeseg::model::{MetaOverrides, Model};
use std::path::PathBuf;
use tract_onnx::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(root().join("tests/models").join(name)).unwrap();
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn run(threads: usize) -> (Model, Vec<f32>) {
    let model = Model::load_with_threads(&root().join("tests/models/perchannel_qdq.onnx"), &MetaOverrides::default(), threads).unwrap();
    let input = tract_ndarray::Array4::from_shape_vec((1, 3, 20, 20), read_f32("perchannel_qdq.input.f32")).unwrap().into_tensor();
    let out = model.run(input).unwrap();
    let y = out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
    (model, y)
}

/// The output's quantization step: the smallest gap between distinct values.
fn step(values: &[f32]) -> f32 {
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    v.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 1e-7).fold(f32::INFINITY, f32::min)
}

#[test]
fn every_convolution_is_int8() {
    let (model, _) = run(1);
    assert_eq!(model.int8.fused, 5, "{:?}", model.int8.skipped);
    assert!(model.int8.skipped.is_empty());
    let stats = graph_stats(model.graph());
    assert_eq!(stats.compute_precision(), "int8", "{stats:?}");
    assert_eq!(stats.int8_compute_ops, 5);
}

#[test]
fn per_channel_model_matches_onnxruntime() {
    let (_, ours) = run(1);
    for reference in ["perchannel_qdq.ort_noopt.f32", "perchannel_qdq.ort.f32"] {
        let theirs = read_f32(reference);
        assert_eq!(ours.len(), theirs.len());
        let q = step(&theirs);
        let exact = ours.iter().zip(&theirs).filter(|(a, b)| (*a - *b).abs() <= q * 1e-3).count();
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // Both compute the same integers; a value may land one output step apart where
        // a product of scales rounds to the other side of a half (the two requantize in
        // a different order), nothing more.
        assert!(worst <= 1.01 * q, "{reference}: largest difference {worst} is over one step {q}");
        assert!(exact as f64 >= 0.97 * theirs.len() as f64, "{reference}: only {exact} of {} values equal", theirs.len());
    }
}

#[test]
fn threads_do_not_change_a_value() {
    let (_, one) = run(1);
    let (_, two) = run(2);
    assert_eq!(one, two);
}

//! The uint8 codes that int8 convolutions hand each other (src/model/qdq/channels.rs)
//! change no value: every committed int8 model gives bit-identical outputs with them
//! and with `EDGESEG_CODES=off` (float tensors between all convolutions).
//!
//! One test in its own binary: it sets the environment variable, which other tests
//! running in parallel threads would otherwise see.

use edgeseg::model::{MetaOverrides, Model};
use std::path::PathBuf;
use tract_onnx::prelude::*;

fn outputs(stem: &str, codes: bool) -> (usize, Vec<Vec<u32>>) {
    // Safety (edition 2021: set_var is safe, but racy): this binary has one test, so no
    // other thread reads the environment meanwhile.
    std::env::set_var("EDGESEG_CODES", if codes { "on" } else { "off" });
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("models/{stem}.onnx"));
    let model = Model::load(&path, &MetaOverrides::default()).expect("committed model loads");
    let [n, c, h, w] = model.input_shape;
    // A deterministic input with structure at every scale: gradients, stripes and noise.
    let mut state = 12345u32;
    let input = tract_ndarray::Array4::from_shape_fn((n, c, h, w), |(_, ch, y, x)| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = (state >> 8) as f32 / (1u32 << 24) as f32;
        ((x as f32 / w as f32) * 0.6 + ((y / 7 + ch) % 3) as f32 * 0.15 + noise * 0.25 - 0.5) * 2.0
    });
    let out = model.run(input.into_tensor()).expect("model runs");
    let values = out.iter().map(|t| t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()).collect();
    (model.int8.code_edges, values)
}

#[test]
fn codes_between_convolutions_give_the_same_outputs() {
    for stem in ["unet_defects_int8", "deeplabv3plus_defects_int8", "yolov8n_seg_defects_int8"] {
        let (edges, with) = outputs(stem, true);
        let (none, without) = outputs(stem, false);
        assert!(edges > 0, "{stem}: no convolution hands codes on");
        assert_eq!(none, 0, "{stem}: EDGESEG_CODES=off still marked {none} edges");
        assert_eq!(with.len(), without.len());
        for (i, (a, b)) in with.iter().zip(&without).enumerate() {
            let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert_eq!(differ, 0, "{stem}: output {i}: {differ} of {} values differ", a.len());
        }
    }
}

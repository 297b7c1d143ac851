//! `F32ConvSpec` against a direct float convolution (accumulated in f64), for
//! strides, dilations, asymmetric pads, tile tails, fused Concat inputs,
//! depthwise with a channel multiplier and the fused activations.

use super::op::{F32ConvParts, F32ConvSpec};
use crate::model::qdq::geometry::ConvAttrs;
use crate::model::qdq::op::{Channels, Epilogue};
use crate::model::qdq::op_tests::{direct_output_size, direct_terms, Lcg};

/// The ONNX definition, computed directly; also the sum of |terms| per output (the rounding scale).
fn reference(p: &F32ConvParts, cin: usize, hw: [usize; 2], x: &[f32]) -> (Vec<f32>, Vec<f64>) {
    let a = &p.attrs;
    let [cout, cin_g, kh, kw] = p.weight_shape;
    assert_eq!(cin, cin_g * a.group);
    let [ho, wo] = direct_output_size(a, hw, [kh, kw]);
    let (mut y, mut mag) = (vec![0f32; cout * ho * wo], vec![0f64; cout * ho * wo]);
    for co in 0..cout {
        for oy in 0..ho {
            for ox in 0..wo {
                let (mut acc, mut m) = (f64::from(p.bias[co]), f64::from(p.bias[co]).abs());
                direct_terms(a, hw, [kh, kw], cin_g, cout / a.group, [co, oy, ox], |xi, wi| {
                    let term = f64::from(x[xi]) * f64::from(p.weights[wi]);
                    acc += term;
                    m += term.abs();
                });
                let i = (co * ho + oy) * wo + ox;
                y[i] = p.epilogue.apply(acc as f32);
                mag[i] = m;
            }
        }
    }
    (y, mag)
}

fn check(attrs: ConvAttrs, cin: usize, cout: usize, hw: [usize; 2], epilogue: Epilogue, split: Option<usize>) {
    if crate::linalg::kernels().f32conv.is_none() {
        eprintln!("this CPU's kernel set has no float convolutions: they are not used here, nothing to test");
        return;
    }
    let mut rng = Lcg(cin as u32 * 7919 + cout as u32 * 31 + hw[0] as u32);
    let [kh, kw] = attrs.kernel;
    let cin_g = cin / attrs.group;
    let weights: Vec<f32> = (0..cout * cin_g * kh * kw).map(|_| rng.unit()).collect();
    let bias: Vec<f32> = (0..cout).map(|_| rng.unit()).collect();
    let x: Vec<f32> = (0..cin * hw[0] * hw[1]).map(|_| 2.0 * rng.unit()).collect();
    let parts = F32ConvParts { attrs: attrs.clone(), weights: &weights, weight_shape: [cout, cin_g, kh, kw], bias: &bias, epilogue };
    let spec = F32ConvSpec::new(&parts, cin, hw).unwrap();
    let shape = spec.output_shape(1);
    let mut y = vec![f32::NAN; shape[1] * shape[2] * shape[3]];
    let plane = hw[0] * hw[1];
    let channels = match split {
        Some(at) => Channels::parts(&[&x[..at * plane], &x[at * plane..]], plane),
        None => Channels::single(&x, plane),
    };
    spec.run(&channels, &mut y);
    let (want, mag) = reference(&parts, cin, hw, &x);
    assert_eq!(y.len(), want.len());
    for (i, ((&got, &want), &m)) in y.iter().zip(&want).zip(&mag).enumerate() {
        // f32 sums in another order: a few ulps of the terms' magnitude (SiLU's exp adds a few
        // more; Winograd's transforms, for 3×3 stride-1 convolutions, some tens more).
        let winograd = crate::model::fconv::winograd::applies(&attrs, cin, cout, spec.output_shape(1)[2..].try_into().unwrap());
        let tol = 1e-5 * m.max(1.0) as f32 * if epilogue.silu { 4.0 } else { 1.0 } * if winograd { 30.0 } else { 1.0 };
        assert!((got - want).abs() <= tol, "{attrs:?} {cin}->{cout} {hw:?} {epilogue:?}: output {i} is {got}, want {want} (tolerance {tol})");
    }
}

fn attrs(group: usize, k: usize, s: usize, d: usize, pads: [usize; 4]) -> ConvAttrs {
    ConvAttrs { group, kernel: [k, k], strides: [s, s], dilations: [d, d], pads }
}

#[test]
fn dense_convolutions_match_the_definition() {
    let none = Epilogue::default();
    check(attrs(1, 3, 1, 1, [1; 4]), 5, 13, [9, 37], none, None);
    check(attrs(1, 3, 2, 1, [1, 0, 1, 2]), 3, 16, [17, 15], none, None);
    check(attrs(1, 1, 1, 1, [0; 4]), 20, 8, [4, 70], Epilogue { relu: true, ..none }, None);
    check(attrs(1, 3, 1, 2, [2; 4]), 6, 9, [11, 12], Epilogue { silu: true, ..none }, None);
    check(attrs(1, 5, 2, 1, [2; 4]), 4, 7, [13, 21], Epilogue { hardswish: Some((1.0 / 6.0, 0.5)), ..none }, None);
    check(attrs(1, 1, 1, 1, [0; 4]), 1, 3, [1, 1], none, None);
    // One panel of a 1×1 conv on whole tiles: read in place.
    check(attrs(1, 1, 1, 1, [0; 4]), 12, 5, [8, 40], Epilogue { relu: true, ..none }, None);
}

#[test]
fn winograd_convolutions_match_the_definition() {
    let none = Epilogue::default();
    // Whole and partial tiles, asymmetric pads, unpadded, a fused concat, the activations.
    check(attrs(1, 3, 1, 1, [1; 4]), 8, 16, [16, 16], none, None);
    check(attrs(1, 3, 1, 1, [1, 0, 1, 2]), 9, 13, [19, 23], Epilogue { relu: true, ..none }, None);
    check(attrs(1, 3, 1, 1, [0; 4]), 12, 8, [11, 70], Epilogue { silu: true, ..none }, None);
    check(attrs(1, 3, 1, 1, [1; 4]), 16, 24, [37, 9], Epilogue { hardswish: Some((1.0 / 6.0, 0.5)), ..none }, Some(5));
    // Enough tiles for several chunks.
    check(attrs(1, 3, 1, 1, [1; 4]), 8, 8, [96, 130], none, None);
}

#[test]
fn a_fused_concat_reads_both_inputs() {
    check(attrs(1, 3, 1, 1, [1; 4]), 7, 10, [8, 33], Epilogue { relu: true, ..Epilogue::default() }, Some(3));
    // A conv that reads a one-tensor input in place copies a concatenated one.
    check(attrs(1, 1, 1, 1, [0; 4]), 9, 4, [4, 16], Epilogue::default(), Some(5));
}

#[test]
fn depthwise_convolutions_match_the_definition() {
    let none = Epilogue::default();
    check(attrs(8, 3, 1, 1, [1; 4]), 8, 8, [10, 70], none, None);
    check(attrs(6, 3, 2, 1, [1, 1, 0, 0]), 6, 12, [15, 9], Epilogue { relu: true, ..none }, None);
    check(attrs(4, 3, 1, 3, [3; 4]), 4, 4, [12, 20], Epilogue { hardswish: Some((0.2, 0.5)), ..none }, None);
}

#[test]
fn a_depthwise_convolution_reads_a_fused_concat() {
    check(attrs(7, 3, 1, 1, [1; 4]), 7, 7, [9, 40], Epilogue::default(), Some(3));
    check(attrs(6, 3, 2, 1, [1; 4]), 6, 12, [11, 21], Epilogue { relu: true, ..Epilogue::default() }, Some(4));
}

//! `Int8ConvSpec` against a naive convolution of the same quantized values, for
//! every geometry the kernels special-case: strides, dilations, asymmetric pads,
//! groups, depthwise with a channel multiplier, transposed, tile tails.

use super::channels::Part;
use super::geometry::ConvAttrs;
use super::op::{Channels, Epilogue, Int8ConvParts, Int8ConvSpec, QuantParams};
use super::pack::quantize;

/// A small deterministic generator for test data (the float convolution tests use it too).
pub(crate) struct Lcg(pub u32);

impl Lcg {
    pub fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }
    /// Uniform in [-1, 1].
    pub fn unit(&mut self) -> f32 {
        (self.next() % 20_001) as f32 / 10_000.0 - 1.0
    }
}

/// ONNX's output size of a convolution with `attrs` and a `kernel` on an `[h, w]` input.
pub(crate) fn direct_output_size(a: &ConvAttrs, [h, w]: [usize; 2], [kh, kw]: [usize; 2]) -> [usize; 2] {
    [(h + a.pads[0] + a.pads[2] - a.dilations[0] * (kh - 1) - 1) / a.strides[0] + 1, (w + a.pads[1] + a.pads[3] - a.dilations[1] * (kw - 1) - 1) / a.strides[1] + 1]
}

/// The products of one output value `[co, oy, ox]` of a direct convolution, as
/// `(input index, weight index)` pairs into `[cin, h, w]` inputs and `[cout, cin_g, kh, kw]`
/// weights; taps that fall in the padding are skipped (they multiply zero). The int8
/// and float references both sum these.
pub(crate) fn direct_terms(a: &ConvAttrs, [h, w]: [usize; 2], [kh, kw]: [usize; 2], cin_g: usize, cout_g: usize, [co, oy, ox]: [usize; 3], mut term: impl FnMut(usize, usize)) {
    let g = co / cout_g;
    for ci in 0..cin_g {
        for ky in 0..kh {
            for kx in 0..kw {
                let iy = (oy * a.strides[0] + ky * a.dilations[0]) as isize - a.pads[0] as isize;
                let ix = (ox * a.strides[1] + kx * a.dilations[1]) as isize - a.pads[1] as isize;
                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                    continue;
                }
                term(((g * cin_g + ci) * h + iy as usize) * w + ix as usize, ((co * cin_g + ci) * kh + ky) * kw + kx);
            }
        }
    }
}

struct Case {
    attrs: ConvAttrs,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    transpose: bool,
}

/// The QDQ definition, computed directly: quantize, subtract the zero point,
/// multiply-accumulate in i32 (padding contributes zero), scale, bias, epilogue.
fn reference(c: &Case, parts: &Int8ConvParts, x: &[f32]) -> Vec<f32> {
    let [h, w] = c.hw;
    let xq: Vec<i32> = x.iter().map(|&v| i32::from(quantize(v, parts.input.scale, f32::from(parts.input.zero_point))) - i32::from(parts.input.zero_point)).collect();
    let [_, w1, kh, kw] = parts.weight_shape;
    let scale = |co: usize| parts.input.scale * parts.weight_scales[if parts.weight_scales.len() == 1 { 0 } else { co }];
    let bias = |co: usize| parts.bias.map_or(0.0, |b| b[co]);
    if c.transpose {
        let (ho, wo) = (h * kh, w * kw);
        let mut y = vec![0f32; c.cout * ho * wo];
        for co in 0..c.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let (iy, ix, ky, kx) = (oy / kh, ox / kw, oy % kh, ox % kw);
                    let acc: i32 = (0..c.cin).map(|ci| xq[(ci * h + iy) * w + ix] * i32::from(parts.weights[((ci * w1 + co) * kh + ky) * kw + kx])).sum();
                    y[(co * ho + oy) * wo + ox] = parts.epilogue.apply(acc as f32 * scale(co) + bias(co));
                }
            }
        }
        return y;
    }
    let a = &c.attrs;
    let (cin_g, cout_g) = (c.cin / a.group, c.cout / a.group);
    assert_eq!(w1, cin_g);
    let [ho, wo] = direct_output_size(a, c.hw, [kh, kw]);
    let mut y = vec![0f32; c.cout * ho * wo];
    for co in 0..c.cout {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = 0i32;
                direct_terms(a, c.hw, [kh, kw], cin_g, cout_g, [co, oy, ox], |xi, wi| acc += xq[xi] * i32::from(parts.weights[wi]));
                y[(co * ho + oy) * wo + ox] = parts.epilogue.apply(acc as f32 * scale(co) + bias(co));
            }
        }
    }
    y
}

fn check(c: Case, seed: u32) {
    let mut rng = Lcg(seed);
    let [h, w] = c.hw;
    let [kh, kw] = c.attrs.kernel;
    let shape = if c.transpose { [c.cin, c.cout, kh, kw] } else { [c.cout, c.cin / c.attrs.group, kh, kw] };
    let weights: Vec<i8> = (0..shape.iter().product::<usize>()).map(|_| (rng.next() % 255) as i32 as i8).map(|v| v.max(-127)).collect();
    // Per-channel scales over three orders of magnitude: a per-tensor shortcut would fail.
    let scales: Vec<f32> = (0..c.cout).map(|i| 10f32.powi(-(i as i32 % 4)) * (0.5 + rng.unit().abs())).collect();
    let bias: Vec<f32> = (0..c.cout).map(|_| rng.unit()).collect();
    let x: Vec<f32> = (0..c.cin * h * w).map(|_| 2.0 * rng.unit()).collect();
    let rq = Some(QuantParams { scale: 0.05, zero_point: 100 });
    let mut epilogues = vec![
        Epilogue::default(),
        Epilogue { requantize: rq, relu: true, ..Default::default() },
        Epilogue { requantize: rq, hardswish: Some((1.0 / 6.0, 0.5)), ..Default::default() },
        Epilogue { requantize: rq, silu: true, ..Default::default() },
    ];
    // A QOperator SiLU (sigmoid rounded to codes first): only ever fused into plain
    // convolutions' requantizing epilogue (see `rewrite::quantized_silu_after`).
    if c.attrs.group == 1 && !c.transpose {
        epilogues.push(Epilogue { requantize: rq, silu: true, sigmoid_codes: Some(QuantParams { scale: 1.0 / 255.0, zero_point: 0 }), ..Default::default() });
    }
    for epilogue in epilogues {
        let parts = Int8ConvParts {
            attrs: c.attrs.clone(),
            transpose: c.transpose,
            input: QuantParams { scale: 2.0 / 255.0, zero_point: 127 },
            weights: &weights,
            weight_shape: shape,
            weight_scales: &scales,
            bias: Some(&bias),
            epilogue,
        };
        let spec = Int8ConvSpec::new(&parts, c.cin, c.hw).unwrap();
        let out = spec.output_shape(1);
        let mut y = vec![f32::NAN; out.iter().product()];
        let plane = c.hw[0] * c.hw[1];
        spec.run(&Channels::single(&x, plane), &mut y);
        // The same input in two tensors (a fused Concat) gives the same output.
        let split = c.cin / 2 * plane;
        let mut y2 = vec![f32::NAN; y.len()];
        spec.run(&Channels::parts(&[&x[..split], &x[split..]], plane), &mut y2);
        assert!(y.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()), "split input differs");
        if !c.transpose {
            check_codes(&c, &parts, &x, &y);
        }
        let want = reference(&c, &parts, &x);
        assert_eq!(y.len(), want.len());
        for (i, (a, b)) in y.iter().zip(&want).enumerate() {
            // SiLU's vector exp is a couple of ulps from libm's; everything else is exact.
            let close = if epilogue.silu { (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1e-30) } else { a == b };
            assert!(close, "{:?} cin {} cout {} {:?} transpose {} {epilogue:?}: element {i}: {a} vs {b}", c.attrs, c.cin, c.cout, c.hw, c.transpose);
        }
    }
}

/// Codes in and out (see `channels`) change no value: the input as the codes
/// its quantization gives, whole or in part, yields the same floats `y`; an
/// output stored as codes holds the quantization of those floats.
fn check_codes(c: &Case, parts: &Int8ConvParts, x: &[f32], y: &[f32]) {
    let plane = c.hw[0] * c.hw[1];
    let input = parts.input;
    let codes: Vec<u8> = x.iter().map(|&v| quantize(v, input.scale, f32::from(input.zero_point))).collect();
    let spec = Int8ConvSpec::new(parts, c.cin, c.hw).unwrap();
    let split = c.cin / 2 * plane;
    for xs in [vec![Part::Codes(&codes)], vec![Part::Codes(&codes[..split]), Part::F32(&x[split..])], vec![Part::F32(&x[..split]), Part::Codes(&codes[split..])]] {
        let mut got = vec![f32::NAN; y.len()];
        spec.run(&Channels::of(&xs, plane), &mut got);
        assert!(got.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits()), "{:?} {:?}: codes in differ from floats in", c.attrs, parts.epilogue);
    }
    let q = QuantParams { scale: 0.031, zero_point: 90 };
    let mut spec = spec;
    spec.emit_codes(q).unwrap();
    let mut got = vec![0u8; y.len()];
    spec.run(&Channels::single(x, plane), &mut got);
    for (i, (&a, &b)) in got.iter().zip(y).enumerate() {
        assert_eq!(a, quantize(b, q.scale, f32::from(q.zero_point)), "{:?} {:?}: code {i} of {b}", c.attrs, parts.epilogue);
    }
}

fn attrs(group: usize, k: [usize; 2], s: [usize; 2], d: [usize; 2], pads: [usize; 4]) -> ConvAttrs {
    ConvAttrs { group, kernel: k, strides: s, dilations: d, pads }
}

#[test]
fn dense_convolutions_match_the_definition() {
    check(Case { attrs: attrs(1, [3, 3], [1, 1], [1, 1], [1; 4]), cin: 5, cout: 11, hw: [9, 37], transpose: false }, 1);
    check(Case { attrs: attrs(1, [1, 1], [1, 1], [1, 1], [0; 4]), cin: 16, cout: 8, hw: [4, 4], transpose: false }, 2);
    check(Case { attrs: attrs(1, [3, 3], [2, 2], [1, 1], [1; 4]), cin: 8, cout: 9, hw: [13, 21], transpose: false }, 3);
    check(Case { attrs: attrs(1, [3, 3], [1, 1], [2, 2], [2, 1, 2, 3]), cin: 4, cout: 4, hw: [10, 12], transpose: false }, 4);
    check(Case { attrs: attrs(1, [5, 3], [2, 1], [1, 1], [2, 1, 1, 0]), cin: 3, cout: 17, hw: [11, 8], transpose: false }, 5);
}

#[test]
fn grouped_and_depthwise_convolutions_match_the_definition() {
    check(Case { attrs: attrs(2, [3, 3], [2, 2], [1, 1], [1; 4]), cin: 8, cout: 10, hw: [9, 9], transpose: false }, 6);
    check(Case { attrs: attrs(6, [3, 3], [1, 1], [1, 1], [1; 4]), cin: 6, cout: 6, hw: [7, 40], transpose: false }, 7);
    check(Case { attrs: attrs(4, [5, 5], [2, 2], [1, 1], [2; 4]), cin: 4, cout: 8, hw: [15, 14], transpose: false }, 8);
    check(Case { attrs: attrs(1, [3, 3], [1, 1], [1, 1], [1; 4]), cin: 1, cout: 12, hw: [6, 6], transpose: false }, 9);
    // Rows of 64 pixels and more (the VNNI depthwise kernel's four-chain groups) with tails.
    check(Case { attrs: attrs(3, [3, 3], [1, 1], [1, 1], [1; 4]), cin: 3, cout: 3, hw: [4, 150], transpose: false }, 12);
    check(Case { attrs: attrs(2, [5, 5], [2, 2], [2, 2], [4; 4]), cin: 2, cout: 4, hw: [9, 141], transpose: false }, 13);
}

#[test]
fn transposed_convolutions_match_the_definition() {
    check(Case { attrs: attrs(1, [2, 2], [2, 2], [1, 1], [0; 4]), cin: 6, cout: 5, hw: [5, 7], transpose: true }, 10);
    check(Case { attrs: attrs(1, [3, 2], [3, 2], [1, 1], [0; 4]), cin: 9, cout: 3, hw: [4, 20], transpose: true }, 11);
}

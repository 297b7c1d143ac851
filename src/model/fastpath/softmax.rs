//! Softmax over one axis that is not the last: `AxisSoftmax`.
//!
//! The tensor is `[outer, len, inner]` around the axis; the loops run along
//! `inner` (contiguous) so they vectorize, and each (outer, inner) position is
//! reduced in axis order as tract's generic path does: max, then
//! `e = exp(x - max)` summed from 0 in axis order, then `e / sum`. The one
//! difference is `exp`: libm's is a scalar call per element (most of YOLOv8's
//! 134 k-element box softmax), `exp_ps` here is branch-free so the loop
//! vectorizes (16 lanes where the CPU has AVX-512), within 1 ulp of the exact value (0.67 measured); the
//! probabilities stay within 4 ulp of tract's (2.3 measured).

use crate::model::parallel::{for_each, SyncPtr};
use std::ops::Range;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Inner positions one task reduces at a time (stays in L1 with its sums).
const CHUNK: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AxisSoftmax {
    pub axis: usize,
}

impl AxisSoftmax {
    /// The replacement for a float32 softmax over `axes`, where it applies: one
    /// axis, not the last (tract's own last-axis path is already vectorized).
    pub fn plan(axes: &[usize], input: &TypedFact) -> Option<AxisSoftmax> {
        let [axis] = axes else { return None };
        let rank = input.rank();
        (input.datum_type == f32::datum_type() && *axis + 1 < rank && input.shape.as_concrete().is_some()).then_some(AxisSoftmax { axis: *axis })
    }

    /// Softmax in place over the middle axis of `[outer, len, inner]`.
    pub fn compute(data: &mut [f32], outer: usize, len: usize, inner: usize) {
        let chunks = inner.div_ceil(CHUNK);
        #[cfg(target_arch = "x86_64")]
        let avx512 = crate::linalg::kernels().isa == crate::linalg::Isa::Avx512;
        let ptr = SyncPtr(data.as_mut_ptr());
        for_each(outer * chunks, len * CHUNK.min(inner) * 8, |item| {
            let (o, c) = (item / chunks, item % chunks);
            let columns = c * CHUNK..((c + 1) * CHUNK).min(inner);
            // Safety: item (o, c) touches only `columns` of block o.
            let block = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(o * len * inner), len * inner) };
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // Safety: the selected set is AVX-512's, so AVX-512 F is present.
                return unsafe { softmax_columns_avx512(block, len, inner, columns) };
            }
            softmax_columns(block, len, inner, columns);
        });
    }
}

/// The same loops compiled for 16 lanes (the crate is built for baseline x86-64,
/// 4 lanes). Rust does not contract `a * b + c` into FMAs, so the values do not change.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_columns_avx512(block: &mut [f32], len: usize, inner: usize, columns: Range<usize>) {
    softmax_columns(block, len, inner, columns)
}

/// Softmax over `len` rows of `inner` floats, for `columns` (at most `CHUNK`).
#[inline(always)]
fn softmax_columns(block: &mut [f32], len: usize, inner: usize, columns: Range<usize>) {
    let (start, end) = (columns.start, columns.end);
    let n = end - start;
    let mut max = [f32::NEG_INFINITY; CHUNK];
    let mut sum = [0f32; CHUNK];
    let max = &mut max[..n];
    let sum = &mut sum[..n];
    for l in 0..len {
        for (m, &x) in max.iter_mut().zip(&block[l * inner + start..l * inner + end]) {
            // A select, not a conditional store, so the loop vectorizes.
            *m = if x > *m { x } else { *m };
        }
    }
    for l in 0..len {
        for ((x, m), s) in block[l * inner + start..l * inner + end].iter_mut().zip(max.iter()).zip(sum.iter_mut()) {
            *x = exp_ps(*x - m);
            *s += *x;
        }
    }
    for l in 0..len {
        for (x, s) in block[l * inner + start..l * inner + end].iter_mut().zip(sum.iter()) {
            *x /= s;
        }
    }
}

impl Op for AxisSoftmax {
    fn name(&self) -> StaticName {
        "AxisSoftmax".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("axis {}", self.axis)])
    }

    op_as_typed_op!();
}

impl EvalOp for AxisSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut t = args_1!(inputs).into_tensor();
        let shape = t.shape().to_vec();
        let outer = shape[..self.axis].iter().product();
        let inner = shape[self.axis + 1..].iter().product();
        {
            let mut plain = t.try_as_plain_ram_mut()?;
            Self::compute(plain.as_slice_mut::<f32>()?, outer, shape[self.axis], inner);
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for AxisSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}
/// `e^x` in f32 arithmetic without branches or calls, so loops over it vectorize:
/// Cody–Waite reduction `x = n ln2 + r` (|r| ≤ ln2 / 2), Cephes' degree-6
/// polynomial for `e^r`, and `2^n` built in the exponent bits. Arguments below
/// -87.3 give e^-87.3 (1e-38) rather than a subnormal or 0, above 88.3 e^88.3:
/// a softmax, which adds them to at least 1, cannot tell. NaN stays NaN.
#[inline(always)]
pub fn exp_ps(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 × 2^23: adding it rounds to an integer, kept in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // Comparisons, not f32::max/min, so that NaN passes through.
    let x = if x < -87.3 { -87.3 } else { x };
    let x = if x > 88.3 { 88.3 } else { x };
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_2e-4_f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // t's low bits hold n (|n| ≤ 127) in two's complement: 2^n = (n + 127) << 23.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    e_r * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 40.0
            })
            .collect()
    }

    #[test]
    fn exp_ps_within_1_ulp() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let exact = (x as f64).exp();
            let ulp = f32::EPSILON as f64 * exact;
            worst = worst.max((exp_ps(x) as f64 - exact).abs() / ulp);
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(exp_ps(0.0), 1.0);
        assert!(exp_ps(f32::NAN).is_nan());
        assert!(exp_ps(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn within_a_few_ulp_of_tract_softmax() {
        // YOLOv8's box head shape, plus odd sizes that leave chunk tails.
        for (shape, axis) in [(vec![1, 16, 4, 2100], 1), (vec![2, 3, 5, 7], 1), (vec![3, 9, 1031], 1), (vec![5, 4, 3], 0)] {
            let n = shape.iter().product();
            let input = Tensor::from_shape(&shape, &pseudo_random(n, n as u32)).unwrap();
            let theirs = Softmax::new(tvec![axis], None, SoftmaxKind::Softmax).eval_out_of_plan(tvec!(input.clone().into_tvalue())).unwrap().unwrap();
            let ours = AxisSoftmax { axis }.eval_out_of_plan(tvec!(input.into_tvalue())).unwrap().unwrap();
            let (a, b) = (theirs[0].try_as_plain_ram().unwrap(), ours[0].try_as_plain_ram().unwrap());
            let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            // Relative to the probability, plus an absolute floor for the ones tract rounds to ~0.
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs() / (x.abs() * f32::EPSILON).max(1e-30)).fold(0f32, f32::max);
            assert!(worst <= 4.0, "{shape:?} axis {axis}: worst error {worst} ulp");
        }
    }

    /// The 16-lane build of the loops against the baseline one, bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_build_is_the_baseline_bit_for_bit() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let (len, inner) = (16, 700);
        let data = pseudo_random(len * inner, 7);
        let (mut a, mut b) = (data.clone(), data);
        softmax_columns(&mut a, len, inner, 100..600);
        // Safety: AVX-512 F is present (checked above).
        unsafe { softmax_columns_avx512(&mut b, len, inner, 100..600) };
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_ne!(a, pseudo_random(len * inner, 7), "the columns were computed");
    }
}

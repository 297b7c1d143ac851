//! tract's `QuantizeLinearU8` (the QuantizeLinear nodes left between tract ops,
//! e.g. around YOLOv8's Concat/Split), vectorized: `FastQuantizeU8`.
//!
//! tract computes `clamp(round_ties_to_even(x × scale) + zp, 0, 255)` (its
//! `scale` is ONNX's reciprocal) one scalar at a time; this does the same
//! multiply and rounding 16 lanes at a time on AVX-512, so the bytes are the
//! same, except where tract's own arithmetic goes wrong: a NaN gives 0 here
//! (the zero point in tract), and `|x × scale| ≥ 2³¹` saturates here where
//! tract's `i32` addition of the zero point overflows. The scalar fallback
//! (other CPUs) saturates the same way.

use crate::model::parallel::{for_each, SyncPtr};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

#[derive(Clone, Debug, PartialEq)]
pub struct FastQuantizeU8 {
    /// Multiplier (tract's `scale`: 1 / ONNX scale).
    pub scale: f32,
    pub zero_point: u8,
}

impl Eq for FastQuantizeU8 {}

impl FastQuantizeU8 {
    /// The replacement for tract's op on a float32 input.
    pub fn plan(scale: f32, zero_point: u8, input: &TypedFact) -> Option<FastQuantizeU8> {
        (input.datum_type == f32::datum_type()).then_some(FastQuantizeU8 { scale, zero_point })
    }

    pub fn compute(&self, xs: &[f32], ys: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if crate::linalg::kernels().isa == crate::linalg::Isa::Avx512 {
            // Safety: the selected set is AVX-512's (AVX-512 F is present); both slices have the same length.
            return unsafe { quantize_avx512(xs, ys, self.scale, self.zero_point) };
        }
        for (y, &x) in ys.iter_mut().zip(xs) {
            *y = quantize_one(x, self.scale, self.zero_point);
        }
    }
}

/// tract's `ops::quant::quantize_linear_f32_u8` with the same saturation as the vector
/// path: clamped before the conversion, so no `i32` overflow; NaN gives 0.
fn quantize_one(x: f32, scale: f32, zero_point: u8) -> u8 {
    let v = x * scale;
    if v.is_nan() {
        return 0;
    }
    let q = tract_onnx::prelude::round_ties_to_even(v.clamp(-1024.0, 1024.0)) as i32 + i32::from(zero_point);
    q.clamp(0, 255) as u8
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_avx512(xs: &[f32], ys: &mut [u8], scale: f32, zero_point: u8) {
    use std::arch::x86_64::*;
    let s = _mm512_set1_ps(scale);
    let zp = _mm512_set1_epi32(i32::from(zero_point));
    let n = xs.len().min(ys.len());
    let mut i = 0;
    while i < n {
        let k = (n - i).min(16);
        let mask = crate::linalg::x86_64::avx512::simd::tail_mask(k);
        // Safety: lanes past n are masked off.
        let v = _mm512_mul_ps(unsafe { _mm512_maskz_loadu_ps(mask, xs.as_ptr().add(i)) }, s);
        // Clamped first so the conversion stays in range; MXCSR rounds ties to even.
        let v = _mm512_max_ps(_mm512_set1_ps(-1024.0), _mm512_min_ps(_mm512_set1_ps(1024.0), v));
        let q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
        let q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
        unsafe { _mm512_mask_cvtepi32_storeu_epi8(ys.as_mut_ptr().add(i) as *mut i8, mask, q) };
        i += 16;
    }
}

impl Op for FastQuantizeU8 {
    fn name(&self) -> StaticName {
        "FastQuantizeU8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("x × {} + {}", self.scale, self.zero_point)])
    }

    op_as_typed_op!();
}

impl EvalOp for FastQuantizeU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        // Safety: every byte is written below.
        let mut y = unsafe { Tensor::uninitialized::<u8>(x.shape())? };
        {
            let xs = x.try_as_plain_ram()?;
            let xs = xs.as_slice::<f32>()?;
            let mut ys = y.try_as_plain_ram_mut()?;
            let ys = ys.as_slice_mut::<u8>()?;
            let n = xs.len();
            let ptr = SyncPtr(ys.as_mut_ptr());
            for_each(n.div_ceil(CHUNK), CHUNK, |c| {
                let (a, b) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
                // Safety: chunk c writes bytes a..b alone.
                let out = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(a), b - a) };
                self.compute(&xs[a..b], out);
            });
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for FastQuantizeU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(u8::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::quant::quantize_linear_f32_u8;

    #[test]
    fn same_bytes_as_tract() {
        let op = FastQuantizeU8 { scale: 1.0 / 0.037, zero_point: 113 };
        // Ties, saturation both ways, a tail past a multiple of 16.
        let mut xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.00371).collect();
        xs.extend([0.5 * 0.037, 1.5 * 0.037, -2.5 * 0.037, 1e3, -1e3, 1e7, -1e7, 0.0, -0.0]);
        let mut ys = vec![0u8; xs.len()];
        op.compute(&xs, &mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            assert_eq!(*y, quantize_linear_f32_u8(*x, op.scale, 113), "x = {x}");
        }
        // Past i32 (where tract's zero-point addition overflows): saturated,
        // by the vector path and the scalar fallback alike.
        let huge = [1e12f32, f32::INFINITY, -1e12, f32::NEG_INFINITY, f32::NAN];
        let mut ys = [7u8; 5];
        op.compute(&huge, &mut ys);
        assert_eq!(ys, [255, 255, 0, 0, 0]);
        let scalar: Vec<u8> = huge.iter().chain(&xs).map(|&x| quantize_one(x, op.scale, 113)).collect();
        let mut vector = vec![0u8; scalar.len()];
        op.compute(&huge.iter().chain(&xs).copied().collect::<Vec<_>>(), &mut vector);
        assert_eq!(scalar, vector);
    }
}

//! The AVX-512 kernels of the float convolutions: FMA on 16-lane vectors, with
//! the bias and the epilogue's activation applied before the results leave
//! the registers.

use crate::model::qdq::geometry::TILE;
use crate::model::qdq::op::Epilogue;
use crate::model::qdq::pack::MR;
use crate::model::qdq::simd_x86::activate16;
use std::arch::x86_64::*;

/// Floats a depthwise row reads past its last output pixel.
pub const DEPTHWISE_SLACK: usize = 64;

/// Whether this CPU runs the kernels below.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// One tile of a dense convolution: for the panel's `MR` rows `r` and the tile's
/// `TILE` pixels `i`, `out[r][i] = epilogue(bias[r] + Σ_t w[t·MR + r] · x[offsets[t] + i])`.
/// 16 accumulators of 16 lanes stay in registers for the whole reduction.
///
/// # Safety
/// The CPU has AVX-512 F; every `x + offsets[t] + TILE` is readable; `w` holds
/// `offsets.len() × MR` floats.
#[target_feature(enable = "avx512f")]
pub unsafe fn dense_tile(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32; MR], epilogue: &Epilogue, out: &mut [[f32; TILE]; MR]) {
    let mut c: [[__m512; 2]; MR] = std::array::from_fn(|r| [_mm512_set1_ps(bias[r]); 2]);
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees TILE = 32 readable floats here and MR weights per step.
        let p = unsafe { x.add(off) };
        let a0 = unsafe { _mm512_loadu_ps(p) };
        let a1 = unsafe { _mm512_loadu_ps(p.add(16)) };
        let wp = unsafe { w.add(t * MR) };
        for (r, cr) in c.iter_mut().enumerate() {
            let b = _mm512_set1_ps(unsafe { wp.add(r).read() });
            cr[0] = _mm512_fmadd_ps(a0, b, cr[0]);
            cr[1] = _mm512_fmadd_ps(a1, b, cr[1]);
        }
    }
    for (cr, o) in c.iter().zip(out.iter_mut()) {
        for (h, &v) in cr.iter().enumerate() {
            // Safety: each row holds TILE = 32 floats.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * h), activate16(v, epilogue)) };
        }
    }
}

/// Half a tile (16 pixels, at `x`) of a dense convolution, into lanes
/// `16 × half .. 16 × half + 16` of `out`: for the tiles of which the other half
/// holds no output pixel (narrow or strided rows), which would otherwise do twice
/// the work. Eight accumulators are still enough to keep both FMA pipes busy.
///
/// # Safety
/// As [`dense_tile`], with 16 readable floats per step; `half` is 0 or 1.
#[target_feature(enable = "avx512f")]
pub unsafe fn dense_half_tile(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32; MR], epilogue: &Epilogue, half: usize, out: &mut [[f32; TILE]; MR]) {
    let mut c: [__m512; MR] = std::array::from_fn(|r| _mm512_set1_ps(bias[r]));
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees 16 readable floats here and MR weights per step.
        let a = unsafe { _mm512_loadu_ps(x.add(off)) };
        let wp = unsafe { w.add(t * MR) };
        for (r, cr) in c.iter_mut().enumerate() {
            *cr = _mm512_fmadd_ps(a, _mm512_set1_ps(unsafe { wp.add(r).read() }), *cr);
        }
    }
    for (&v, o) in c.iter().zip(out.iter_mut()) {
        // Safety: each row holds TILE = 32 floats and half is 0 or 1.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * (half & 1)), activate16(v, epilogue)) };
    }
}

/// One output row of one depthwise channel: `out[i] = epilogue(bias + Σ_t taps[t] · plane[offsets[t] + i])`
/// for `i < n`, 64 pixels (four independent FMA chains) at a time.
///
/// # Safety
/// The CPU has AVX-512 F; `plane + offsets[t] + n + DEPTHWISE_SLACK` is readable for
/// every tap; `out` has `n` writable floats.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn depthwise_row(plane: *const f32, offsets: &[usize], taps: &[f32], n: usize, bias: f32, epilogue: &Epilogue, out: *mut f32) {
    let mut i = 0;
    while i < n {
        let mut acc = [_mm512_set1_ps(bias); 4];
        for (&off, &w) in offsets.iter().zip(taps) {
            let w = _mm512_set1_ps(w);
            for (j, a) in acc.iter_mut().enumerate() {
                // Safety: at most i + 64 <= n + DEPTHWISE_SLACK floats past `off`.
                *a = _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(plane.add(off + i + 16 * j)) }, w, *a);
            }
        }
        for (j, &a) in acc.iter().enumerate() {
            let start = i + 16 * j;
            if start >= n {
                break;
            }
            let k = (n - start).min(16);
            let mask: __mmask16 = if k == 16 { 0xffff } else { (1u16 << k) - 1 };
            // Safety: lanes past `n` are masked off.
            unsafe { _mm512_mask_storeu_ps(out.add(start), mask, activate16(a, epilogue)) };
        }
        i += 64;
    }
}

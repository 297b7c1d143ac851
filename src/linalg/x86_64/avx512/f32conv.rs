//! The AVX-512 kernels of the float convolutions: FMA on 16-lane vectors, with
//! the bias and the epilogue's activation applied before the results leave
//! the registers.

use super::simd::{activate16, tail_mask};
use crate::linalg::epilogue::Epilogue;
use crate::linalg::f32conv::F32Conv;
use std::arch::x86_64::*;

/// Floats a depthwise row reads past its last output pixel.
pub const DEPTHWISE_SLACK: usize = 64;

/// Output channels per weight panel of the dense kernel.
pub const ROWS: usize = 6;

pub const F32CONV: F32Conv = F32Conv { rows: ROWS, dense, depthwise_row, finish_line, depthwise_slack: DEPTHWISE_SLACK, direct_dense: true, name: "avx512f 6x64 fma" };

/// [`dense_block`] for 16, 32 or 64 pixels.
///
/// # Safety
/// See [`crate::linalg::f32conv::DenseBlock`]; the CPU has AVX-512 F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn dense(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32], epilogue: &Epilogue, rows: usize, out: *mut f32, ld: usize, pixels: usize) {
    let bias: &[f32; ROWS] = bias[..ROWS].try_into().expect("ROWS bias values");
    // Safety: forwarded.
    unsafe {
        match pixels {
            64 => dense_block::<4>(x, offsets, w, bias, epilogue, rows, out, ld),
            32 => dense_block::<2>(x, offsets, w, bias, epilogue, rows, out, ld),
            _ => dense_block::<1>(x, offsets, w, bias, epilogue, rows, out, ld),
        }
    }
}

/// `V` vectors of 16 consecutive pixels (from `x`) of a dense convolution, for
/// the panel's `ROWS` rows `r`: `epilogue(bias[r] + Σ_t w[t·ROWS + r] · x[offsets[t] + i])`.
/// Vector `j` of row `r < rows` is stored at `out + r·ld + 16·j`: straight into
/// the output planes where the pixels are one run of an output row, else into
/// a buffer.
///
/// V = 4 (two tiles side by side) is the main case: 24 accumulators, and each
/// broadcast weight feeds 4 FMAs. At 2 per broadcast (one tile of 8 rows),
/// the broadcasts held the FMA pipes to about 80 % of their rate on this
/// project's Zen 4 benchmark machine. V = 2 is a lone tile, V = 1 half of one
/// (narrow or strided rows, where the other half holds no output pixel).
///
/// # Safety
/// The CPU has AVX-512 F; every `x + offsets[t] + 16·V` is readable; `w` holds
/// `offsets.len() × ROWS` floats; `out + r·ld .. + 16·V` is writable for `r < rows`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn dense_block<const V: usize>(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32; ROWS], epilogue: &Epilogue, rows: usize, out: *mut f32, ld: usize) {
    let mut c: [[__m512; V]; ROWS] = std::array::from_fn(|r| [_mm512_set1_ps(bias[r]); V]);
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees 16·V readable floats here and ROWS weights per step.
        let p = unsafe { x.add(off) };
        let a: [__m512; V] = std::array::from_fn(|j| unsafe { _mm512_loadu_ps(p.add(16 * j)) });
        let wp = unsafe { w.add(t * ROWS) };
        for (r, cr) in c.iter_mut().enumerate() {
            let b = _mm512_set1_ps(unsafe { wp.add(r).read() });
            for (acc, &aj) in cr.iter_mut().zip(&a) {
                *acc = _mm512_fmadd_ps(aj, b, *acc);
            }
        }
    }
    for (r, cr) in c.iter().enumerate().take(rows) {
        for (j, &v) in cr.iter().enumerate() {
            // Safety: the caller guarantees 16·V writable floats at each row.
            unsafe { _mm512_storeu_ps(out.add(r * ld + 16 * j), activate16(v, epilogue)) };
        }
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
            let mask = tail_mask(k);
            // Safety: lanes past `n` are masked off.
            unsafe { _mm512_mask_storeu_ps(out.add(start), mask, activate16(a, epilogue)) };
        }
        i += 64;
    }
}

/// # Safety
/// See [`crate::linalg::f32conv::FinishLine`]; the CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn finish_line(line: *mut f32, n: usize, bias: f32, epilogue: &Epilogue) {
    let b = _mm512_set1_ps(bias);
    let mut i = 0;
    while i < n {
        let mask = tail_mask(n - i);
        // Safety: lanes past n are masked off.
        unsafe {
            let v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, line.add(i)), b);
            _mm512_mask_storeu_ps(line.add(i), mask, activate16(v, epilogue));
        }
        i += 16;
    }
}

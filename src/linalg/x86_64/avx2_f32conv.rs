//! AVX2 + FMA float convolution kernels: 3 output channels × 32 pixels of sums
//! in registers (12 accumulators of the 16), each step 3 broadcast weights and
//! 12 FMAs that read their pixels straight from memory.

use super::avx2_ew::activate8;
use crate::linalg::epilogue::Epilogue;
use crate::linalg::f32conv::F32Conv;
use std::arch::x86_64::*;

/// Output channels per weight panel.
pub const ROWS: usize = 3;

pub const F32CONV: F32Conv = F32Conv { rows: ROWS, dense, depthwise_row, finish_line, depthwise_slack: 32, direct_dense: false, name: "avx2 3x32 fma" };

/// # Safety
/// See [`crate::linalg::f32conv::DenseBlock`]; the CPU has AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dense(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32], epilogue: &Epilogue, rows_used: usize, out: *mut f32, ld: usize, pixels: usize) {
    let mut col = 0;
    while col + 32 <= pixels {
        // Safety: forwarded, for pixels col .. col + 32.
        unsafe { block::<4>(x.add(col), offsets, w, bias, epilogue, rows_used, out.add(col), ld) };
        col += 32;
    }
    if col < pixels {
        // 16 pixels left (pixels is 16, 32 or 64).
        unsafe { block::<2>(x.add(col), offsets, w, bias, epilogue, rows_used, out.add(col), ld) };
    }
}

/// `ROWS` rows × `8·G` pixels.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const G: usize>(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32], epilogue: &Epilogue, rows_used: usize, out: *mut f32, ld: usize) {
    let mut c: [[__m256; G]; ROWS] = std::array::from_fn(|r| [_mm256_set1_ps(bias[r]); G]);
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees 8·G readable floats from x + off and ROWS weights per step.
        let p = unsafe { x.add(off) };
        let wp = unsafe { w.add(t * ROWS) };
        for (r, cr) in c.iter_mut().enumerate() {
            let b = _mm256_set1_ps(unsafe { *wp.add(r) });
            for (j, acc) in cr.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(p.add(8 * j)) }, b, *acc);
            }
        }
    }
    for (r, cr) in c.iter().enumerate().take(rows_used) {
        for (j, &v) in cr.iter().enumerate() {
            // Safety: the caller guarantees 8·G writable floats at each used row.
            unsafe { _mm256_storeu_ps(out.add(r * ld + 8 * j), activate8(v, epilogue)) };
        }
    }
}

/// # Safety
/// See [`crate::linalg::f32conv::DepthwiseRow`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn depthwise_row(plane: *const f32, offsets: &[usize], taps: &[f32], n: usize, bias: f32, epilogue: &Epilogue, out: *mut f32) {
    let mut i = 0;
    while i < n {
        let mut acc = [_mm256_set1_ps(bias); 4];
        for (&off, &w) in offsets.iter().zip(taps) {
            let w = _mm256_set1_ps(w);
            for (j, a) in acc.iter_mut().enumerate() {
                // Safety: at most 32 floats past i < n, inside the row and its slack.
                *a = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(plane.add(off + i + 8 * j)) }, w, *a);
            }
        }
        let v = acc.map(|a| activate8(a, epilogue));
        if i + 32 <= n {
            for (j, v) in v.iter().enumerate() {
                // Safety: 32 floats at i < n.
                unsafe { _mm256_storeu_ps(out.add(i + 8 * j), *v) };
            }
        } else {
            let mut tail = [0f32; 32];
            for (j, v) in v.iter().enumerate() {
                unsafe { _mm256_storeu_ps(tail.as_mut_ptr().add(8 * j), *v) };
            }
            for (j, &t) in tail.iter().enumerate().take(n - i) {
                // Safety: i + j < n.
                unsafe { *out.add(i + j) = t };
            }
        }
        i += 32;
    }
}

/// # Safety
/// See [`crate::linalg::f32conv::FinishLine`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn finish_line(line: *mut f32, n: usize, bias: f32, epilogue: &Epilogue) {
    let b = _mm256_set1_ps(bias);
    let mut i = 0;
    while i + 8 <= n {
        // Safety: 8 floats at i < n.
        unsafe { _mm256_storeu_ps(line.add(i), activate8(_mm256_add_ps(_mm256_loadu_ps(line.add(i)), b), epilogue)) };
        i += 8;
    }
    for j in i..n {
        // Safety: j < n. The scalar definition is what activate8 computes per lane.
        unsafe { *line.add(j) = epilogue.activate(*line.add(j) + bias) };
    }
}

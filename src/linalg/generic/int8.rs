//! The int8 tile: exact u8×i8 → i32 dot products, written plainly.

use crate::linalg::int8::{Acc, ActivationCode, Gemm, WeightLayout, MR, TILE};

/// The portable tiles (unsigned activations, any weights).
pub const GEMM: Gemm = Gemm { tile, tile_any: tile, pair: None, code: ActivationCode::Unsigned, weights: WeightLayout::I8x4, name: "portable 8x32" };

/// The reference tile kernel.
///
/// # Safety
/// See [`crate::linalg::int8::Kernel`].
pub unsafe fn tile(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    // Safety: forwarded.
    unsafe { tile_body(x, offsets, w, acc) }
}

/// The body of [`tile`], inlined into callers that compile it for a wider
/// instruction set than the baseline.
///
/// # Safety
/// See [`crate::linalg::int8::Kernel`].
#[inline(always)]
pub unsafe fn tile_body(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    *acc = [[0; TILE]; MR];
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees both ranges are readable.
        let a = unsafe { std::slice::from_raw_parts(x.add(off), 4 * TILE) };
        let wt = unsafe { std::slice::from_raw_parts(w.add(t * MR * 4), MR * 4) };
        for (r, row) in acc.iter_mut().enumerate() {
            let wr = [i32::from(wt[4 * r]), i32::from(wt[4 * r + 1]), i32::from(wt[4 * r + 2]), i32::from(wt[4 * r + 3])];
            for (i, v) in row.iter_mut().enumerate() {
                let q = &a[4 * i..4 * i + 4];
                *v += i32::from(q[0]) * wr[0] + i32::from(q[1]) * wr[1] + i32::from(q[2]) * wr[2] + i32::from(q[3]) * wr[3];
            }
        }
    }
}

/// The reference tile on activations stored as `q - 128` (i8), as the
/// [`ActivationCode::ShiftedSigned`] kernels read them: `Σ (q - 128) w`.
///
/// # Safety
/// See [`crate::linalg::int8::Kernel`].
pub unsafe fn tile_shifted(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    *acc = [[0; TILE]; MR];
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees both ranges are readable.
        let a = unsafe { std::slice::from_raw_parts(x.add(off) as *const i8, 4 * TILE) };
        let wt = unsafe { std::slice::from_raw_parts(w.add(t * MR * 4), MR * 4) };
        for (r, row) in acc.iter_mut().enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v += (0..4).map(|j| i32::from(a[4 * i + j]) * i32::from(wt[4 * r + j])).sum::<i32>();
            }
        }
    }
}

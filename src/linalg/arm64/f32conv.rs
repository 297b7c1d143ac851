//! NEON float convolution kernels: 12 output channels × 8 pixels of sums in
//! registers (24 accumulators), each step one load of 8 pixels and one of 12
//! weights, 24 `fmla` by element (no broadcasts).

use super::ew::{activate4, store16_within};
use crate::linalg::epilogue::Epilogue;
use crate::linalg::f32conv::F32Conv;
use std::arch::aarch64::*;

/// Output channels per weight panel.
pub const ROWS: usize = 12;

pub const F32CONV: F32Conv = F32Conv { rows: ROWS, dense, depthwise_row, finish_line, depthwise_slack: 16, direct_dense: false, name: "neon 12x8 fmla by element" };

/// # Safety
/// See [`crate::linalg::f32conv::DenseBlock`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn dense(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32], epilogue: &Epilogue, rows_used: usize, out: *mut f32, ld: usize, pixels: usize) {
    for col in 0..pixels / 8 {
        // Safety: the caller guarantees `pixels` readable floats from every x + offset,
        // ROWS weights per step and the output rows.
        let xc = unsafe { x.add(8 * col) };
        let mut acc: [[float32x4_t; 2]; ROWS] = std::array::from_fn(|r| unsafe { [vdupq_n_f32(bias[r]); 2] });
        for (t, &off) in offsets.iter().enumerate() {
            unsafe {
                let (a0, a1) = (vld1q_f32(xc.add(off)), vld1q_f32(xc.add(off + 4)));
                let wp = w.add(t * ROWS);
                let wv = [vld1q_f32(wp), vld1q_f32(wp.add(4)), vld1q_f32(wp.add(8))];
                macro_rules! rows4 {
                    ($k:expr) => {
                        acc[4 * $k][0] = vfmaq_laneq_f32::<0>(acc[4 * $k][0], a0, wv[$k]);
                        acc[4 * $k][1] = vfmaq_laneq_f32::<0>(acc[4 * $k][1], a1, wv[$k]);
                        acc[4 * $k + 1][0] = vfmaq_laneq_f32::<1>(acc[4 * $k + 1][0], a0, wv[$k]);
                        acc[4 * $k + 1][1] = vfmaq_laneq_f32::<1>(acc[4 * $k + 1][1], a1, wv[$k]);
                        acc[4 * $k + 2][0] = vfmaq_laneq_f32::<2>(acc[4 * $k + 2][0], a0, wv[$k]);
                        acc[4 * $k + 2][1] = vfmaq_laneq_f32::<2>(acc[4 * $k + 2][1], a1, wv[$k]);
                        acc[4 * $k + 3][0] = vfmaq_laneq_f32::<3>(acc[4 * $k + 3][0], a0, wv[$k]);
                        acc[4 * $k + 3][1] = vfmaq_laneq_f32::<3>(acc[4 * $k + 3][1], a1, wv[$k]);
                    };
                }
                rows4!(0);
                rows4!(1);
                rows4!(2);
            }
        }
        for (r, a) in acc.iter().enumerate().take(rows_used) {
            unsafe {
                let o = out.add(r * ld + 8 * col);
                vst1q_f32(o, activate4(a[0], epilogue));
                vst1q_f32(o.add(4), activate4(a[1], epilogue));
            }
        }
    }
}

/// # Safety
/// See [`crate::linalg::f32conv::DepthwiseRow`].
pub unsafe fn depthwise_row(plane: *const f32, offsets: &[usize], taps: &[f32], n: usize, bias: f32, epilogue: &Epilogue, out: *mut f32) {
    let mut i = 0;
    while i < n {
        let mut acc = unsafe { [vdupq_n_f32(bias); 4] };
        for (&off, &w) in offsets.iter().zip(taps) {
            // Safety: at most 16 floats past i < n, inside the row and its slack.
            unsafe {
                let x = vld1q_f32_x4(plane.add(off + i));
                let w = vdupq_n_f32(w);
                acc[0] = vfmaq_f32(acc[0], x.0, w);
                acc[1] = vfmaq_f32(acc[1], x.1, w);
                acc[2] = vfmaq_f32(acc[2], x.2, w);
                acc[3] = vfmaq_f32(acc[3], x.3, w);
            }
        }
        let v = acc.map(|a| activate4(a, epilogue));
        // Safety: `out` holds n floats and i < n.
        unsafe { store16_within(out, i, n, v) };
        i += 16;
    }
}

/// # Safety
/// See [`crate::linalg::f32conv::FinishLine`].
pub unsafe fn finish_line(line: *mut f32, n: usize, bias: f32, epilogue: &Epilogue) {
    let b = unsafe { vdupq_n_f32(bias) };
    let mut i = 0;
    while i + 4 <= n {
        // Safety: 4 floats at i < n.
        unsafe { vst1q_f32(line.add(i), activate4(vaddq_f32(vld1q_f32(line.add(i)), b), epilogue)) };
        i += 4;
    }
    for j in i..n {
        // Safety: j < n. The scalar definition is what activate4 computes per lane.
        unsafe { *line.add(j) = epilogue.activate(*line.add(j) + bias) };
    }
}

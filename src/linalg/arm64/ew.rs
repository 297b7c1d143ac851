//! NEON element loops around the int8 tiles: quantizing into the X4 layout,
//! finishing sums into floats or into the next convolution's codes, depthwise
//! rows. Each computes what `crate::linalg::generic::ew` computes, bit for bit:
//! `fdiv` for ONNX's `x / scale` (exact, and one instruction), `fcvtns` for its
//! round-half-to-even, `fmaxnm`/`fminnm` where Rust's `max`/`min` skip NaN,
//! separate multiplies and adds where the definition has them, fused ones where
//! it has `mul_add`.

use crate::linalg::epilogue::{quantize, CodeTable, Epilogue, FinishTable, QuantParams};
use crate::linalg::int8::{Acc, Elementwise, MR, TILE};
use std::arch::aarch64::*;

pub const ELEMENTWISE: Elementwise = Elementwise {
    quantize_u8,
    quantize_x4,
    interleave_x4,
    finish_rows,
    finish_codes,
    finish_table,
    depthwise_row,
    depthwise_vnni: false,
    copy_short: None,
};

/// ONNX's quantization of 4 lanes before saturation: `round_half_to_even(x / s) + zp`,
/// as i32 (the caller saturates to 0..=255). NaN becomes `-1024 + zp` (0 once saturated).
#[inline(always)]
fn quantize4(x: float32x4_t, scale: float32x4_t, zp: int32x4_t) -> int32x4_t {
    // Safety (all intrinsics here and below): NEON is part of aarch64's baseline.
    unsafe {
        let v = vmaxnmq_f32(vdivq_f32(x, scale), vdupq_n_f32(-1024.0));
        // fcvtns saturates to i32 and the add saturates too: huge values stay huge.
        vqaddq_s32(vcvtnq_s32_f32(v), zp)
    }
}

/// 16 quantized lanes (before saturation) as 16 saturated bytes.
#[inline(always)]
fn narrow16(q: [int32x4_t; 4]) -> uint8x16_t {
    unsafe {
        let lo = vqmovun_high_s32(vqmovun_s32(q[0]), q[1]);
        let hi = vqmovun_high_s32(vqmovun_s32(q[2]), q[3]);
        vqmovn_high_u16(vqmovn_u16(lo), hi)
    }
}

/// Quantize 16 floats from `src` into bytes.
#[inline(always)]
unsafe fn quantize16(src: *const f32, scale: float32x4_t, zp: int32x4_t) -> uint8x16_t {
    // Safety: the caller guarantees 16 readable floats.
    let x = unsafe { vld1q_f32_x4(src) };
    narrow16([quantize4(x.0, scale, zp), quantize4(x.1, scale, zp), quantize4(x.2, scale, zp), quantize4(x.3, scale, zp)])
}

/// # Safety
/// See [`crate::linalg::int8::QuantizeU8`].
pub unsafe fn quantize_u8(src: *const f32, n: usize, dst: *mut u8, scale: f32, zero_point: u8) {
    let (s, zp) = unsafe { (vdupq_n_f32(scale), vdupq_n_s32(i32::from(zero_point))) };
    let mut i = 0;
    while i + 16 <= n {
        // Safety: 16 floats from i < n and 16 bytes at i are in range.
        unsafe { vst1q_u8(dst.add(i), quantize16(src.add(i), s, zp)) };
        i += 16;
    }
    let zpf = f32::from(zero_point);
    for j in i..n {
        // Safety: j < n.
        unsafe { *dst.add(j) = quantize(*src.add(j), scale, zpf) };
    }
}

/// # Safety
/// See [`crate::linalg::int8::QuantizeX4`].
pub unsafe fn quantize_x4(lines: [Option<*const f32>; 4], n: usize, dst: *mut u8, scale: f32, zero_point: u8, xor: u8) {
    let (s, zp) = unsafe { (vdupq_n_f32(scale), vdupq_n_s32(i32::from(zero_point))) };
    let (flip, pad) = unsafe { (vdupq_n_u8(xor), vdupq_n_u8(zero_point)) };
    let mut i = 0;
    while i + 16 <= n {
        // Safety: each line holds n floats; 64 bytes at 4 * i are inside 4 * n.
        let b = lines.map(|l| match l {
            Some(p) => unsafe { veorq_u8(quantize16(p.add(i), s, zp), flip) },
            None => unsafe { veorq_u8(pad, flip) },
        });
        // st4 stores byte i of each of the 4 registers side by side: the X4 slots.
        unsafe { vst4q_u8(dst.add(4 * i), uint8x16x4_t(b[0], b[1], b[2], b[3])) };
        i += 16;
    }
    let zpf = f32::from(zero_point);
    for p in i..n {
        for (j, line) in lines.iter().enumerate() {
            // Safety: p < n.
            let q = line.map_or(zero_point, |l| quantize(unsafe { *l.add(p) }, scale, zpf));
            unsafe { *dst.add(4 * p + j) = q ^ xor };
        }
    }
}

/// # Safety
/// See [`crate::linalg::int8::InterleaveX4`].
pub unsafe fn interleave_x4(lines: [*const u8; 4], n: usize, dst: *mut u8, xor: u8) {
    let flip = unsafe { vdupq_n_u8(xor) };
    let mut i = 0;
    while i + 16 <= n {
        // Safety: each line holds n bytes; 64 bytes at 4 * i are inside 4 * n.
        let b = lines.map(|l| unsafe { veorq_u8(vld1q_u8(l.add(i)), flip) });
        unsafe { vst4q_u8(dst.add(4 * i), uint8x16x4_t(b[0], b[1], b[2], b[3])) };
        i += 16;
    }
    for p in i..n {
        for (j, line) in lines.iter().enumerate() {
            // Safety: p < n.
            unsafe { *dst.add(4 * p + j) = *line.add(p) ^ xor };
        }
    }
}

/// `(a - correction) × mult + bias` on 4 lanes.
#[inline(always)]
fn scale4(a: int32x4_t, correction: int32x4_t, mult: float32x4_t, bias: float32x4_t) -> float32x4_t {
    unsafe { vaddq_f32(vmulq_f32(vcvtq_f32_s32(vsubq_s32(a, correction)), mult), bias) }
}

/// `exp` of `crate::linalg::epilogue` on 4 lanes.
#[inline(always)]
fn exp4(x: float32x4_t) -> float32x4_t {
    unsafe {
        let x = vmaxnmq_f32(vminnmq_f32(x, vdupq_n_f32(88.37626)), vdupq_n_f32(-87.33654));
        let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(std::f32::consts::LOG2_E)));
        let r = vsubq_f32(x, vmulq_f32(n, vdupq_n_f32(0.693_359_4)));
        let r = vsubq_f32(r, vmulq_f32(n, vdupq_n_f32(-2.121_944_4e-4)));
        let mut p = vdupq_n_f32(1.987_569_1e-4);
        for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = vfmaq_f32(vdupq_n_f32(c), p, r);
        }
        let p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0)), p, vmulq_f32(r, r));
        let two_n = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127))));
        vmulq_f32(p, two_n)
    }
}

/// The epilogue's activation (Relu, HardSwish, SiLU) on 4 lanes.
#[inline(always)]
pub(crate) fn activate4(mut v: float32x4_t, epilogue: &Epilogue) -> float32x4_t {
    unsafe {
        if epilogue.relu {
            v = vmaxnmq_f32(v, vdupq_n_f32(0.0));
        }
        if let Some((alpha, beta)) = epilogue.hardswish {
            let t = vaddq_f32(vmulq_f32(v, vdupq_n_f32(alpha)), vdupq_n_f32(beta));
            let t = vmaxnmq_f32(vminnmq_f32(t, vdupq_n_f32(1.0)), vdupq_n_f32(0.0));
            v = vmulq_f32(v, t);
        }
        if epilogue.silu {
            let d = vaddq_f32(vdupq_n_f32(1.0), exp4(vnegq_f32(v)));
            v = vmulq_f32(v, vdivq_f32(vdupq_n_f32(1.0), d));
        }
        v
    }
}

/// An epilogue's requantization in vectors: scale, zero point (float and int).
#[derive(Clone, Copy)]
struct Requantize4 {
    scale: float32x4_t,
    zp: int32x4_t,
}

impl Requantize4 {
    fn new(q: QuantParams) -> Requantize4 {
        unsafe { Requantize4 { scale: vdupq_n_f32(q.scale), zp: vdupq_n_s32(i32::from(q.zero_point)) } }
    }

    /// The code, saturated to 0..=255, as i32 lanes.
    #[inline(always)]
    fn code(self, v: float32x4_t) -> int32x4_t {
        unsafe { vminq_s32(vmaxq_s32(quantize4(v, self.scale, self.zp), vdupq_n_s32(0)), vdupq_n_s32(255)) }
    }

    /// `(code - zp) × scale`.
    #[inline(always)]
    fn value(self, code: int32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(vcvtq_f32_s32(vsubq_s32(code, self.zp)), self.scale) }
    }
}

/// `epilogue((a - correction) × mult + bias)` on 4 lanes.
#[inline(always)]
fn finish4(a: int32x4_t, correction: int32x4_t, mult: float32x4_t, bias: float32x4_t, epilogue: &Epilogue, rq: Option<Requantize4>) -> float32x4_t {
    let v = scale4(a, correction, mult, bias);
    let v = match rq {
        Some(rq) => rq.value(rq.code(v)),
        None => v,
    };
    activate4(v, epilogue)
}

/// `table[code]` for 4 code lanes.
#[inline(always)]
fn lookup4(table: &FinishTable, code: int32x4_t) -> float32x4_t {
    // The codes are saturated to 0..=255: every index is inside the table.
    let at = |lane: i32| table.0[(lane as usize) & 255];
    unsafe {
        let v = vdupq_n_f32(at(vgetq_lane_s32::<0>(code)));
        let v = vsetq_lane_f32::<1>(at(vgetq_lane_s32::<1>(code)), v);
        let v = vsetq_lane_f32::<2>(at(vgetq_lane_s32::<2>(code)), v);
        vsetq_lane_f32::<3>(at(vgetq_lane_s32::<3>(code)), v)
    }
}

/// # Safety
/// See [`crate::linalg::int8::FinishRows`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn finish_rows(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], epilogue: &Epilogue, table: Option<&FinishTable>, out: &mut [[f32; TILE]; MR]) {
    let rq = epilogue.requantize.map(Requantize4::new);
    for r in 0..rows.min(MR).min(mult.len()).min(bias.len()) {
        let (c, m, b) = unsafe { (vdupq_n_s32(corrections[r]), vdupq_n_f32(mult[r]), vdupq_n_f32(bias[r])) };
        for k in 0..TILE / 4 {
            // Safety: 4 lanes at 4k of TILE-long rows.
            let a = unsafe { vld1q_s32(acc[r].as_ptr().add(4 * k)) };
            let v = match (table, rq) {
                (Some(t), Some(rq)) => lookup4(t, rq.code(scale4(a, c, m, b))),
                _ => finish4(a, c, m, b, epilogue, rq),
            };
            unsafe { vst1q_f32(out[r].as_mut_ptr().add(4 * k), v) };
        }
    }
}

/// # Safety
/// See [`crate::linalg::int8::FinishCodes`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn finish_codes(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], requantize: QuantParams, table: &CodeTable, out: &mut [[u8; TILE]; MR]) {
    let rq = Requantize4::new(requantize);
    // The 256-byte table in 16 registers: `tbl` looks up the first 64 entries,
    // three `tbx` the rest (indices past a 64-byte table leave the lane as it is).
    let t: [uint8x16x4_t; 4] = std::array::from_fn(|k| unsafe { vld1q_u8_x4(table.0.as_ptr().add(64 * k)) });
    let step = unsafe { vdupq_n_u8(64) };
    for r in 0..rows.min(MR).min(mult.len()).min(bias.len()) {
        let (c, m, b) = unsafe { (vdupq_n_s32(corrections[r]), vdupq_n_f32(mult[r]), vdupq_n_f32(bias[r])) };
        for h in 0..TILE / 16 {
            // Safety: 16 sums and 16 codes at 16h of TILE-long rows.
            let a = unsafe { vld1q_s32_x4(acc[r].as_ptr().add(16 * h)) };
            let q = [a.0, a.1, a.2, a.3].map(|a| quantize4(scale4(a, c, m, b), rq.scale, rq.zp));
            let idx = narrow16(q);
            unsafe {
                let mut v = vqtbl4q_u8(t[0], idx);
                let idx = vsubq_u8(idx, step);
                v = vqtbx4q_u8(v, t[1], idx);
                let idx = vsubq_u8(idx, step);
                v = vqtbx4q_u8(v, t[2], idx);
                let idx = vsubq_u8(idx, step);
                v = vqtbx4q_u8(v, t[3], idx);
                vst1q_u8(out[r].as_mut_ptr().add(16 * h), v);
            }
        }
    }
}

/// # Safety
/// Always safe on aarch64; `unsafe` to fit [`crate::linalg::int8::MakeFinishTable`].
pub unsafe fn finish_table(q: QuantParams, epilogue: &Epilogue) -> FinishTable {
    let rq = Requantize4::new(q);
    let mut table = [0f32; 256];
    for (k, part) in table.chunks_exact_mut(4).enumerate() {
        let code: [i32; 4] = std::array::from_fn(|i| (4 * k + i) as i32);
        // Safety: 4 lanes in, 4 floats out.
        unsafe { vst1q_f32(part.as_mut_ptr(), activate4(rq.value(vld1q_s32(code.as_ptr())), epilogue)) };
    }
    FinishTable(table)
}

/// # Safety
/// See [`crate::linalg::int8::DepthwiseRow`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn depthwise_row(plane: *const u8, offsets: &[usize], taps: &[i8], n: usize, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, out: *mut f32) {
    let rq = epilogue.requantize.map(Requantize4::new);
    let (c, m, b) = unsafe { (vdupq_n_s32(correction), vdupq_n_f32(mult), vdupq_n_f32(bias)) };
    let mut i = 0;
    while i < n {
        let mut acc = unsafe { [vdupq_n_s32(0); 4] };
        for (&off, &w) in offsets.iter().zip(taps) {
            // Safety: the caller guarantees DEPTHWISE_SLACK (≥ 16) readable bytes past the row.
            unsafe {
                let x = vld1q_u8(plane.add(off + i));
                let (lo, hi) = (vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(x))), vreinterpretq_s16_u16(vmovl_high_u8(x)));
                let w = vdup_n_s16(i16::from(w));
                acc[0] = vmlal_s16(acc[0], vget_low_s16(lo), w);
                acc[1] = vmlal_high_s16(acc[1], lo, vcombine_s16(w, w));
                acc[2] = vmlal_s16(acc[2], vget_low_s16(hi), w);
                acc[3] = vmlal_high_s16(acc[3], hi, vcombine_s16(w, w));
            }
        }
        let v = acc.map(|a| finish4(a, c, m, b, epilogue, rq));
        // Safety: `out` holds n floats and i < n.
        unsafe { store16_within(out, i, n, v) };
        i += 16;
    }
}

/// Store the 16 lanes of `v` at `out[i ..]`, only those below `out[n]`.
///
/// # Safety
/// `out` holds `n` writable floats and `i < n`.
#[inline(always)]
pub(super) unsafe fn store16_within(out: *mut f32, i: usize, n: usize, v: [float32x4_t; 4]) {
    let v = float32x4x4_t(v[0], v[1], v[2], v[3]);
    if i + 16 <= n {
        // Safety: 16 floats at i, all below n.
        unsafe { vst1q_f32_x4(out.add(i), v) };
    } else {
        let mut tail = [0f32; 16];
        // Safety: `tail` holds 16 floats.
        unsafe { vst1q_f32_x4(tail.as_mut_ptr(), v) };
        for (j, &t) in tail.iter().enumerate().take(n - i) {
            // Safety: i + j < n.
            unsafe { *out.add(i + j) = t };
        }
    }
}

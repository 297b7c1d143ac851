//! The element loops around the int8 tiles, written plainly: the definitions
//! the vector versions of every instruction set are held to.

use crate::linalg::epilogue::{quantize, CodeTable, Epilogue, FinishTable, QuantParams};
use crate::linalg::int8::{Acc, Elementwise, MR, TILE};

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

/// # Safety
/// See [`crate::linalg::int8::QuantizeU8`].
pub unsafe fn quantize_u8(src: *const f32, n: usize, dst: *mut u8, scale: f32, zero_point: u8) {
    // Safety: the caller guarantees both ranges.
    let (src, dst) = unsafe { (std::slice::from_raw_parts(src, n), std::slice::from_raw_parts_mut(dst, n)) };
    let zp = f32::from(zero_point);
    dst.iter_mut().zip(src).for_each(|(d, &x)| *d = quantize(x, scale, zp));
}

/// # Safety
/// See [`crate::linalg::int8::QuantizeX4`].
pub unsafe fn quantize_x4(lines: [Option<*const f32>; 4], n: usize, dst: *mut u8, scale: f32, zero_point: u8, xor: u8) {
    let zp = f32::from(zero_point);
    // Safety: the caller guarantees every range.
    let lines = lines.map(|l| l.map(|p| unsafe { std::slice::from_raw_parts(p, n) }));
    let dst = unsafe { std::slice::from_raw_parts_mut(dst, 4 * n) };
    for (i, slot) in dst.chunks_exact_mut(4).enumerate() {
        for (b, line) in slot.iter_mut().zip(&lines) {
            *b = line.map_or(zero_point, |l| quantize(l[i], scale, zp)) ^ xor;
        }
    }
}

/// # Safety
/// See [`crate::linalg::int8::InterleaveX4`].
pub unsafe fn interleave_x4(lines: [*const u8; 4], n: usize, dst: *mut u8, xor: u8) {
    // Safety: the caller guarantees every range.
    let lines = lines.map(|p| unsafe { std::slice::from_raw_parts(p, n) });
    let dst = unsafe { std::slice::from_raw_parts_mut(dst, 4 * n) };
    for (i, slot) in dst.chunks_exact_mut(4).enumerate() {
        for (b, line) in slot.iter_mut().zip(&lines) {
            *b = line[i] ^ xor;
        }
    }
}

/// # Safety
/// See [`crate::linalg::int8::FinishRows`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn finish_rows(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], epilogue: &Epilogue, table: Option<&FinishTable>, out: &mut [[f32; TILE]; MR]) {
    for r in 0..rows.min(MR) {
        for (o, &a) in out[r].iter_mut().zip(&acc[r]) {
            let v = (a - corrections[r]) as f32 * mult[r] + bias[r];
            *o = match (table, epilogue.requantize) {
                (Some(t), Some(q)) => t.0[usize::from(quantize(v, q.scale, f32::from(q.zero_point)))],
                _ => epilogue.apply(v),
            };
        }
    }
}

/// # Safety
/// See [`crate::linalg::int8::FinishCodes`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn finish_codes(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], requantize: QuantParams, table: &CodeTable, out: &mut [[u8; TILE]; MR]) {
    let zp = f32::from(requantize.zero_point);
    for r in 0..rows.min(MR) {
        for (o, &a) in out[r].iter_mut().zip(&acc[r]) {
            let v = (a - corrections[r]) as f32 * mult[r] + bias[r];
            *o = table.0[usize::from(quantize(v, requantize.scale, zp))];
        }
    }
}

/// # Safety
/// Always safe (portable); `unsafe` to fit [`crate::linalg::int8::MakeFinishTable`].
pub unsafe fn finish_table(q: QuantParams, epilogue: &Epilogue) -> FinishTable {
    FinishTable(std::array::from_fn(|code| epilogue.activate((code as f32 - f32::from(q.zero_point)) * q.scale)))
}

/// # Safety
/// See [`crate::linalg::int8::DepthwiseRow`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn depthwise_row(plane: *const u8, offsets: &[usize], taps: &[i8], n: usize, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, out: *mut f32) {
    // Safety: the caller guarantees the output range.
    let out = unsafe { std::slice::from_raw_parts_mut(out, n) };
    for (i, o) in out.iter_mut().enumerate() {
        let mut a = 0i32;
        for (&off, &w) in offsets.iter().zip(taps) {
            // Safety: the caller guarantees every tap's row is readable.
            a += i32::from(unsafe { *plane.add(off + i) }) * i32::from(w);
        }
        *o = epilogue.apply((a - correction) as f32 * mult + bias);
    }
}

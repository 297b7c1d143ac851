//! The dot-product extension (Cortex-A76 in the Pi 5, A78AE): the int8 tile on
//! `sdot`, 16 multiply-adds an instruction.
//!
//! Activations are stored shifted to i8 (`q - 128`, corrected by `128 × Σw`
//! when finishing) since `sdot` multiplies signed by signed. The indexed form
//! `sdot acc, a, w.4b[i]` multiplies each pixel's 4 channel bytes by row `i`'s
//! 4 weights of a 16-byte vector holding 4 rows, so one load of 32 weight bytes
//! serves all 8 rows of a step without broadcasts. Inline assembly: the lane
//! `sdot` intrinsics are not stable Rust yet.

use crate::linalg::int8::{Acc, TILE};
use std::arch::asm;

/// One reduction step of an 8 rows × 8 pixels pass: the step's offset from the
/// offsets list, 8 pixels' 4 channels (v16, v17), 8 rows' 4 weights (v18, v19),
/// 16 `sdot` into v0..v15 (row r, pixels 0-3 in v(2r), 4-7 in v(2r+1)).
macro_rules! sdot_step {
    () => {
        concat!(
            "ldr {off}, [{offs}], #8\n",
            "add {off}, {base}, {off}\n",
            "ldp q16, q17, [{off}]\n",
            "ldp q18, q19, [{w}], #32\n",
            "sdot v0.4s, v16.16b, v18.4b[0]\n",
            "sdot v1.4s, v17.16b, v18.4b[0]\n",
            "sdot v2.4s, v16.16b, v18.4b[1]\n",
            "sdot v3.4s, v17.16b, v18.4b[1]\n",
            "sdot v4.4s, v16.16b, v18.4b[2]\n",
            "sdot v5.4s, v17.16b, v18.4b[2]\n",
            "sdot v6.4s, v16.16b, v18.4b[3]\n",
            "sdot v7.4s, v17.16b, v18.4b[3]\n",
            "sdot v8.4s, v16.16b, v19.4b[0]\n",
            "sdot v9.4s, v17.16b, v19.4b[0]\n",
            "sdot v10.4s, v16.16b, v19.4b[1]\n",
            "sdot v11.4s, v17.16b, v19.4b[1]\n",
            "sdot v12.4s, v16.16b, v19.4b[2]\n",
            "sdot v13.4s, v17.16b, v19.4b[2]\n",
            "sdot v14.4s, v16.16b, v19.4b[3]\n",
            "sdot v15.4s, v17.16b, v19.4b[3]\n",
        )
    };
}

/// The tile in 4 passes of 8 rows × 8 pixels; the step loop is unrolled twice.
///
/// # Safety
/// See [`crate::linalg::int8::Kernel`]; the CPU has the dot-product extension
/// and the activations are stored shifted.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    const PIXELS: usize = 8;
    let row_bytes = TILE * 4;
    for pass in 0..TILE / PIXELS {
        let pairs = offsets.len() / 2;
        let odd = offsets.len() % 2;
        // Safety: the loads stay inside what the caller guarantees (4 * TILE bytes from
        // every x + offset, 32 weight bytes per step); the stores write the 8 pixels of
        // this pass in each of the 8 rows of `acc`.
        unsafe {
            asm!(
                "movi v0.4s, #0", "movi v1.4s, #0", "movi v2.4s, #0", "movi v3.4s, #0",
                "movi v4.4s, #0", "movi v5.4s, #0", "movi v6.4s, #0", "movi v7.4s, #0",
                "movi v8.4s, #0", "movi v9.4s, #0", "movi v10.4s, #0", "movi v11.4s, #0",
                "movi v12.4s, #0", "movi v13.4s, #0", "movi v14.4s, #0", "movi v15.4s, #0",
                "cbz {pairs}, 2f",
                "1:",
                sdot_step!(),
                sdot_step!(),
                "subs {pairs}, {pairs}, #1",
                "b.ne 1b",
                "2:",
                "cbz {odd}, 3f",
                sdot_step!(),
                "3:",
                "stp q0, q1, [{out}]",
                "add {out}, {out}, {rb}",
                "stp q2, q3, [{out}]",
                "add {out}, {out}, {rb}",
                "stp q4, q5, [{out}]",
                "add {out}, {out}, {rb}",
                "stp q6, q7, [{out}]",
                "add {out}, {out}, {rb}",
                "stp q8, q9, [{out}]",
                "add {out}, {out}, {rb}",
                "stp q10, q11, [{out}]",
                "add {out}, {out}, {rb}",
                "stp q12, q13, [{out}]",
                "add {out}, {out}, {rb}",
                "stp q14, q15, [{out}]",
                base = in(reg) x.add(4 * PIXELS * pass),
                offs = inout(reg) offsets.as_ptr() => _,
                w = inout(reg) w => _,
                pairs = inout(reg) pairs => _,
                odd = in(reg) odd,
                off = out(reg) _,
                out = inout(reg) (acc.as_mut_ptr() as *mut i32).add(PIXELS * pass) => _,
                rb = in(reg) row_bytes,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                options(nostack),
            );
        }
    }
}

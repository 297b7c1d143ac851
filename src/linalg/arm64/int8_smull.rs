//! NEON without the dot product (Cortex-A72, A57): the int8 tile on widening
//! multiplies.
//!
//! `smull` multiplies 8 i8 pairs into i16, `smlal` adds a second step's 8
//! products into the same lanes, and `sadalp` adds adjacent i16 lanes into i32
//! accumulators: 16 multiply-adds in 3 instructions. Two i8×i8 products fit in
//! an i16 as long as no weight is -128 (`2 × 128 × 127 < 2¹⁵`); panels with a
//! -128 take [`tile_any`], one product per `sadalp`. Activations are stored
//! shifted to i8 (`q - 128`), corrected by `128 × Σw` when finishing.
//!
//! The tile runs in 8 passes of all 8 rows × 4 pixels. One 16-byte load holds
//! the 4 pixels' 4 channels of a step; `ld4r` loads 4 rows' 4 weights, each
//! repeated over a vector, so `smull` (low half: pixels 0, 1) and `smull2` (high
//! half: pixels 2, 3) multiply each pixel by its row's weights. Each row keeps
//! two accumulators, `[p0 c01, p0 c23, p1 c01, p1 c23]` and the same for pixels
//! 2 and 3, which one `addp` turns into the 4 pixels' sums. Inline assembly:
//! with intrinsics the compiler scheduled all 16 products before their
//! accumulations and spilled to the stack, twice the instructions.

use crate::linalg::int8::{Acc, MR, TILE};
use std::arch::asm;

/// One row's two products of a step pair (activations v16, v17; weights `$wt`,
/// `$wu` of steps t and t + 1) into accumulators `$lo` (pixels 0, 1) and `$hi`.
macro_rules! row_pair {
    ($lo:literal, $hi:literal, $wt:literal, $wu:literal) => {
        concat!(
            "smull v26.8h, v16.8b, ", $wt, ".8b\n",
            "smlal v26.8h, v17.8b, ", $wu, ".8b\n",
            "sadalp ", $lo, ".4s, v26.8h\n",
            "smull2 v27.8h, v16.16b, ", $wt, ".16b\n",
            "smlal2 v27.8h, v17.16b, ", $wu, ".16b\n",
            "sadalp ", $hi, ".4s, v27.8h\n",
        )
    };
}

/// One row's product of a single step (activations v16, weights `$wt`).
macro_rules! row_single {
    ($lo:literal, $hi:literal, $wt:literal) => {
        concat!(
            "smull v26.8h, v16.8b, ", $wt, ".8b\n",
            "sadalp ", $lo, ".4s, v26.8h\n",
            "smull2 v27.8h, v16.16b, ", $wt, ".16b\n",
            "sadalp ", $hi, ".4s, v27.8h\n",
        )
    };
}

/// A single step for all 8 rows: offset, 4 pixels, two `ld4r` of 4 rows' weights.
macro_rules! single_step {
    () => {
        concat!(
            "ldr {off}, [{offs}], #8\n",
            "ldr q16, [{base}, {off}]\n",
            "ld4r {{v18.4s, v19.4s, v20.4s, v21.4s}}, [{w}], #16\n",
            row_single!("v0", "v8", "v18"),
            row_single!("v1", "v9", "v19"),
            row_single!("v2", "v10", "v20"),
            row_single!("v3", "v11", "v21"),
            "ld4r {{v18.4s, v19.4s, v20.4s, v21.4s}}, [{w}], #16\n",
            row_single!("v4", "v12", "v18"),
            row_single!("v5", "v13", "v19"),
            row_single!("v6", "v14", "v20"),
            row_single!("v7", "v15", "v21"),
        )
    };
}

/// Zero the 16 accumulators.
macro_rules! zero_acc {
    () => {
        concat!(
            "movi v0.4s, #0\n", "movi v1.4s, #0\n", "movi v2.4s, #0\n", "movi v3.4s, #0\n",
            "movi v4.4s, #0\n", "movi v5.4s, #0\n", "movi v6.4s, #0\n", "movi v7.4s, #0\n",
            "movi v8.4s, #0\n", "movi v9.4s, #0\n", "movi v10.4s, #0\n", "movi v11.4s, #0\n",
            "movi v12.4s, #0\n", "movi v13.4s, #0\n", "movi v14.4s, #0\n", "movi v15.4s, #0\n",
        )
    };
}

/// The 4 pixels' sums of each row (`addp` of its two accumulators), row r at
/// `out + r × 4 × TILE` bytes.
macro_rules! store_rows {
    () => {
        concat!(
            "addp v0.4s, v0.4s, v8.4s\n", "str q0, [{out}]\n",
            "addp v1.4s, v1.4s, v9.4s\n", "str q1, [{out}, #128]\n",
            "addp v2.4s, v2.4s, v10.4s\n", "str q2, [{out}, #256]\n",
            "addp v3.4s, v3.4s, v11.4s\n", "str q3, [{out}, #384]\n",
            "addp v4.4s, v4.4s, v12.4s\n", "str q4, [{out}, #512]\n",
            "addp v5.4s, v5.4s, v13.4s\n", "str q5, [{out}, #640]\n",
            "addp v6.4s, v6.4s, v14.4s\n", "str q6, [{out}, #768]\n",
            "addp v7.4s, v7.4s, v15.4s\n", "str q7, [{out}, #896]\n",
        )
    };
}

const _: () = assert!(MR == 8 && TILE * 4 == 128, "the stores above assume 8 rows of 32 i32");

/// # Safety
/// See [`crate::linalg::int8::Kernel`]; activations stored shifted, no weight is -128.
#[target_feature(enable = "neon")]
pub unsafe fn tile(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    let pairs = offsets.len() / 2;
    let odd = offsets.len() % 2;
    for quad in 0..TILE / 4 {
        // Safety: every load stays inside what the caller guarantees (4 * TILE bytes
        // from each x + offset, MR * 4 weight bytes per step); the stores write this
        // pass's 4 pixels in each of the 8 rows of `acc`.
        unsafe {
            asm!(
                zero_acc!(),
                "add {w2}, {w}, #32",
                "cbz {pairs}, 2f",
                "1:",
                "ldp {off}, {off2}, [{offs}], #16",
                "ldr q16, [{base}, {off}]",
                "ldr q17, [{base}, {off2}]",
                // Steps t and t + 1 are 32 bytes apart: rows 0-3 of each, then rows 4-7.
                "ld4r {{v18.4s, v19.4s, v20.4s, v21.4s}}, [{w}], #16",
                "ld4r {{v22.4s, v23.4s, v24.4s, v25.4s}}, [{w2}], #16",
                row_pair!("v0", "v8", "v18", "v22"),
                row_pair!("v1", "v9", "v19", "v23"),
                row_pair!("v2", "v10", "v20", "v24"),
                row_pair!("v3", "v11", "v21", "v25"),
                "ld4r {{v18.4s, v19.4s, v20.4s, v21.4s}}, [{w}], {skip}",
                "ld4r {{v22.4s, v23.4s, v24.4s, v25.4s}}, [{w2}], {skip}",
                row_pair!("v4", "v12", "v18", "v22"),
                row_pair!("v5", "v13", "v19", "v23"),
                row_pair!("v6", "v14", "v20", "v24"),
                row_pair!("v7", "v15", "v21", "v25"),
                "subs {pairs}, {pairs}, #1",
                "b.ne 1b",
                "2:",
                "cbz {odd}, 3f",
                single_step!(),
                "3:",
                store_rows!(),
                base = in(reg) x.add(16 * quad),
                offs = inout(reg) offsets.as_ptr() => _,
                w = inout(reg) w => _,
                w2 = out(reg) _,
                skip = in(reg) 48usize,
                pairs = inout(reg) pairs => _,
                odd = in(reg) odd,
                off = out(reg) _,
                off2 = out(reg) _,
                out = in(reg) (acc.as_mut_ptr() as *mut i32).add(4 * quad),
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                options(nostack),
            );
        }
    }
}

/// # Safety
/// See [`crate::linalg::int8::Kernel`]; activations stored shifted.
#[target_feature(enable = "neon")]
pub unsafe fn tile_any(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    let steps = offsets.len();
    for quad in 0..TILE / 4 {
        // Safety: as in `tile`.
        unsafe {
            asm!(
                zero_acc!(),
                "cbz {steps}, 2f",
                "1:",
                single_step!(),
                "subs {steps}, {steps}, #1",
                "b.ne 1b",
                "2:",
                store_rows!(),
                base = in(reg) x.add(16 * quad),
                offs = inout(reg) offsets.as_ptr() => _,
                w = inout(reg) w => _,
                steps = inout(reg) steps => _,
                off = out(reg) _,
                out = in(reg) (acc.as_mut_ptr() as *mut i32).add(4 * quad),
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                out("v16") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v26") _, out("v27") _,
                options(nostack),
            );
        }
    }
}

//! Every instruction set's int8 tiles against the portable definition, bit for
//! bit, on every set this CPU runs (natively on x86; under qemu-aarch64 with
//! `-cpu cortex-a72` and `cortex-a76` in CI).

use super::generic;
use super::int8::{Acc, ActivationCode, Kernel, WeightLayout, MR, TILE};

/// Random-looking but deterministic bytes.
pub(crate) fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8
        })
        .collect()
}

/// Weights packed `I8x4` (4 per row and step) in another layout.
fn relayout(w: &[i8], layout: WeightLayout) -> Vec<i8> {
    match layout {
        WeightLayout::I8x4 => w.to_vec(),
        WeightLayout::I16EvenOdd => w.chunks_exact(4).flat_map(|q| [q[0], q[2], q[1], q[3]].into_iter().flat_map(|v| (v as i16).to_le_bytes().map(|b| b as i8))).collect(),
    }
}

/// `kernel`'s tile on `x` (stored as `code` requires), corrected back to `Σ q w`.
fn run(kernel: Kernel, code: ActivationCode, layout: WeightLayout, x: &[u8], offsets: &[usize], w: &[i8]) -> Acc {
    let mut got: Acc = [[0; TILE]; MR];
    let packed = relayout(w, layout);
    match code {
        // Safety: the buffers hold every step's 4 * TILE bytes and MR * 4 weights per step.
        ActivationCode::Unsigned => unsafe { kernel(x.as_ptr(), offsets, packed.as_ptr(), &mut got) },
        ActivationCode::ShiftedSigned => {
            let shifted: Vec<u8> = x.iter().map(|q| q ^ 0x80).collect();
            unsafe { kernel(shifted.as_ptr(), offsets, packed.as_ptr(), &mut got) };
            // Σ (q - 128) w = Σ q w - 128 Σ w
            for (r, row) in got.iter_mut().enumerate() {
                let sum: i32 = (0..offsets.len()).map(|t| (0..4).map(|j| i32::from(w[(t * MR + r) * 4 + j])).sum::<i32>()).sum();
                row.iter_mut().for_each(|v| *v += 128 * sum);
            }
        }
    }
    got
}

#[test]
fn every_tile_kernel_equals_the_portable_one() {
    // Odd and even step counts (kernels pair steps), one step, extreme values.
    for steps in [1usize, 2, 7, 13, 40] {
        let offsets: Vec<usize> = (0..steps).map(|t| t * 200 + (t % 3) * 4).collect();
        let len = steps * 200 + 4 * 2 * TILE + 64;
        for (case, (x, w)) in [
            (bytes(len, 1), bytes(steps * MR * 4, 2)),
            (vec![255u8; len], vec![127u8; steps * MR * 4]),
            (vec![0u8; len], bytes(steps * MR * 4, 3).iter().map(|b| b | 0x80).collect()),
        ]
        .into_iter()
        .enumerate()
        {
            let w_any: Vec<i8> = w.iter().map(|&b| b as i8).collect();
            // The same weights with -128 moved to -127, for the kernels that cannot take it.
            let w_no_min: Vec<i8> = w_any.iter().map(|&v| v.max(-127)).collect();
            let mut want: Acc = [[0; TILE]; MR];
            let mut want_no_min: Acc = [[0; TILE]; MR];
            // Safety: as in `run`.
            unsafe { generic::int8::tile(x.as_ptr(), &offsets, w_any.as_ptr(), &mut want) };
            unsafe { generic::int8::tile(x.as_ptr(), &offsets, w_no_min.as_ptr(), &mut want_no_min) };
            let mut shifted: Acc = [[0; TILE]; MR];
            let xs: Vec<u8> = x.iter().map(|q| q ^ 0x80).collect();
            unsafe { generic::int8::tile_shifted(xs.as_ptr(), &offsets, w_any.as_ptr(), &mut shifted) };
            assert_eq!(run(generic::int8::tile_shifted, ActivationCode::ShiftedSigned, WeightLayout::I8x4, &x, &offsets, &w_any), want, "shifted reference, case {case}");
            for set in super::available() {
                let g = set.int8_gemm;
                let what = format!("{} ({}), {steps} steps, case {case}", set.name, g.name);
                assert_eq!(run(g.tile_any, g.code, g.weights, &x, &offsets, &w_any), want, "tile_any of {what}");
                assert_eq!(run(g.tile, g.code, g.weights, &x, &offsets, &w_no_min), want_no_min, "tile of {what}");
                if let Some(pair) = g.pair {
                    let mut got: [Acc; 2] = [[[0; TILE]; MR]; 2];
                    assert_eq!(g.code, ActivationCode::Unsigned, "pair kernels read unsigned codes");
                    // Safety: 4 * 2 * TILE bytes are readable from every offset.
                    let packed = relayout(&w_any, g.weights);
                    unsafe { pair(x.as_ptr(), &offsets, packed.as_ptr(), &mut got) };
                    let mut second: Acc = [[0; TILE]; MR];
                    unsafe { generic::int8::tile(x.as_ptr().add(4 * TILE), &offsets, w_any.as_ptr(), &mut second) };
                    assert_eq!(got, [want, second], "pair of {what}");
                }
            }
        }
    }
}

//! Every instruction set's element loops against the portable definitions
//! (`generic::ew`), bit for bit, on every set this CPU runs (natively on x86;
//! under qemu-aarch64 with `-cpu cortex-a72` and `cortex-a76` in CI). The one
//! exception is AVX-512's SiLU, whose reciprocal is `vrcp14ps` and a Newton step:
//! held to 2 ulps.

use super::epilogue::{CodeTable, Epilogue, QuantParams};
use super::generic::ew as reference;
use super::int8::{Acc, Elementwise, DEPTHWISE_SLACK, MR, TILE};
use super::int8_tests::bytes;

/// Floats that exercise rounding: near half-integer multiples of `scale`, both
/// signs, zeros, huge values, infinities and NaN.
fn tricky_floats(n: usize, scale: f32, seed: u32) -> Vec<f32> {
    let r = bytes(4 * n, seed);
    (0..n)
        .map(|i| match i % 23 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -0.0,
            4 => 1e30,
            5 => (i as f32 + 0.5) * scale,
            6 => -(i as f32 + 0.5) * scale,
            7 => ((i as f32 + 0.5) * scale).next_up(),
            _ => {
                let v = u32::from_le_bytes([r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]]);
                (v as f32 / u32::MAX as f32 - 0.5) * 600.0 * scale
            }
        })
        .collect()
}

fn epilogues() -> Vec<Epilogue> {
    let q = QuantParams { scale: 0.043, zero_point: 117 };
    vec![
        Epilogue::default(),
        Epilogue { relu: true, ..Default::default() },
        Epilogue { hardswish: Some((1.0 / 6.0, 0.5)), ..Default::default() },
        Epilogue { silu: true, ..Default::default() },
        Epilogue { requantize: Some(q), ..Default::default() },
        Epilogue { requantize: Some(q), relu: true, ..Default::default() },
        Epilogue { requantize: Some(q), hardswish: Some((0.2, 0.5)), ..Default::default() },
        Epilogue { requantize: Some(q), silu: true, ..Default::default() },
    ]
}

/// Whether `set` computes `epilogue` bit for bit (AVX-512's SiLU does not).
fn exact(set: &str, epilogue: &Epilogue) -> bool {
    !(set == "avx512" && epilogue.silu)
}

fn assert_close(got: &[f32], want: &[f32], exact: bool, what: &str) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if exact {
            assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what}: [{i}] = {g:e}, want {w:e}");
        } else {
            let ulps = (g.to_bits() as i64 - w.to_bits() as i64).abs();
            assert!(ulps <= 2 || (g - w).abs() <= 1e-30, "{what}: [{i}] = {g:e}, want {w:e} ({ulps} ulps)");
        }
    }
}

fn sets() -> Vec<(&'static str, Elementwise)> {
    super::available().into_iter().map(|s| (s.name, s.ew)).collect()
}

#[test]
fn quantizing_equals_the_definition() {
    for (name, ew) in sets() {
        for (scale, zp) in [(0.1f32, 128u8), (0.0974, 0), (1.0 / 3.0, 255), (2.5, 7)] {
            for n in [1usize, 15, 16, 17, 64, 100] {
                let xs = tricky_floats(n, scale, n as u32);
                let (mut want, mut got) = (vec![0u8; n], vec![0u8; n]);
                // Safety: both buffers hold n elements; the CPU runs every available set.
                unsafe { reference::quantize_u8(xs.as_ptr(), n, want.as_mut_ptr(), scale, zp) };
                unsafe { (ew.quantize_u8)(xs.as_ptr(), n, got.as_mut_ptr(), scale, zp) };
                assert_eq!(got, want, "{name}: quantize_u8 n {n} scale {scale} zp {zp}");
                let lines = [Some(xs.as_ptr()), None, Some(xs[1..].as_ptr()), Some(xs.as_ptr())];
                for xor in [0u8, 0x80] {
                    let (mut want, mut got) = (vec![0u8; 4 * (n - 1)], vec![0u8; 4 * (n - 1)]);
                    unsafe { reference::quantize_x4(lines, n - 1, want.as_mut_ptr(), scale, zp, xor) };
                    unsafe { (ew.quantize_x4)(lines, n - 1, got.as_mut_ptr(), scale, zp, xor) };
                    assert_eq!(got, want, "{name}: quantize_x4 n {} xor {xor}", n - 1);
                    let b = bytes(4 * n, 9);
                    let blines = [b.as_ptr(), b[n..].as_ptr(), b[2 * n..].as_ptr(), b[3 * n..].as_ptr()];
                    let (mut want, mut got) = (vec![0u8; 4 * n], vec![0u8; 4 * n]);
                    unsafe { reference::interleave_x4(blines, n, want.as_mut_ptr(), xor) };
                    unsafe { (ew.interleave_x4)(blines, n, got.as_mut_ptr(), xor) };
                    assert_eq!(got, want, "{name}: interleave_x4 n {n} xor {xor}");
                }
            }
        }
    }
}

/// Sums over the whole code range and past both ends.
fn sums(seed: u32) -> Acc {
    let r = bytes(4 * MR * TILE, seed);
    std::array::from_fn(|row| std::array::from_fn(|i| {
        let k = 4 * (row * TILE + i);
        (i32::from_le_bytes([r[k], r[k + 1], r[k + 2], r[k + 3]]) >> 12) + (row as i32 - 4) * 1000
    }))
}

#[test]
fn finishing_equals_the_definition() {
    let acc = sums(5);
    let corrections: [i32; MR] = std::array::from_fn(|r| 100 * r as i32 - 300);
    let mult: Vec<f32> = (0..MR).map(|r| 1e-4 * (r + 1) as f32).collect();
    let bias: Vec<f32> = (0..MR).map(|r| 0.25 * r as f32 - 1.0).collect();
    for (name, ew) in sets() {
        for epilogue in epilogues() {
            for rows in [MR, 5, 1] {
                let (mut want, mut got) = ([[0f32; TILE]; MR], [[0f32; TILE]; MR]);
                // Safety: rows <= MR; the CPU runs every available set.
                unsafe { reference::finish_rows(&acc, rows, &corrections, &mult, &bias, &epilogue, None, &mut want) };
                unsafe { (ew.finish_rows)(&acc, rows, &corrections, &mult, &bias, &epilogue, None, &mut got) };
                let what = format!("{name}: finish_rows {epilogue:?} rows {rows}");
                assert_close(got[..rows].as_flattened(), want[..rows].as_flattened(), exact(name, &epilogue), &what);
                if let Some(q) = epilogue.requantize {
                    // The set's table gives what the set computes.
                    let table = unsafe { (ew.finish_table)(q, &epilogue) };
                    let reference_table = unsafe { reference::finish_table(q, &epilogue) };
                    assert_close(&table.0, &reference_table.0, exact(name, &epilogue), &format!("{what}: table"));
                    let mut looked_up = [[0f32; TILE]; MR];
                    unsafe { (ew.finish_rows)(&acc, rows, &corrections, &mult, &bias, &epilogue, Some(&table), &mut looked_up) };
                    assert_eq!(looked_up[..rows].as_flattened().iter().map(|v| v.to_bits()).collect::<Vec<_>>(), got[..rows].as_flattened().iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{what}: looked up");
                    // Codes: the set's code table, and finishing through it.
                    let codes = QuantParams { scale: 0.031, zero_point: 3 };
                    let code_table = unsafe { CodeTable::new(&ew, q, &epilogue, codes) };
                    let mut coded = [[0u8; TILE]; MR];
                    unsafe { (ew.finish_codes)(&acc, rows, &corrections, &mult, &bias, q, &code_table, &mut coded) };
                    for r in 0..rows {
                        let mut quantized = [0u8; TILE];
                        unsafe { (ew.quantize_u8)(got[r].as_ptr(), TILE, quantized.as_mut_ptr(), codes.scale, codes.zero_point) };
                        assert_eq!(coded[r], quantized, "{what}: codes of row {r}");
                    }
                }
            }
        }
    }
}

#[test]
fn depthwise_rows_equal_the_definition() {
    let plane = bytes(4096, 11);
    let taps: Vec<i8> = bytes(25, 12).into_iter().map(|b| b as i8).collect();
    for (name, ew) in sets() {
        for epilogue in epilogues() {
            for (n, k) in [(1usize, 9usize), (15, 9), (16, 9), (37, 25), (100, 3)] {
                let offsets: Vec<usize> = (0..k).map(|t| (t / 3) * 130 + t % 3).collect();
                assert!(offsets.iter().all(|&o| o + n + DEPTHWISE_SLACK <= plane.len()));
                let (mut want, mut got) = (vec![0f32; n], vec![0f32; n]);
                // Safety: the plane holds every tap's row and the slack; out holds n floats.
                unsafe { reference::depthwise_row(plane.as_ptr(), &offsets, &taps[..k], n, 300, 0.0021, -0.4, &epilogue, want.as_mut_ptr()) };
                unsafe { (ew.depthwise_row)(plane.as_ptr(), &offsets, &taps[..k], n, 300, 0.0021, -0.4, &epilogue, got.as_mut_ptr()) };
                assert_close(&got, &want, exact(name, &epilogue), &format!("{name}: depthwise_row {epilogue:?} n {n} taps {k}"));
            }
        }
    }
}

//! Finishing accumulators straight into the next convolution's input codes.
//!
//! A convolution that stores codes (see `channels`) requantizes its sums to the
//! graph's output code `q`, applies its activation to `(q − zp) · scale`, then
//! quantizes that float again with its readers' parameters. Both steps after
//! the first depend on `q` alone, so they are one 256-byte table: two `vpermi2b`
//! and a blend give 64 output codes, where finishing to floats and quantizing
//! them took two stores, a reload and a second quantization per 16 values (on
//! a Zen 4 core that was a fifth of the int8 DeepLabV3+'s time).

use super::simd::{quantize16, reciprocal, scale16};
use crate::linalg::epilogue::{CodeTable, QuantParams};
use crate::linalg::int8::{Acc, MR, TILE};
use std::arch::x86_64::*;

/// A [`CodeTable`] in registers, with the requantization that indexes it.
#[derive(Clone, Copy)]
pub(crate) struct CodeLookup {
    table: [__m512i; 4],
    scale: __m512,
    inv: __m512,
    zero_point: __m512i,
}

impl CodeLookup {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(table: &CodeTable, requantize: QuantParams) -> CodeLookup {
        // Safety: the table holds 4 × 64 bytes.
        let table = std::array::from_fn(|k| unsafe { _mm512_loadu_si512(table.0.as_ptr().add(64 * k) as *const __m512i) });
        let (scale, inv) = (_mm512_set1_ps(requantize.scale), _mm512_set1_ps(reciprocal(requantize.scale)));
        CodeLookup { table, scale, inv, zero_point: _mm512_set1_epi32(i32::from(requantize.zero_point)) }
    }

    /// The requantized codes of 16 sums, as bytes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn requantize(&self, a: __m512i, correction: i32, mult: f32, bias: f32) -> __m128i {
        // quantize16 saturates to 0..=255, so the truncation to bytes is exact.
        _mm512_cvtepi32_epi8(quantize16(scale16(a, correction, mult, bias), self.scale, self.inv, self.zero_point))
    }

    /// `table[q]` for the 64 codes `q`: bit 7 picks the table's half, `vpermi2b`
    /// looks up the low 7 bits in each.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(crate) fn lookup(&self, q: __m512i) -> __m512i {
        let [t0, t1, t2, t3] = self.table;
        let low = _mm512_permutex2var_epi8(t0, q, t1);
        let high = _mm512_permutex2var_epi8(t2, q, t3);
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(q), low, high)
    }

    /// Up to four groups of 16 requantized codes as one vector, group `j` at byte `16j`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn join<const G: usize>(groups: [__m128i; G]) -> __m512i {
        let mut v = _mm512_setzero_si512();
        for (j, &g) in groups.iter().enumerate() {
            v = match j {
                0 => _mm512_inserti32x4::<0>(v, g),
                1 => _mm512_inserti32x4::<1>(v, g),
                2 => _mm512_inserti32x4::<2>(v, g),
                _ => _mm512_inserti32x4::<3>(v, g),
            };
        }
        v
    }
}

const _: () = assert!(TILE == 32, "finish_rows_codes stores a tile row as one 32-byte half");

/// `simd::finish_rows` followed by quantizing into codes, for an epilogue
/// that requantizes with `requantize`: the codes of a tile's `rows` rows into `out`.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VBMI.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn finish_rows_codes(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], requantize: QuantParams, table: &CodeTable, out: &mut [[u8; TILE]; MR]) {
    let t = CodeLookup::new(table, requantize);
    let rows = rows.min(MR).min(mult.len()).min(bias.len());
    // Two rows per lookup: 64 codes.
    for r in (0..rows).step_by(2) {
        let pair = (r + 1 < rows) as usize + 1;
        let mut groups = [_mm_setzero_si128(); 4];
        for k in 0..pair {
            for h in 0..2 {
                // Safety: a row holds TILE = 32 sums.
                let a = unsafe { _mm512_loadu_si512(acc[r + k].as_ptr().add(16 * h) as *const __m512i) };
                groups[2 * k + h] = t.requantize(a, corrections[r + k], mult[r + k], bias[r + k]);
            }
        }
        let codes = t.lookup(CodeLookup::join(groups));
        for k in 0..pair {
            let half = if k == 0 { _mm512_castsi512_si256(codes) } else { _mm512_extracti64x4_epi64::<1>(codes) };
            // Safety: the row holds 32 bytes.
            unsafe { _mm256_storeu_si256(out[r + k].as_mut_ptr() as *mut __m256i, half) };
        }
    }
}

/// [`finish_rows_codes`] without VBMI: the requantized codes in vectors, the
/// table looked up one code at a time.
///
/// # Safety
/// The CPU has AVX-512 F and BW.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn finish_rows_codes_scalar_lookup(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], requantize: QuantParams, table: &CodeTable, out: &mut [[u8; TILE]; MR]) {
    let (s, inv, zp) = (_mm512_set1_ps(requantize.scale), _mm512_set1_ps(reciprocal(requantize.scale)), _mm512_set1_epi32(i32::from(requantize.zero_point)));
    for r in 0..rows.min(MR).min(mult.len()).min(bias.len()) {
        for h in 0..TILE / 16 {
            // Safety: a row holds TILE = 32 sums and 32 codes.
            let a = unsafe { _mm512_loadu_si512(acc[r].as_ptr().add(16 * h) as *const __m512i) };
            let q = _mm512_cvtepi32_epi8(quantize16(scale16(a, corrections[r], mult[r], bias[r]), s, inv, zp));
            unsafe { _mm_storeu_si128(out[r].as_mut_ptr().add(16 * h) as *mut __m128i, q) };
        }
        out[r].iter_mut().for_each(|c| *c = table.0[usize::from(*c)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::epilogue::{quantize, Epilogue};

    /// The portable path: finish to a float (`Epilogue::apply`), then quantize it.
    fn portable(a: i32, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, codes: QuantParams) -> u8 {
        quantize(epilogue.apply((a - correction) as f32 * mult + bias), codes.scale, f32::from(codes.zero_point))
    }

    #[test]
    fn looked_up_codes_equal_finishing_and_quantizing() {
        if !super::super::available() || !super::super::has_vbmi() {
            return;
        }
        let set = super::super::set().ew;
        let requantize = QuantParams { scale: 0.043, zero_point: 117 };
        let codes = QuantParams { scale: 0.031, zero_point: 3 };
        for epilogue in [
            Epilogue { requantize: Some(requantize), ..Default::default() },
            Epilogue { requantize: Some(requantize), relu: true, ..Default::default() },
            Epilogue { requantize: Some(requantize), hardswish: Some((1.0 / 6.0, 0.5)), ..Default::default() },
        ] {
            // Safety: the CPU runs the set (checked above).
            let table = unsafe { CodeTable::new(&set, requantize, &epilogue, codes) };
            let mut state = 7u32;
            let acc: [[i32; TILE]; MR] = std::array::from_fn(|_| {
                std::array::from_fn(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 12) as i32 - (1 << 19)
                })
            });
            let corrections: [i32; MR] = std::array::from_fn(|r| 100 * r as i32 - 300);
            let mult: Vec<f32> = (0..MR).map(|r| 1e-5 * (r + 1) as f32).collect();
            let bias: Vec<f32> = (0..MR).map(|r| 0.25 * r as f32 - 1.0).collect();
            // Odd row counts leave the last lookup with one row.
            for rows in [MR, 5, 1] {
                let mut out = [[0u8; TILE]; MR];
                // Safety: the CPU runs the set (checked above).
                unsafe { finish_rows_codes(&acc, rows, &corrections, &mult, &bias, requantize, &table, &mut out) };
                let mut scalar = [[0u8; TILE]; MR];
                unsafe { finish_rows_codes_scalar_lookup(&acc, rows, &corrections, &mult, &bias, requantize, &table, &mut scalar) };
                assert_eq!(scalar[..rows], out[..rows], "{epilogue:?}: the scalar lookup differs");
                for r in 0..rows {
                    for i in 0..TILE {
                        let want = portable(acc[r][i], corrections[r], mult[r], bias[r], &epilogue, codes);
                        assert_eq!(out[r][i], want, "{epilogue:?}: row {r} of {rows}, pixel {i}");
                    }
                }
            }
        }
    }
}

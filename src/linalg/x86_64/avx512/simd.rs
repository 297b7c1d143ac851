//! AVX-512 versions of the per-element steps around the kernels: quantizing the
//! input into X4 and finishing the accumulators. The portable versions (`pack::quantize`,
//! `op::Epilogue::apply`) compute the same values; x86-64's baseline (SSE2) has no
//! vector round or saturating conversion, so without these the element loops, not
//! the dot products, would dominate.

use crate::linalg::epilogue::{Epilogue, FinishTable, QuantParams};
use crate::linalg::int8::{MR, TILE};
use std::arch::x86_64::*;

/// The mask of the first `min(k, 16)` lanes: a row's tail in a masked load or store.
#[inline]
pub(crate) fn tail_mask(k: usize) -> __mmask16 {
    if k >= 16 {
        0xffff
    } else {
        (1u16 << k) - 1
    }
}

/// `1 / scale`, for [`quantize16`]'s multiply; NaN where that reciprocal would
/// lose precision (a subnormal or infinite scale or reciprocal), which makes
/// every lane take the division.
#[inline]
pub(crate) fn reciprocal(scale: f32) -> f32 {
    let inv = 1.0 / scale;
    if scale.is_normal() && inv.is_normal() {
        inv
    } else {
        f32::NAN
    }
}

/// `saturate(round_half_to_even(x / s) + zp)` on 16 lanes, as i32, with
/// `inv = reciprocal(s)`. The float clamp first keeps the conversion in range
/// (NaN ends as 0, as in `pack::quantize`).
///
/// The quotient is `x × inv`, not `x / s`: a 16-lane division takes the
/// divider for several cycles, and quantizing inputs and requantizing outputs
/// was a third of the int8 DeepLabV3+'s time, most of it waiting on it. The
/// product is within 1.5 ulp of the rounded quotient (`inv` and the product
/// each round once), so it rounds to the same integer unless it lies within
/// that of a half-integer; lanes within 8 ulp of one (|v| · 2⁻²⁰), or NaN, are
/// divided as ONNX specifies. That happens to about one vector in a thousand.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn quantize16(x: __m512, scale: __m512, inv: __m512, zp: __m512i) -> __m512i {
    let mut v = _mm512_mul_ps(x, inv);
    let nearest = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
    let magnitude = _mm512_abs_ps(v);
    let off = _mm512_abs_ps(_mm512_sub_ps(v, nearest));
    // Not (off + |v|·2⁻²⁰ < 0.5), so that NaN lanes divide too.
    let near_half = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(_mm512_fmadd_ps(magnitude, _mm512_set1_ps(1.0 / 1_048_576.0), off), _mm512_set1_ps(0.5));
    if near_half != 0 {
        v = _mm512_mask_div_ps(v, near_half, x, scale);
    }
    let v = _mm512_max_ps(_mm512_set1_ps(-1024.0), _mm512_min_ps(_mm512_set1_ps(1024.0), v));
    // MXCSR's default rounding is to nearest, ties to even.
    let q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
    _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255))
}

/// Quantize `n` pixels of up to 4 channel lines into 4-byte X4 slots at `dst`.
///
/// # Safety
/// Each `Some` line holds `n` floats; `dst` has `4 * n` writable bytes.
#[target_feature(enable = "avx512f")]
pub unsafe fn quantize_x4(lines: [Option<*const f32>; 4], n: usize, dst: *mut u8, scale: f32, zero_point: u8, xor: u8) {
    let (s, inv) = (_mm512_set1_ps(scale), _mm512_set1_ps(reciprocal(scale)));
    let zp = _mm512_set1_epi32(i32::from(zero_point));
    let flip = _mm512_set1_epi32(i32::from_ne_bytes([xor; 4]));
    let mut i = 0;
    while i < n {
        let k = (n - i).min(16);
        let mask = tail_mask(k);
        let mut word = _mm512_setzero_si512();
        for (j, line) in lines.iter().enumerate() {
            let q = match line {
                // Safety: lanes past `n` are masked off.
                Some(p) => quantize16(unsafe { _mm512_maskz_loadu_ps(mask, p.add(i)) }, s, inv, zp),
                None => zp,
            };
            word = _mm512_or_si512(word, _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * j as i32)));
        }
        word = _mm512_xor_si512(word, flip);
        // Safety: 4 * (i + k) <= 4 * n bytes.
        unsafe { _mm512_mask_storeu_epi32(dst.add(4 * i) as *mut i32, mask, word) };
        i += 16;
    }
}

/// Interleave 4 byte lines of `n` pixels into 4-byte X4 slots at `dst`, each
/// byte XORed with `xor`.
///
/// # Safety
/// The CPU has AVX-512 BW and VL; each line holds `n` bytes; `dst` has `4 * n` writable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn interleave_x4(lines: [*const u8; 4], n: usize, dst: *mut u8, xor: u8) {
    let flip = _mm512_set1_epi32(i32::from_ne_bytes([xor; 4]));
    let mut i = 0;
    while i < n {
        let mask = tail_mask(n - i);
        let mut word = flip;
        for (j, line) in lines.iter().enumerate() {
            // Safety: lanes past n are masked off (AVX-512 suppresses their faults).
            let bytes = unsafe { _mm_maskz_loadu_epi8(mask, line.add(i) as *const i8) };
            word = _mm512_xor_si512(word, _mm512_sllv_epi32(_mm512_cvtepu8_epi32(bytes), _mm512_set1_epi32(8 * j as i32)));
        }
        // Safety: the mask keeps the store inside 4 * n bytes.
        unsafe { _mm512_mask_storeu_epi32(dst.add(4 * i) as *mut i32, mask, word) };
        i += 16;
    }
}

/// `(acc - correction) × mult + bias` on 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn scale16(a: __m512i, correction: i32, mult: f32, bias: f32) -> __m512 {
    let a = _mm512_sub_epi32(a, _mm512_set1_epi32(correction));
    _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(mult)), _mm512_set1_ps(bias))
}

/// An epilogue's requantization as vectors (scale, its reciprocal, zero point),
/// made once per loop rather than per 16 lanes: the reciprocal is a division.
#[derive(Clone, Copy)]
pub(crate) struct Requantize16(pub(crate) Option<(__m512, __m512, __m512i)>);

impl Requantize16 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(epilogue: &Epilogue) -> Requantize16 {
        Requantize16(epilogue.requantize.map(|q| (_mm512_set1_ps(q.scale), _mm512_set1_ps(reciprocal(q.scale)), _mm512_set1_epi32(i32::from(q.zero_point)))))
    }
}

/// `epilogue((acc - correction) × mult + bias)` on 16 lanes; `rq` is `Requantize16::new(epilogue)`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn finish16(a: __m512i, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, rq: Requantize16) -> __m512 {
    let mut v = scale16(a, correction, mult, bias);
    if let Some((s, inv, zp)) = rq.0 {
        v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(quantize16(v, s, inv, zp), zp)), s);
    }
    activate16(v, epilogue)
}

/// The epilogue's activation (Relu, HardSwish, SiLU) on 16 lanes; the float
/// convolutions (`crate::model::fconv`) share it.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn activate16(mut v: __m512, epilogue: &Epilogue) -> __m512 {
    if epilogue.relu {
        v = _mm512_max_ps(v, _mm512_setzero_ps());
    }
    if let Some((alpha, beta)) = epilogue.hardswish {
        let hs = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(alpha)), _mm512_set1_ps(beta));
        let hs = _mm512_max_ps(_mm512_min_ps(hs, _mm512_set1_ps(1.0)), _mm512_setzero_ps());
        v = _mm512_mul_ps(v, hs);
    }
    if epilogue.silu {
        // 1 / (1 + e): the 14-bit reciprocal and one Newton step (a division
        // here was most of the epilogue's time on YOLOv8n).
        let d = _mm512_add_ps(_mm512_set1_ps(1.0), exp16(_mm512_sub_ps(_mm512_setzero_ps(), v)));
        let r = _mm512_rcp14_ps(d);
        let r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)));
        v = _mm512_mul_ps(v, r);
    }
    v
}

/// `exp(x)` on 16 lanes, Cephes' expf: `2^n · p(r)` with `x = n·ln 2 + r`,
/// within about 2 ulps of libm over the range that does not saturate.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    let x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.37626)), _mm512_set1_ps(-87.33654));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693_359_4)));
    let r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.121_944_4e-4)));
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0)));
    _mm512_scalef_ps(p, n)
}

/// The finished value of every output code: entry `q` is what `finish16` gives
/// for a sum that requantizes to `q`, i.e. the epilogue's activation of
/// `(q − zp) · scale`, computed by the same lane code (so a lookup in it is
/// bit-equal to computing). Worth it for SiLU, whose exp costs about twice
/// the 8 permutes and 7 blends of a lookup; on YOLOv8n finishing was 17 % of
/// the int8 time.
///
/// # Safety
/// The CPU has AVX-512 F (the avx512 kernel set is selected only then).
#[target_feature(enable = "avx512f")]
pub unsafe fn requantized_table(q: QuantParams, epilogue: &Epilogue) -> FinishTable {
    let (s, zp) = (_mm512_set1_ps(q.scale), _mm512_set1_epi32(i32::from(q.zero_point)));
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut table = [0f32; 256];
    for (k, part) in table.chunks_exact_mut(16).enumerate() {
        let code = _mm512_add_epi32(lanes, _mm512_set1_epi32(16 * k as i32));
        let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(code, zp)), s);
        // Safety: the part holds 16 floats.
        unsafe { _mm512_storeu_ps(part.as_mut_ptr(), activate16(v, epilogue)) };
    }
    FinishTable(table)
}

/// `table[q]` for 16 codes `q` in 0..=255: the 32-entry permute of each eighth
/// of the table, then three blends on the code's bits 5, 6 and 7.
#[inline]
#[target_feature(enable = "avx512f")]
fn lookup256(table: &[__m512; 16], q: __m512i) -> __m512 {
    let p: [__m512; 8] = std::array::from_fn(|k| _mm512_permutex2var_ps(table[2 * k], q, table[2 * k + 1]));
    let bit = |b: i32| _mm512_test_epi32_mask(q, _mm512_set1_epi32(b));
    let (b5, b6, b7) = (bit(32), bit(64), bit(128));
    let l1: [__m512; 4] = std::array::from_fn(|k| _mm512_mask_blend_ps(b5, p[2 * k], p[2 * k + 1]));
    let l2: [__m512; 2] = std::array::from_fn(|k| _mm512_mask_blend_ps(b6, l1[2 * k], l1[2 * k + 1]));
    _mm512_mask_blend_ps(b7, l2[0], l2[1])
}

/// Scale, bias and epilogue of a tile's `rows` rows of accumulators into
/// `out`: all rows in one call, so their (long, independent) chains overlap.
/// With `table` (made by [`requantized_table`] for this epilogue, which
/// requantizes), the requantized codes are looked up instead of finished.
///
/// # Safety
/// The CPU has AVX-512 F; `mult` and `bias` hold at least `rows` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn finish_rows(acc: &[[i32; TILE]; MR], rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], epilogue: &Epilogue, table: Option<&FinishTable>, out: &mut [[f32; TILE]; MR]) {
    if let (Some(FinishTable(t)), Some(q)) = (table, epilogue.requantize) {
        // Safety: the table holds 16 × 16 floats.
        let t: [__m512; 16] = std::array::from_fn(|k| unsafe { _mm512_loadu_ps(t.as_ptr().add(16 * k)) });
        let (s, inv, zp) = (_mm512_set1_ps(q.scale), _mm512_set1_ps(reciprocal(q.scale)), _mm512_set1_epi32(i32::from(q.zero_point)));
        for r in 0..rows.min(MR).min(mult.len()).min(bias.len()) {
            for h in 0..TILE / 16 {
                // Safety: both rows hold TILE = 32 elements.
                let a = unsafe { _mm512_loadu_si512(acc[r].as_ptr().add(16 * h) as *const __m512i) };
                let v = scale16(a, corrections[r], mult[r], bias[r]);
                unsafe { _mm512_storeu_ps(out[r].as_mut_ptr().add(16 * h), lookup256(&t, quantize16(v, s, inv, zp))) };
            }
        }
        return;
    }
    let rq = Requantize16::new(epilogue);
    for r in 0..rows.min(MR).min(mult.len()).min(bias.len()) {
        for h in 0..TILE / 16 {
            // Safety: both rows hold TILE = 32 elements.
            let a = unsafe { _mm512_loadu_si512(acc[r].as_ptr().add(16 * h) as *const __m512i) };
            let v = finish16(a, corrections[r], mult[r], bias[r], epilogue, rq);
            unsafe { _mm512_storeu_ps(out[r].as_mut_ptr().add(16 * h), v) };
        }
    }
}

/// `dst[..n] = src[..n]` for `n ≤ 32`, with two masked vector moves: for runs
/// this short a `memmove` call cost more than the copy (6–8 % of YOLOv8n's
/// time went to storing tiles that span output rows).
///
/// # Safety
/// `src` holds `n` readable floats and `dst` `n` writable ones; `n ≤ 32`.
#[target_feature(enable = "avx512f")]
pub unsafe fn copy_short(src: *const f32, dst: *mut f32, n: usize) {
    debug_assert!(n <= 32);
    let (m0, m1) = (tail_mask(n), tail_mask(n.saturating_sub(16)));
    // Safety: masked-off lanes are neither read nor written (AVX-512 suppresses their faults).
    unsafe {
        _mm512_mask_storeu_ps(dst, m0, _mm512_maskz_loadu_ps(m0, src));
        _mm512_mask_storeu_ps(dst.add(16), m1, _mm512_maskz_loadu_ps(m1, src.add(16)));
    }
}

/// Quantize `n` floats into `n` bytes.
///
/// # Safety
/// `src` holds `n` floats, `dst` has `n` writable bytes.
#[target_feature(enable = "avx512f")]
pub unsafe fn quantize_u8(src: *const f32, n: usize, dst: *mut u8, scale: f32, zero_point: u8) {
    let (s, inv) = (_mm512_set1_ps(scale), _mm512_set1_ps(reciprocal(scale)));
    let zp = _mm512_set1_epi32(i32::from(zero_point));
    let mut i = 0;
    while i < n {
        let k = (n - i).min(16);
        let mask = tail_mask(k);
        let q = quantize16(unsafe { _mm512_maskz_loadu_ps(mask, src.add(i)) }, s, inv, zp);
        unsafe { _mm512_mask_cvtepi32_storeu_epi8(dst.add(i) as *mut i8, mask, q) };
        i += 16;
    }
}

/// One output row of one depthwise channel: `taps[t] × plane[offsets[t] + i]`
/// summed over the taps, for `i < n`, finished into `out`.
///
/// # Safety
/// `plane + offsets[t] + n + 16` is readable for every tap; `out` has `n` floats.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn depthwise_row(plane: *const u8, offsets: &[usize], taps: &[i8], n: usize, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, out: *mut f32) {
    let rq = Requantize16::new(epilogue);
    let mut i = 0;
    while i < n {
        let mut acc = _mm512_setzero_si512();
        for (&off, &w) in offsets.iter().zip(taps) {
            let x = _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(plane.add(off + i) as *const __m128i) });
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(x, _mm512_set1_epi32(i32::from(w))));
        }
        let k = (n - i).min(16);
        let mask = tail_mask(k);
        unsafe { _mm512_mask_storeu_ps(out.add(i), mask, finish16(acc, correction, mult, bias, epilogue, rq)) };
        i += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizing_by_the_reciprocal_equals_dividing() {
        if !super::super::available() {
            eprintln!("no AVX-512 set on this CPU: the vector quantizer is not used here, nothing to test");
            return;
        }
        // Inputs at and a few ulps around every half-integer multiple of the scale
        // (where the product and the quotient can round apart), plus ordinary
        // values, infinities, NaN, and scales whose reciprocal is not usable.
        for scale in [0.1f32, 0.097_417_735, 0.161_245_14, 1.0 / 3.0, 0.007, 2.5, 1e-39, f32::INFINITY] {
            let mut xs = vec![0.0, -0.0, 1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
            for k in -300..300 {
                let h = (k as f32 + 0.5) * scale;
                let mut x = h;
                for _ in 0..4 {
                    x = x.next_down();
                }
                for _ in 0..9 {
                    xs.push(x);
                    x = x.next_up();
                }
                xs.push(k as f32 * scale * 0.37);
            }
            for zero_point in [0u8, 128, 255] {
                let mut got = vec![0u8; xs.len()];
                // Safety: `available()` above; both buffers hold xs.len() elements.
                unsafe { quantize_u8(xs.as_ptr(), xs.len(), got.as_mut_ptr(), scale, zero_point) };
                for (&x, &q) in xs.iter().zip(&got) {
                    assert_eq!(q, crate::linalg::epilogue::quantize(x, scale, f32::from(zero_point)), "x {x:e} scale {scale:e} zp {zero_point}");
                }
            }
        }
    }

    #[test]
    fn table_lookup_equals_finishing() {
        if !super::super::available() {
            eprintln!("no AVX-512 set on this CPU: the lookup is not used here, nothing to test");
            return;
        }
        let q = QuantParams { scale: 0.07, zero_point: 111 };
        for epilogue in [Epilogue { requantize: Some(q), silu: true, ..Default::default() }, Epilogue { requantize: Some(q), relu: true, hardswish: Some((0.2, 0.5)), ..Default::default() }] {
            // Sums spread over the whole code range and past both ends of it.
            let mut acc = [[0i32; TILE]; MR];
            for (r, row) in acc.iter_mut().enumerate() {
                for (i, a) in row.iter_mut().enumerate() {
                    *a = (r * TILE + i) as i32 * 37 - 4000;
                }
            }
            let (corrections, mult, bias) = ([3; MR], [0.011f32; MR], [0.25f32; MR]);
            let (mut want, mut got) = ([[0f32; TILE]; MR], [[0f32; TILE]; MR]);
            // Safety: `available()` above.
            unsafe {
                let table = requantized_table(q, &epilogue);
                finish_rows(&acc, MR, &corrections, &mult, &bias, &epilogue, None, &mut want);
                finish_rows(&acc, MR, &corrections, &mult, &bias, &epilogue, Some(&table), &mut got);
            }
            assert_eq!(got.map(|r| r.map(f32::to_bits)), want.map(|r| r.map(f32::to_bits)), "{epilogue:?}");
        }
    }
}

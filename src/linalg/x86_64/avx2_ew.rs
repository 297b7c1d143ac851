//! AVX2 + FMA element loops around the int8 tiles, 8 lanes at a time. Each
//! computes what `crate::linalg::generic::ew` computes, bit for bit: a true
//! division for ONNX's `x / scale`, MXCSR's round-half-to-even, `maxps`/`minps`
//! with the constant second so NaN gives the constant (as Rust's `max`/`min`),
//! separate multiplies and adds where the definition has them, FMA where it has
//! `mul_add`.

use crate::linalg::epilogue::{quantize, CodeTable, Epilogue, FinishTable, QuantParams};
use crate::linalg::int8::{Acc, Elementwise, MR, TILE};
use std::arch::x86_64::*;

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

/// `saturate(round_half_to_even(x / s) + zp)` on 8 lanes, as i32 in 0..=255.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn quantize8(x: __m256, scale: __m256, zp: __m256i) -> __m256i {
    // max with the constant second: NaN gives -1024 (0 once saturated), as the definition.
    let v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(x, scale), _mm256_set1_ps(-1024.0)), _mm256_set1_ps(1024.0));
    let q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
    _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(255))
}

/// 32 codes (i32 lanes in 0..=255) as 32 bytes, in order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pack32(q: [__m256i; 4]) -> __m256i {
    // packs/packus work within 128-bit halves; the permute puts the dwords back in order.
    let w01 = _mm256_packs_epi32(q[0], q[1]);
    let w23 = _mm256_packs_epi32(q[2], q[3]);
    let b = _mm256_packus_epi16(w01, w23);
    _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// # Safety
/// See [`crate::linalg::int8::QuantizeU8`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn quantize_u8(src: *const f32, n: usize, dst: *mut u8, scale: f32, zero_point: u8) {
    let (s, zp) = (_mm256_set1_ps(scale), _mm256_set1_epi32(i32::from(zero_point)));
    let mut i = 0;
    while i + 32 <= n {
        // Safety: 32 floats and 32 bytes from i < n.
        let q: [__m256i; 4] = std::array::from_fn(|k| quantize8(unsafe { _mm256_loadu_ps(src.add(i + 8 * k)) }, s, zp));
        unsafe { _mm256_storeu_si256(dst.add(i) as *mut __m256i, pack32(q)) };
        i += 32;
    }
    let zpf = f32::from(zero_point);
    for j in i..n {
        // Safety: j < n.
        unsafe { *dst.add(j) = quantize(*src.add(j), scale, zpf) };
    }
}

/// # Safety
/// See [`crate::linalg::int8::QuantizeX4`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn quantize_x4(lines: [Option<*const f32>; 4], n: usize, dst: *mut u8, scale: f32, zero_point: u8, xor: u8) {
    let (s, zp) = (_mm256_set1_ps(scale), _mm256_set1_epi32(i32::from(zero_point)));
    let flip = _mm256_set1_epi32(i32::from_ne_bytes([xor; 4]));
    let mut i = 0;
    while i + 8 <= n {
        let mut word = flip;
        for (j, line) in lines.iter().enumerate() {
            let q = match line {
                // Safety: each line holds n floats.
                Some(p) => quantize8(unsafe { _mm256_loadu_ps(p.add(i)) }, s, zp),
                None => zp,
            };
            word = _mm256_xor_si256(word, _mm256_sllv_epi32(q, _mm256_set1_epi32(8 * j as i32)));
        }
        // Safety: 32 bytes at 4 * i are inside 4 * n.
        unsafe { _mm256_storeu_si256(dst.add(4 * i) as *mut __m256i, word) };
        i += 8;
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
/// See [`crate::linalg::int8::InterleaveX4`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn interleave_x4(lines: [*const u8; 4], n: usize, dst: *mut u8, xor: u8) {
    let flip = _mm256_set1_epi8(xor as i8);
    let mut i = 0;
    while i + 32 <= n {
        // Safety: each line holds n bytes; 128 bytes at 4 * i are inside 4 * n.
        let [a, b, c, d] = lines.map(|l| unsafe { _mm256_xor_si256(_mm256_loadu_si256(l.add(i) as *const __m256i), flip) });
        let (ab_lo, ab_hi) = (_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b));
        let (cd_lo, cd_hi) = (_mm256_unpacklo_epi8(c, d), _mm256_unpackhi_epi8(c, d));
        // Within each 128-bit half: pixels 0-3, 4-7 (lo) and 8-11, 12-15 (hi).
        let w = [_mm256_unpacklo_epi16(ab_lo, cd_lo), _mm256_unpackhi_epi16(ab_lo, cd_lo), _mm256_unpacklo_epi16(ab_hi, cd_hi), _mm256_unpackhi_epi16(ab_hi, cd_hi)];
        // Halves: w[k] holds pixels 4k.. of the low half and 16 + 4k.. of the high half.
        let out = [
            _mm256_permute2x128_si256::<0x20>(w[0], w[1]),
            _mm256_permute2x128_si256::<0x20>(w[2], w[3]),
            _mm256_permute2x128_si256::<0x31>(w[0], w[1]),
            _mm256_permute2x128_si256::<0x31>(w[2], w[3]),
        ];
        for (k, v) in out.iter().enumerate() {
            unsafe { _mm256_storeu_si256(dst.add(4 * i + 32 * k) as *mut __m256i, *v) };
        }
        i += 32;
    }
    for p in i..n {
        for (j, line) in lines.iter().enumerate() {
            // Safety: p < n.
            unsafe { *dst.add(4 * p + j) = *line.add(p) ^ xor };
        }
    }
}

/// `(a - correction) × mult + bias` on 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scale8(a: __m256i, correction: __m256i, mult: __m256, bias: __m256) -> __m256 {
    _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a, correction)), mult), bias)
}

/// `exp` of `crate::linalg::epilogue` on 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.37626)), _mm256_set1_ps(-87.33654));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693_359_4)));
    let r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.121_944_4e-4)));
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    let two_n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
    _mm256_mul_ps(p, two_n)
}

/// The epilogue's activation (Relu, HardSwish, SiLU) on 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn activate8(mut v: __m256, epilogue: &Epilogue) -> __m256 {
    if epilogue.relu {
        v = _mm256_max_ps(v, _mm256_setzero_ps());
    }
    if let Some((alpha, beta)) = epilogue.hardswish {
        let t = _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(alpha)), _mm256_set1_ps(beta));
        let t = _mm256_max_ps(_mm256_min_ps(t, _mm256_set1_ps(1.0)), _mm256_setzero_ps());
        v = _mm256_mul_ps(v, t);
    }
    if epilogue.silu {
        let d = _mm256_add_ps(_mm256_set1_ps(1.0), exp8(_mm256_sub_ps(_mm256_setzero_ps(), v)));
        v = _mm256_mul_ps(v, _mm256_div_ps(_mm256_set1_ps(1.0), d));
    }
    v
}

/// An epilogue's requantization in vectors.
#[derive(Clone, Copy)]
struct Requantize8 {
    scale: __m256,
    zp: __m256i,
}

impl Requantize8 {
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn new(q: QuantParams) -> Requantize8 {
        Requantize8 { scale: _mm256_set1_ps(q.scale), zp: _mm256_set1_epi32(i32::from(q.zero_point)) }
    }

    /// `(code - zp) × scale`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn value(self, code: __m256i) -> __m256 {
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(code, self.zp)), self.scale)
    }
}

/// `epilogue((a - correction) × mult + bias)` on 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn finish8(a: __m256i, correction: __m256i, mult: __m256, bias: __m256, epilogue: &Epilogue, rq: Option<Requantize8>) -> __m256 {
    let v = scale8(a, correction, mult, bias);
    let v = match rq {
        Some(rq) => rq.value(quantize8(v, rq.scale, rq.zp)),
        None => v,
    };
    activate8(v, epilogue)
}

/// # Safety
/// See [`crate::linalg::int8::FinishRows`]; the CPU has AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn finish_rows(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], epilogue: &Epilogue, table: Option<&FinishTable>, out: &mut [[f32; TILE]; MR]) {
    let rq = epilogue.requantize.map(|q| Requantize8::new(q));
    for r in 0..rows.min(MR).min(mult.len()).min(bias.len()) {
        let (c, m, b) = (_mm256_set1_epi32(corrections[r]), _mm256_set1_ps(mult[r]), _mm256_set1_ps(bias[r]));
        for k in 0..TILE / 8 {
            // Safety: 8 lanes at 8k of TILE-long rows.
            let a = unsafe { _mm256_loadu_si256(acc[r].as_ptr().add(8 * k) as *const __m256i) };
            let v = match (table, rq) {
                // Safety: the codes are in 0..=255, inside the table.
                (Some(t), Some(rq)) => unsafe { _mm256_i32gather_ps::<4>(t.0.as_ptr(), quantize8(scale8(a, c, m, b), rq.scale, rq.zp)) },
                _ => finish8(a, c, m, b, epilogue, rq),
            };
            unsafe { _mm256_storeu_ps(out[r].as_mut_ptr().add(8 * k), v) };
        }
    }
}

/// # Safety
/// See [`crate::linalg::int8::FinishCodes`]; the CPU has AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn finish_codes(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], requantize: QuantParams, table: &CodeTable, out: &mut [[u8; TILE]; MR]) {
    let rq = Requantize8::new(requantize);
    // The table widened to one i32 per code, for `vpgatherdd`.
    let wide: [i32; 256] = std::array::from_fn(|q| i32::from(table.0[q]));
    for r in 0..rows.min(MR).min(mult.len()).min(bias.len()) {
        let (c, m, b) = (_mm256_set1_epi32(corrections[r]), _mm256_set1_ps(mult[r]), _mm256_set1_ps(bias[r]));
        let codes: [__m256i; 4] = std::array::from_fn(|k| {
            // Safety: 8 sums at 8k of a TILE-long row; the codes are in 0..=255, inside `wide`.
            let a = unsafe { _mm256_loadu_si256(acc[r].as_ptr().add(8 * k) as *const __m256i) };
            unsafe { _mm256_i32gather_epi32::<4>(wide.as_ptr(), quantize8(scale8(a, c, m, b), rq.scale, rq.zp)) }
        });
        // Safety: a row holds TILE = 32 codes.
        unsafe { _mm256_storeu_si256(out[r].as_mut_ptr() as *mut __m256i, pack32(codes)) };
    }
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn finish_table(q: QuantParams, epilogue: &Epilogue) -> FinishTable {
    let rq = Requantize8::new(q);
    let mut table = [0f32; 256];
    for (k, part) in table.chunks_exact_mut(8).enumerate() {
        let code = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * k as i32));
        // Safety: the part holds 8 floats.
        unsafe { _mm256_storeu_ps(part.as_mut_ptr(), activate8(rq.value(code), epilogue)) };
    }
    FinishTable(table)
}

/// # Safety
/// See [`crate::linalg::int8::DepthwiseRow`]; the CPU has AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn depthwise_row(plane: *const u8, offsets: &[usize], taps: &[i8], n: usize, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, out: *mut f32) {
    let rq = epilogue.requantize.map(|q| Requantize8::new(q));
    let (c, m, b) = (_mm256_set1_epi32(correction), _mm256_set1_ps(mult), _mm256_set1_ps(bias));
    let mut i = 0;
    while i < n {
        let mut acc = [_mm256_setzero_si256(); 2];
        for (&off, &w) in offsets.iter().zip(taps) {
            let w = _mm256_set1_epi32(i32::from(w));
            for (j, a) in acc.iter_mut().enumerate() {
                // Safety: the caller guarantees DEPTHWISE_SLACK (≥ 16) readable bytes past the row.
                let x = _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(plane.add(off + i + 8 * j) as *const __m128i) });
                *a = _mm256_add_epi32(*a, _mm256_mullo_epi32(x, w));
            }
        }
        let v = acc.map(|a| finish8(a, c, m, b, epilogue, rq));
        if i + 16 <= n {
            // Safety: 16 floats at i < n.
            unsafe {
                _mm256_storeu_ps(out.add(i), v[0]);
                _mm256_storeu_ps(out.add(i + 8), v[1]);
            }
        } else {
            let mut tail = [0f32; 16];
            unsafe {
                _mm256_storeu_ps(tail.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(tail.as_mut_ptr().add(8), v[1]);
            }
            for (j, &t) in tail.iter().enumerate().take(n - i) {
                // Safety: i + j < n.
                unsafe { *out.add(i + j) = t };
            }
        }
        i += 16;
    }
}

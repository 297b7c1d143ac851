//! AVX2 + FMA (Haswell and later, what most line PCs have without AVX-512):
//! the int8 tile, exact, on `vpmaddwd`.
//!
//! AVX2 has no exact u8×i8 dot product: `vpmaddubsw` saturates its i16 pair
//! sums (255 × 127 × 2 > 2¹⁵). So the X4 activations are split into their even
//! and odd channel bytes as i16 (`and`, `shift`: once per 8 pixels, shared by
//! every row), the weights are packed as i16 pairs (`w0 w2`, `w1 w3`), and
//! `vpmaddwd` adds each pixel's two products exactly into an i32 lane: 16
//! multiply-adds an instruction.

use crate::linalg::int8::{Acc, ActivationCode, Gemm, WeightLayout, MR, TILE};
use crate::linalg::Kernels;
use std::arch::x86_64::*;

/// Whether this CPU runs this set.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

pub fn set() -> Kernels {
    Kernels {
        isa: crate::linalg::Isa::Avx2, name: "avx2",
        int8_gemm: Gemm { tile, tile_any: tile, pair: None, code: ActivationCode::Unsigned, weights: WeightLayout::I16EvenOdd, name: "avx2 8x32 (vpmaddwd, 4x16 passes)" },
        ew: super::avx2_ew::ELEMENTWISE,
        f32conv: Some(super::avx2_f32conv::F32CONV),
    }
}

/// Rows and pixels of one pass: 8 accumulators, 4 split activation vectors,
/// 2 broadcast weights and the products fit the 16 registers.
const ROWS: usize = 4;
const PIXELS: usize = 16;

/// The tile in 4 passes of 4 rows × 16 pixels.
///
/// # Safety
/// See [`crate::linalg::int8::Kernel`]; the CPU has AVX2; `w` is packed
/// [`WeightLayout::I16EvenOdd`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    let even = _mm256_set1_epi16(0x00ff);
    for rh in 0..MR / ROWS {
        for ph in 0..TILE / PIXELS {
            let mut c = [[_mm256_setzero_si256(); 2]; ROWS];
            for (t, &off) in offsets.iter().enumerate() {
                // Safety: the caller guarantees 4 * TILE readable bytes from x + off, and
                // MR rows of 8 weight bytes per step.
                let p = unsafe { x.add(off + 4 * PIXELS * ph) };
                let a = [0, 1].map(|j| unsafe { _mm256_loadu_si256(p.add(32 * j) as *const __m256i) });
                let lo = a.map(|v| _mm256_and_si256(v, even));
                let hi = a.map(|v| _mm256_srli_epi16::<8>(v));
                let wp = unsafe { w.add((t * MR + rh * ROWS) * 8) } as *const i32;
                for (r, cr) in c.iter_mut().enumerate() {
                    let (we, wo) = unsafe { (_mm256_set1_epi32(wp.add(2 * r).read_unaligned()), _mm256_set1_epi32(wp.add(2 * r + 1).read_unaligned())) };
                    for j in 0..2 {
                        cr[j] = _mm256_add_epi32(cr[j], _mm256_madd_epi16(lo[j], we));
                        cr[j] = _mm256_add_epi32(cr[j], _mm256_madd_epi16(hi[j], wo));
                    }
                }
            }
            for (r, cr) in c.iter().enumerate() {
                for (j, v) in cr.iter().enumerate() {
                    // Safety: 8 lanes at PIXELS·ph + 8j of a TILE-long row.
                    unsafe { _mm256_storeu_si256(acc[rh * ROWS + r].as_mut_ptr().add(PIXELS * ph + 8 * j) as *mut __m256i, *v) };
                }
            }
        }
    }
}

//! The int8 tiles on AVX-512 VNNI's `vpdpbusd`, 16 i32 lanes a vector.

use crate::linalg::int8::{Acc, MR};
use std::arch::x86_64::*;

/// # Safety
/// See [`crate::linalg::int8::Kernel`]; the CPU must have AVX-512 F/BW/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn vnni_tile(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    let z = _mm512_setzero_si512();
    let mut c = [[z; 2]; MR];
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees 4 * TILE = 128 readable bytes here.
        let p = unsafe { x.add(off) };
        let a0 = unsafe { _mm512_loadu_si512(p as *const __m512i) };
        let a1 = unsafe { _mm512_loadu_si512(p.add(64) as *const __m512i) };
        let wp = unsafe { w.add(t * MR * 4) } as *const i32;
        for (r, cr) in c.iter_mut().enumerate() {
            let b = _mm512_set1_epi32(unsafe { wp.add(r).read_unaligned() });
            cr[0] = _mm512_dpbusd_epi32(cr[0], a0, b);
            cr[1] = _mm512_dpbusd_epi32(cr[1], a1, b);
        }
    }
    for (row, cr) in acc.iter_mut().zip(&c) {
        unsafe {
            _mm512_storeu_si512(row.as_mut_ptr() as *mut __m512i, cr[0]);
            _mm512_storeu_si512(row.as_mut_ptr().add(16) as *mut __m512i, cr[1]);
        }
    }
}

/// Two adjacent tiles in two passes of 4 rows × 64 pixels: 16
/// accumulators, each broadcast weight feeding 4 `vpdpbusd` instead of 2.
/// The broadcasts were what held the one-tile kernel back on the largest
/// layers (DeepLabV3+'s 304→256 decoder conv: about 10 % faster in a
/// micro-benchmark on this project's Zen 4 machine).
///
/// # Safety
/// See [`crate::linalg::int8::PairKernel`]; the CPU must have AVX-512 F/BW/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn vnni_pair(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut [Acc; 2]) {
    const ROWS: usize = 4;
    for pass in 0..MR / ROWS {
        let mut c = [[_mm512_setzero_si512(); 4]; ROWS];
        for (t, &off) in offsets.iter().enumerate() {
            // Safety: the caller guarantees 4 * 2 * TILE = 256 readable bytes here.
            let p = unsafe { x.add(off) };
            let a: [__m512i; 4] = std::array::from_fn(|j| unsafe { _mm512_loadu_si512(p.add(64 * j) as *const __m512i) });
            let wp = unsafe { w.add((t * MR + pass * ROWS) * 4) } as *const i32;
            for (r, cr) in c.iter_mut().enumerate() {
                let b = _mm512_set1_epi32(unsafe { wp.add(r).read_unaligned() });
                for (cj, &aj) in cr.iter_mut().zip(&a) {
                    *cj = _mm512_dpbusd_epi32(*cj, aj, b);
                }
            }
        }
        for (r, cr) in c.iter().enumerate() {
            for (j, &v) in cr.iter().enumerate() {
                let row = &mut acc[j / 2][pass * ROWS + r];
                // Safety: 16 lanes at 0 or 16 of a TILE = 32 row.
                unsafe { _mm512_storeu_si512(row.as_mut_ptr().add(16 * (j % 2)) as *mut __m512i, v) };
            }
        }
    }
}

//! The depthwise convolution on AVX-512 VNNI: four horizontal taps per `vpdpbusd`.
//!
//! The input plane is stored plain (padded column `ix` at byte `ix`), not by
//! stride phase. For 16 output pixels of one kernel row, one 64-byte load holds
//! every byte they read; `vpermb` gathers each pixel's taps `kx = 4j .. 4j+3`
//! (`ox·sw + kx·dw`) into one 32-bit lane, and one `vpdpbusd` multiplies them
//! by those four weights (a missing fourth tap has weight 0). A 3×3 kernel takes
//! 3 loads, 3 permutes and 3 dot products per 16 pixels instead of 9 widening
//! multiplies and adds.

use super::codes::CodeLookup;
use super::simd::{finish16, tail_mask, Requantize16};
use crate::linalg::epilogue::{CodeTable, Epilogue, QuantParams};
use crate::model::qdq::geometry::ConvGeometry;
use std::arch::x86_64::*;

/// Bytes a row read may run past the plane's last pixel.
pub const SLACK: usize = 128;

/// The permutes and packed weights of one depthwise convolution.
#[derive(Debug)]
pub struct DepthwiseVnni {
    /// Groups of 4 horizontal taps.
    quads: usize,
    /// Per quad: byte `4i + j` is where pixel `i` reads tap `4·quad + j`.
    index: Vec<[u8; 64]>,
    /// Per output channel, kernel row and quad: four weights as one i32.
    weights: Vec<i32>,
}

impl DepthwiseVnni {
    /// For this geometry, if 16 pixels' reads fit one 64-byte load.
    pub fn new(g: &ConvGeometry, w: &[i8], cout: usize) -> Option<DepthwiseVnni> {
        let [kh, kw] = g.attrs.kernel;
        let sw = g.attrs.strides[1];
        let dw = g.attrs.dilations[1];
        if 15 * sw + (kw - 1) * dw >= 64 {
            return None;
        }
        let quads = kw.div_ceil(4);
        let index = (0..quads)
            .map(|q| {
                let mut idx = [0u8; 64];
                for i in 0..16 {
                    for j in 0..4 {
                        let kx = 4 * q + j;
                        // A tap past the kernel reads byte 0 with weight 0.
                        idx[4 * i + j] = if kx < kw { (i * sw + kx * dw) as u8 } else { 0 };
                    }
                }
                idx
            })
            .collect();
        let mut weights = Vec::with_capacity(cout * kh * quads);
        for o in 0..cout {
            for ky in 0..kh {
                for q in 0..quads {
                    let b: [i8; 4] = std::array::from_fn(|j| if 4 * q + j < kw { w[(o * kh + ky) * kw + 4 * q + j] } else { 0 });
                    weights.push(i32::from_ne_bytes(b.map(|v| v as u8)));
                }
            }
        }
        Some(DepthwiseVnni { quads, index, weights })
    }

    /// Output row `oy` of channel `o` from the plain padded `plane` (row stride
    /// `g.row_len`), finished into `out` (`wo` floats): 64 pixels at a time while
    /// they last, then 16.
    ///
    /// # Safety
    /// the CPU runs the AVX-512 set and has VBMI; `plane` has `SLACK` readable bytes past its last row.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub unsafe fn row(&self, g: &ConvGeometry, plane: &[u8], o: usize, oy: usize, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, out: &mut [f32]) {
        let n = out.len();
        let rq = Requantize16::new(epilogue);
        let mut i = 0;
        while i + 64 <= n {
            // Safety: as this function's.
            unsafe { self.pixels::<4>(g, plane, o, oy, i, correction, mult, bias, epilogue, rq, out) };
            i += 64;
        }
        while i < n {
            // Safety: as this function's.
            unsafe { self.pixels::<1>(g, plane, o, oy, i, correction, mult, bias, epilogue, rq, out) };
            i += 16;
        }
    }

    /// Every output row of channel `o` into `out` (its `ho × wo` codes),
    /// finished straight into codes through `table` (see `codes`): the
    /// float path finished each row into a scratch row and quantized it again.
    ///
    /// # Safety
    /// As [`Self::row`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub unsafe fn plane_codes(&self, g: &ConvGeometry, plane: &[u8], o: usize, correction: i32, mult: f32, bias: f32, requantize: QuantParams, table: &CodeTable, out: &mut [u8]) {
        let t = CodeLookup::new(table, requantize);
        let wo = g.out_hw[1];
        for (oy, row) in out.chunks_exact_mut(wo).enumerate() {
            let mut i = 0;
            while i + 64 <= wo {
                // Safety: as this function's.
                let acc = unsafe { self.sums::<4>(g, plane, o, oy, i) };
                store_codes(&t, acc, correction, mult, bias, row, i);
                i += 64;
            }
            while i < wo {
                // Safety: as this function's.
                let acc = unsafe { self.sums::<1>(g, plane, o, oy, i) };
                store_codes(&t, acc, correction, mult, bias, row, i);
                i += 16;
            }
        }
    }

    /// Output pixels `i .. i + 16·G` of the row (those below `out.len()`), finished into `out`.
    ///
    /// # Safety
    /// As [`Self::row`]; `i + 16·(G − 1) < out.len()`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    unsafe fn pixels<const G: usize>(
        &self,
        g: &ConvGeometry,
        plane: &[u8],
        o: usize,
        oy: usize,
        i: usize,
        correction: i32,
        mult: f32,
        bias: f32,
        epilogue: &Epilogue,
        rq: Requantize16,
        out: &mut [f32],
    ) {
        // Safety: as this function's.
        let acc = unsafe { self.sums::<G>(g, plane, o, oy, i) };
        let n = out.len();
        for (j, &a) in acc.iter().enumerate() {
            let start = i + 16 * j;
            let k = (n - start).min(16);
            let mask = tail_mask(k);
            // Safety: the mask keeps the store inside `out`.
            unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(start), mask, finish16(a, correction, mult, bias, epilogue, rq)) };
        }
    }

    /// The sums of output pixels `i .. i + 16·G` of row `oy` of channel `o`, as
    /// `G` independent dot-product chains: with one chain, each group of 16
    /// waited on its three `vpdpbusd` and its epilogue in turn, and the int8
    /// depthwise convolutions ran slower than the float ones.
    ///
    /// # Safety
    /// As [`Self::row`]; pixel `i + 16·(G − 1)` is in the row.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    unsafe fn sums<const G: usize>(&self, g: &ConvGeometry, plane: &[u8], o: usize, oy: usize, i: usize) -> [__m512i; G] {
        let kh = g.attrs.kernel[0];
        let [sh, sw] = g.attrs.strides;
        let dh = g.attrs.dilations[0];
        let quads = self.quads;
        let weights = &self.weights[o * kh * quads..(o + 1) * kh * quads];
        let mut acc = [_mm512_setzero_si512(); G];
        for ky in 0..kh {
            let row = (oy * sh + ky * dh) * g.row_len;
            let v: [__m512i; G] = std::array::from_fn(|j| {
                let at = row + (i + 16 * j) * sw;
                debug_assert!(at + 64 <= plane.len());
                // Safety: at most 64 bytes from `at`, inside the plane and its slack.
                unsafe { _mm512_loadu_si512(plane.as_ptr().add(at) as *const __m512i) }
            });
            for q in 0..quads {
                // Safety: the index table holds 64 bytes.
                let idx = unsafe { _mm512_loadu_si512(self.index[q].as_ptr() as *const __m512i) };
                let w = _mm512_set1_epi32(weights[ky * quads + q]);
                for (a, &v) in acc.iter_mut().zip(&v) {
                    *a = _mm512_dpbusd_epi32(*a, _mm512_permutexvar_epi8(idx, v), w);
                }
            }
        }
        acc
    }
}

/// The codes of the sums of row pixels `i .. i + 16·G` (those inside `row`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn store_codes<const G: usize>(t: &CodeLookup, acc: [__m512i; G], correction: i32, mult: f32, bias: f32, row: &mut [u8], i: usize) {
    let codes = t.lookup(CodeLookup::join(acc.map(|a| t.requantize(a, correction, mult, bias))));
    let k = (row.len() - i).min(16 * G);
    let mask = if k >= 64 { u64::MAX } else { (1u64 << k) - 1 };
    // Safety: the mask keeps the store inside `row`.
    unsafe { _mm512_mask_storeu_epi8(row.as_mut_ptr().add(i) as *mut i8, mask, codes) };
}

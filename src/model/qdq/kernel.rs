//! The int8 micro-kernels: `MR` output channels × `TILE` pixels of u8×i8 → i32
//! dot products over the reduction steps of one convolution.
//!
//! All kernels compute the same exact integers (no saturation anywhere, unlike
//! `vpmaddubsw`), so the choice between them is speed only:
//! - x86-64 with AVX-512 VNNI: `vpdpbusd`, 16 accumulators of 16 lanes.
//! - aarch64 with the dot-product extension (Cortex-A76 and later, Pi 5):
//!   `sdot` on activations shifted to i8 (`x - 128`), corrected by `128 × Σw`.
//! - everywhere else (Cortex-A72, x86 without VNNI): widening NEON / SSE / AVX2
//!   code from the portable kernel, which the compiler vectorises.

use super::geometry::TILE;
use super::pack::MR;

/// Accumulators of one micro-kernel call: `MR` rows × `TILE` pixels.
pub type Acc = [[i32; TILE]; MR];

/// A micro-kernel: `x` points at the tile's first pixel in the X4 copy,
/// `offsets` are the reduction steps' byte offsets from it, `w` is the panel.
/// Safety: every `x + offset + 4 * TILE` must be readable, `w` must hold
/// `offsets.len() * MR * 4` bytes.
pub type Kernel = unsafe fn(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc);

/// A micro-kernel for two adjacent tiles (64 consecutive pixels from `x`),
/// into `acc[0]` and `acc[1]`; otherwise as [`Kernel`], with `4 * 2 * TILE`
/// readable bytes per step.
pub type PairKernel = unsafe fn(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut [Acc; 2]);

/// The two-tile kernel this CPU runs, if it has one, and the name for logs of
/// it with the one-tile kernel [`select`] picks (same activation code): on
/// AVX-512 VNNI.
pub fn select_pair() -> Option<(PairKernel, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw") {
        return Some((x86::avx512_vnni_pair, "avx512vnni 8x64 (two 4x64 passes), 8x32"));
    }
    None
}

/// How the activations must be stored for the selected kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationCode {
    /// The quantized uint8 values as they are.
    Unsigned,
    /// `q ^ 0x80`, read as i8 (`q - 128`): for signed-by-signed dot products.
    ShiftedSigned,
}

/// The kernel this CPU runs, its activation code, and its name for logs.
pub fn select() -> (Kernel, ActivationCode, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw") {
            return (x86::avx512_vnni, ActivationCode::Unsigned, "avx512vnni 8x32");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return (x86::avx2, ActivationCode::Unsigned, "avx2 8x32 (widening)");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            return (arm::sdot, ActivationCode::ShiftedSigned, "neon-dotprod 8x32 (sdot)");
        }
        return (portable_kernel, ActivationCode::Unsigned, "neon 8x32 (widening)");
    }
    #[allow(unreachable_code)]
    (portable_kernel, ActivationCode::Unsigned, "portable 8x32")
}

/// The reference kernel: plain Rust, exact, vectorised by the compiler.
///
/// # Safety
/// See [`Kernel`].
pub unsafe fn portable_kernel(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    portable_body(x, offsets, w, acc)
}

#[inline(always)]
unsafe fn portable_body(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    *acc = [[0; TILE]; MR];
    for (t, &off) in offsets.iter().enumerate() {
        // Safety: the caller guarantees both ranges are readable.
        let a = unsafe { std::slice::from_raw_parts(x.add(off), 4 * TILE) };
        let wt = unsafe { std::slice::from_raw_parts(w.add(t * MR * 4), MR * 4) };
        for (r, row) in acc.iter_mut().enumerate() {
            let wr = [i32::from(wt[4 * r]), i32::from(wt[4 * r + 1]), i32::from(wt[4 * r + 2]), i32::from(wt[4 * r + 3])];
            for (i, v) in row.iter_mut().enumerate() {
                let q = &a[4 * i..4 * i + 4];
                *v += i32::from(q[0]) * wr[0] + i32::from(q[1]) * wr[1] + i32::from(q[2]) * wr[2] + i32::from(q[3]) * wr[3];
            }
        }
    }
}

/// The portable kernel on activations stored as `q - 128` (i8): the same
/// exact sums, for tests of the shifted code path on any machine.
///
/// # Safety
/// See [`Kernel`].
#[cfg(any(test, target_arch = "aarch64"))]
pub unsafe fn portable_shifted(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
    *acc = [[0; TILE]; MR];
    for (t, &off) in offsets.iter().enumerate() {
        let a = unsafe { std::slice::from_raw_parts(x.add(off) as *const i8, 4 * TILE) };
        let wt = unsafe { std::slice::from_raw_parts(w.add(t * MR * 4), MR * 4) };
        for (r, row) in acc.iter_mut().enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v += (0..4).map(|j| i32::from(a[4 * i + j]) * i32::from(wt[4 * r + j])).sum::<i32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// # Safety
    /// See [`Kernel`]; the CPU must have AVX-512 F/BW/VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn avx512_vnni(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
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
    /// See [`PairKernel`]; the CPU must have AVX-512 F/BW/VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn avx512_vnni_pair(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut [Acc; 2]) {
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

    /// The portable kernel compiled for AVX2 (exact widening multiplies).
    ///
    /// # Safety
    /// See [`Kernel`]; the CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
        unsafe { portable_body(x, offsets, w, acc) }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::*;
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// `acc += sdot(a, b)` lane-wise (4 i8 products per i32 lane). Inline
    /// assembly: the `vdotq_s32` intrinsic is not stable Rust yet.
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // Safety: the CPU has the dot-product extension (checked by `select`).
        unsafe { asm!("sdot {0:v}.4s, {1:v}.16b, {2:v}.16b", inout(vreg) acc, in(vreg) a, in(vreg) b, options(pure, nomem, nostack)) };
        acc
    }

    /// One pass covers 4 rows × 16 pixels: 16 accumulators, 4 activation
    /// vectors and a weight vector fit the 32 NEON registers without spills.
    const ROWS: usize = 4;
    const PIX: usize = 16;

    /// # Safety
    /// See [`Kernel`]; the CPU must have the dot-product extension, and the
    /// activations must be stored shifted (`ActivationCode::ShiftedSigned`).
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn sdot(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc) {
        for rh in 0..MR / ROWS {
            for ph in 0..TILE / PIX {
                let mut c = [[vdupq_n_s32(0); PIX / 4]; ROWS];
                for (t, &off) in offsets.iter().enumerate() {
                    let p = unsafe { x.add(off + 4 * PIX * ph) } as *const i8;
                    let mut a = [vdupq_n_s8(0); PIX / 4];
                    for (v, av) in a.iter_mut().enumerate() {
                        *av = unsafe { vld1q_s8(p.add(16 * v)) };
                    }
                    let wp = unsafe { w.add((t * MR + rh * ROWS) * 4) } as *const i32;
                    for (r, cr) in c.iter_mut().enumerate() {
                        let b = unsafe { vreinterpretq_s8_s32(vdupq_n_s32(wp.add(r).read_unaligned())) };
                        for (cv, av) in cr.iter_mut().zip(&a) {
                            *cv = unsafe { dot(*cv, *av, b) };
                        }
                    }
                }
                for (r, cr) in c.iter().enumerate() {
                    let row = &mut acc[rh * ROWS + r];
                    for (v, cv) in cr.iter().enumerate() {
                        unsafe { vst1q_s32(row.as_mut_ptr().add(PIX * ph + 4 * v), *cv) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random-looking but deterministic bytes.
    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn selected_kernel_matches_the_portable_one() {
        let offsets: Vec<usize> = (0..13).map(|t| t * 200).collect();
        let x = bytes(13 * 200 + 4 * TILE + 64, 1);
        let w: Vec<i8> = bytes(13 * MR * 4, 2).into_iter().map(|b| b as i8).collect();
        let (kernel, code, name) = select();
        let mut want: Acc = [[0; TILE]; MR];
        unsafe { portable_kernel(x.as_ptr(), &offsets, w.as_ptr(), &mut want) };
        let shifted: Vec<u8> = x.iter().map(|q| q ^ 0x80).collect();
        let mut got: Acc = [[0; TILE]; MR];
        match code {
            ActivationCode::Unsigned => unsafe { kernel(x.as_ptr(), &offsets, w.as_ptr(), &mut got) },
            ActivationCode::ShiftedSigned => {
                unsafe { kernel(shifted.as_ptr(), &offsets, w.as_ptr(), &mut got) };
                // Σ (q - 128) w = Σ q w - 128 Σ w
                let sums: Vec<i32> = (0..MR).map(|r| (0..13).map(|t| (0..4).map(|j| i32::from(w[(t * MR + r) * 4 + j])).sum::<i32>()).sum()).collect();
                for (row, s) in got.iter_mut().zip(&sums) {
                    row.iter_mut().for_each(|v| *v += 128 * s);
                }
            }
        }
        assert_eq!(got, want, "kernel {name}");
        // The shifted code's arithmetic, checked on every machine.
        let mut shifted_acc: Acc = [[0; TILE]; MR];
        unsafe { portable_shifted(shifted.as_ptr(), &offsets, w.as_ptr(), &mut shifted_acc) };
        for r in 0..MR {
            let s: i32 = (0..13).map(|t| (0..4).map(|j| i32::from(w[(t * MR + r) * 4 + j])).sum::<i32>()).sum();
            for i in 0..TILE {
                assert_eq!(shifted_acc[r][i] + 128 * s, want[r][i]);
            }
        }
    }
}

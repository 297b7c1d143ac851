//! Image resizing as Pillow's `Image.resize(..., BILINEAR)` computes it:
//! separable triangle filter whose support widens when shrinking (so
//! downscaling averages instead of aliasing), 22-bit fixed-point weights,
//! rounding to 8 bits after each pass, horizontal pass first. Matching Pillow
//! keeps edgeseg's input identical to what `scripts/` trained and evaluated on.
//!
//! Weights are computed once per (source size, target size) and kept in
//! `Resampler`, so resizing camera frames allocates nothing per frame.

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Precomputed weights of one axis.
#[derive(Clone, Debug, Default, PartialEq)]
struct AxisWeights {
    src: usize,
    dst: usize,
    /// Per output pixel: first source index and count.
    bounds: Vec<(usize, usize)>,
    /// `ksize` fixed-point weights per output pixel.
    weights: Vec<i32>,
    ksize: usize,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

impl AxisWeights {
    fn new(src: usize, dst: usize) -> AxisWeights {
        let scale = src as f64 / dst as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // triangle support 1.0, widened when shrinking
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(dst);
        let mut weights = vec![0i32; dst * ksize];
        let mut k = vec![0f64; ksize];
        for xx in 0..dst {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // Pillow truncates these with a C cast after adding 0.5.
            let xmin = ((center - support + 0.5) as isize).max(0) as usize;
            let xmax = (((center + support + 0.5) as isize).min(src as isize) as usize).saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (x, w) in k.iter_mut().enumerate().take(xmax) {
                *w = triangle((x as f64 + xmin as f64 - center + 0.5) * ss);
                total += *w;
            }
            for (x, w) in k.iter().enumerate().take(xmax) {
                let v = if total != 0.0 { w / total } else { 0.0 };
                // Pillow rounds half away from zero.
                let fixed = v * (1u64 << PRECISION_BITS) as f64;
                weights[xx * ksize + x] = if fixed < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            bounds.push((xmin, xmax));
        }
        AxisWeights { src, dst, bounds, weights, ksize }
    }
}

#[inline]
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `channels`-interleaved 8-bit images of one size to another, reusing its buffers.
#[derive(Clone, Debug, Default)]
pub struct Resampler {
    horizontal: AxisWeights,
    vertical: AxisWeights,
    /// Output of the horizontal pass: dst width × src height.
    tmp: Vec<u8>,
}

impl Resampler {
    /// Resize `src` (`sw`×`sh`, `channels` interleaved) into `dst` (`dw`×`dh`).
    #[allow(clippy::too_many_arguments)] // two image geometries plus buffers; a struct would only rename them
    pub fn resize(&mut self, src: &[u8], sw: usize, sh: usize, channels: usize, dst: &mut [u8], dw: usize, dh: usize) {
        debug_assert_eq!(src.len(), sw * sh * channels);
        debug_assert_eq!(dst.len(), dw * dh * channels);
        if (sw, sh) == (dw, dh) {
            dst.copy_from_slice(src);
            return;
        }
        if (self.horizontal.src, self.horizontal.dst) != (sw, dw) {
            self.horizontal = AxisWeights::new(sw, dw);
        }
        if (self.vertical.src, self.vertical.dst) != (sh, dh) {
            self.vertical = AxisWeights::new(sh, dh);
        }
        let half = 1i64 << (PRECISION_BITS - 1);
        // Horizontal pass (skipped when the width does not change, as Pillow does).
        let (hsrc, hw): (&[u8], usize) = if sw != dw {
            self.tmp.resize(dw * sh * channels, 0);
            let h = &self.horizontal;
            for y in 0..sh {
                let row = &src[y * sw * channels..(y + 1) * sw * channels];
                for xx in 0..dw {
                    let (xmin, n) = h.bounds[xx];
                    let k = &h.weights[xx * h.ksize..xx * h.ksize + n];
                    for c in 0..channels {
                        let mut acc = half;
                        for (i, &w) in k.iter().enumerate() {
                            acc += row[(xmin + i) * channels + c] as i64 * w as i64;
                        }
                        self.tmp[(y * dw + xx) * channels + c] = clip8(acc);
                    }
                }
            }
            (&self.tmp, dw)
        } else {
            (src, sw)
        };
        if sh == dh {
            dst.copy_from_slice(&hsrc[..dw * dh * channels]);
            return;
        }
        let v = &self.vertical;
        let stride = hw * channels;
        for yy in 0..dh {
            let (ymin, n) = v.bounds[yy];
            let k = &v.weights[yy * v.ksize..yy * v.ksize + n];
            for x in 0..stride {
                let mut acc = half;
                for (i, &w) in k.iter().enumerate() {
                    acc += hsrc[(ymin + i) * stride + x] as i64 * w as i64;
                }
                dst[yy * stride + x] = clip8(acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_copies() {
        let mut r = Resampler::default();
        let src: Vec<u8> = (0..12).collect();
        let mut dst = vec![0; 12];
        r.resize(&src, 4, 3, 1, &mut dst, 4, 3);
        assert_eq!(src, dst);
    }

    #[test]
    fn halving_averages_pairs() {
        // Pillow: Image.frombytes("L", (4, 1), bytes([0, 100, 200, 250])).resize((2, 1), BILINEAR)
        let mut r = Resampler::default();
        let mut dst = vec![0; 2];
        r.resize(&[0, 100, 200, 250], 4, 1, 1, &mut dst, 2, 1);
        assert_eq!(dst, vec![71, 207]);
    }

    #[test]
    fn matches_pillow_in_2d_both_directions() {
        // src = bytes((i*37+11) % 256 for i in range(35)), a 7x5 "L" image;
        // expected values printed by Pillow 13's resize(..., BILINEAR).
        let src: Vec<u8> = (0..35u32).map(|i| ((i * 37 + 11) % 256) as u8).collect();
        let mut r = Resampler::default();
        let mut down = vec![0; 12];
        r.resize(&src, 7, 5, 1, &mut down, 3, 4);
        assert_eq!(down, vec![44, 123, 202, 47, 126, 205, 51, 130, 209, 54, 133, 212]);
        let mut up = vec![0; 99];
        r.resize(&src, 7, 5, 1, &mut up, 11, 9);
        assert_eq!(&up[..12], &[11, 28, 51, 75, 98, 122, 146, 169, 193, 216, 233, 12]);
    }

    #[test]
    fn constant_image_stays_constant_both_ways() {
        let mut r = Resampler::default();
        let src = vec![77u8; 10 * 6 * 3];
        let mut up = vec![0; 25 * 15 * 3];
        r.resize(&src, 10, 6, 3, &mut up, 25, 15);
        assert!(up.iter().all(|&v| v == 77));
        let mut down = vec![0; 3 * 2 * 3];
        r.resize(&up, 25, 15, 3, &mut down, 3, 2);
        assert!(down.iter().all(|&v| v == 77));
    }
}

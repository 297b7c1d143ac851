//! Image resizing as OpenCV's `cv2.resize(..., INTER_LINEAR)` computes it on
//! 8-bit images: bilinear without antialiasing, 11-bit fixed-point weights,
//! the vectorised vertical pass's rounding, and the exact-2× downscale
//! shortcut to pixel-area averaging. Ultralytics letterboxes with this call,
//! so YOLO models see the same input pixels in edgeseg as in their predictor.
//! Weights are cached per (source, target) size: no allocation per frame.

const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

#[derive(Clone, Debug, Default)]
struct Axis {
    src: usize,
    dst: usize,
    /// Per output index: the two source indices and their weights.
    taps: Vec<(usize, usize, i32, i32)>,
}

/// `saturate_cast<short>(float)`: round half to even.
fn to_coef(v: f32) -> i32 {
    v.round_ties_even() as i32
}

impl Axis {
    /// `clamp_weights`: OpenCV clamps the horizontal weights at the borders;
    /// vertically it keeps the raw weights and clips the row indices. Both give
    /// the same value horizontally (exact integer sum); vertically the rounding
    /// of the vectorised pass makes them differ, so each axis does as OpenCV.
    fn new(src: usize, dst: usize, clamp_weights: bool) -> Axis {
        let scale = 1.0 / (dst as f64 / src as f64);
        let taps = (0..dst)
            .map(|d| {
                let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let mut s = f.floor() as i64;
                f -= s as f32;
                if clamp_weights {
                    if s < 0 {
                        (f, s) = (0.0, 0);
                    }
                    if s >= src as i64 - 1 {
                        (f, s) = (0.0, src as i64 - 1);
                    }
                }
                let clip = |i: i64| i.clamp(0, src as i64 - 1) as usize;
                (clip(s), clip(s + 1), to_coef((1.0 - f) * COEF_SCALE), to_coef(f * COEF_SCALE))
            })
            .collect();
        Axis { src, dst, taps }
    }
}

#[derive(Clone, Debug, Default)]
pub struct CvResampler {
    x: Axis,
    y: Axis,
    rows: Vec<i32>,
}

impl CvResampler {
    /// Resize `src` (`sw`×`sh`, `channels` interleaved) into `dst` (`dw`×`dh`).
    #[allow(clippy::too_many_arguments)] // two image geometries plus buffers, as OpenCV's own signature
    pub fn resize(&mut self, src: &[u8], sw: usize, sh: usize, channels: usize, dst: &mut [u8], dw: usize, dh: usize) {
        let c = channels;
        if (sw, sh) == (dw, dh) {
            dst.copy_from_slice(src);
            return;
        }
        if sw == 2 * dw && sh == 2 * dh {
            // OpenCV turns an exact 2x INTER_LINEAR downscale into INTER_AREA.
            for y in 0..dh {
                for x in 0..dw {
                    for k in 0..c {
                        let at = |yy: usize, xx: usize| src[(yy * sw + xx) * c + k] as u32;
                        let sum = at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1);
                        dst[(y * dw + x) * c + k] = ((sum + 2) >> 2) as u8;
                    }
                }
            }
            return;
        }
        if (self.x.src, self.x.dst) != (sw, dw) {
            self.x = Axis::new(sw, dw, true);
        }
        if (self.y.src, self.y.dst) != (sh, dh) {
            self.y = Axis::new(sh, dh, false);
        }
        // Horizontal pass over every source row: exact integers (value × 2048).
        let stride = dw * c;
        self.rows.resize(sh * stride, 0);
        for y in 0..sh {
            let row = &src[y * sw * c..(y + 1) * sw * c];
            let out = &mut self.rows[y * stride..(y + 1) * stride];
            for (d, &(s0, s1, a0, a1)) in self.x.taps.iter().enumerate() {
                for k in 0..c {
                    out[d * c + k] = row[s0 * c + k] as i32 * a0 + row[s1 * c + k] as i32 * a1;
                }
            }
        }
        // Vertical pass with the SIMD path's rounding: ((v0>>4)*b0 >> 16) + ((v1>>4)*b1 >> 16), +2 >> 2.
        for (d, &(r0, r1, b0, b1)) in self.y.taps.iter().enumerate() {
            let (top, bottom) = (&self.rows[r0 * stride..(r0 + 1) * stride], &self.rows[r1 * stride..(r1 + 1) * stride]);
            for (i, out) in dst[d * stride..(d + 1) * stride].iter_mut().enumerate() {
                let v = (((top[i] >> 4) * b0) >> 16) + (((bottom[i] >> 4) * b1) >> 16);
                *out = ((v + 2) >> 2).clamp(0, 255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by OpenCV 5.0 (opencv-python 5.0.0.93):
    // src = np.array([(i*37+11) % 256 for i in range(35)], np.uint8).reshape(5, 7)
    #[test]
    fn matches_opencv_up_and_down() {
        let src: Vec<u8> = (0..35u32).map(|i| ((i * 37 + 11) % 256) as u8).collect();
        let mut r = CvResampler::default();
        let mut up = vec![0; 99];
        r.resize(&src, 7, 5, 1, &mut up, 11, 9);
        assert_eq!(&up[..22], &[11, 28, 51, 75, 98, 122, 145, 169, 193, 216, 233, 12, 29, 52, 76, 99, 123, 147, 170, 193, 217, 234]);
        let mut down = vec![0; 12];
        r.resize(&src, 7, 5, 1, &mut down, 3, 4);
        assert_eq!(down, [36, 122, 209, 40, 126, 212, 43, 130, 216, 47, 134, 220]);
    }

    #[test]
    fn exact_half_is_area_average() {
        // s2 = np.array([(i*53+7) % 256 for i in range(48)], np.uint8).reshape(6, 8); cv2.resize(s2, (4, 3))
        let src: Vec<u8> = (0..48u32).map(|i| ((i * 53 + 7) % 256) as u8).collect();
        let mut out = vec![0; 12];
        CvResampler::default().resize(&src, 8, 6, 1, &mut out, 4, 3);
        assert_eq!(out, [118, 96, 138, 116, 134, 176, 90, 132, 150, 128, 106, 148]);
    }
}

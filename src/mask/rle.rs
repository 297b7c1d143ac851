//! COCO run-length encoding, bit-compatible with pycocotools.
//!
//! A mask is read in column-major (Fortran) order; runs alternate starting with
//! background, so the first count may be 0. The compressed string form is
//! pycocotools' `rleToString`: each count (delta-coded against the count two
//! places back, from the fourth count on) is written as 5-bit groups, 0x20 as the
//! continuation bit, offset by 48 into printable ASCII.

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

/// COCO RLE as it appears in COCO JSON: `{"size": [h, w], "counts": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoRle {
    /// `[height, width]`, COCO's order.
    pub size: [usize; 2],
    pub counts: String,
}

/// Run lengths of a row-major mask (`true` = foreground), read column-major.
pub fn run_lengths(mask: &[bool], width: usize, height: usize) -> Vec<u32> {
    let mut counts = Vec::new();
    run_lengths_by(|i| mask[i], width, height, &mut counts);
    counts
}

/// Run lengths of the pixels where `is_fg(row_major_index)` holds, into reused storage.
pub fn run_lengths_by(is_fg: impl Fn(usize) -> bool, width: usize, height: usize, counts: &mut Vec<u32>) {
    counts.clear();
    let mut current = false;
    let mut run: u32 = 0;
    for x in 0..width {
        for y in 0..height {
            let v = is_fg(y * width + x);
            if v != current {
                counts.push(run);
                run = 0;
                current = v;
            }
            run += 1;
        }
    }
    counts.push(run);
}

/// pycocotools' `rleToString`.
pub fn compress_counts(counts: &[u32]) -> String {
    let mut s = String::with_capacity(counts.len() * 2);
    compress_counts_into(counts, &mut s);
    s
}

/// `compress_counts` appended to `s`.
pub fn compress_counts_into(counts: &[u32], s: &mut String) {
    for (i, &c) in counts.iter().enumerate() {
        let mut x = c as i64;
        if i > 2 {
            x -= counts[i - 2] as i64;
        }
        loop {
            let mut c = (x & 0x1f) as u8;
            x >>= 5;
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            s.push((c + 48) as char);
            if !more {
                break;
            }
        }
    }
}

/// pycocotools' `rleFrString`, with the checks a file from outside deserves.
pub fn decompress_counts(s: &str) -> Result<Vec<u32>> {
    let bytes = s.as_bytes();
    let mut counts: Vec<u32> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let mut x: i64 = 0;
        let mut k = 0;
        loop {
            ensure!(p < bytes.len(), "RLE string ends inside a count");
            ensure!((48..48 + 64).contains(&bytes[p]), "RLE string has an invalid character {:?}", bytes[p] as char);
            ensure!(k < 12, "RLE count too long");
            let c = (bytes[p] - 48) as i64;
            x |= (c & 0x1f) << (5 * k);
            let more = c & 0x20 != 0;
            p += 1;
            k += 1;
            if !more {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k);
                }
                break;
            }
        }
        let m = counts.len();
        if m > 2 {
            x += counts[m - 2] as i64;
        }
        ensure!((0..=u32::MAX as i64).contains(&x), "RLE count out of range");
        counts.push(x as u32);
    }
    Ok(counts)
}

/// Largest mask decoded from outside data: 2^26 pixels (8192 x 8192), 64 MiB as
/// a boolean mask. A COCO `size` beyond it is refused before anything is allocated.
pub const MAX_PIXELS: usize = 1 << 26;

impl CocoRle {
    pub fn encode(mask: &[bool], width: usize, height: usize) -> CocoRle {
        CocoRle { size: [height, width], counts: compress_counts(&run_lengths(mask, width, height)) }
    }

    /// `height * width`, checked: no overflow, at most `MAX_PIXELS`.
    pub fn pixels(&self) -> Result<usize> {
        let [height, width] = self.size;
        match height.checked_mul(width) {
            Some(n) if n <= MAX_PIXELS => Ok(n),
            _ => bail!("RLE size {height}x{width} (height x width) is larger than the {MAX_PIXELS} pixels edgeseg decodes (8192 x 8192)"),
        }
    }

    /// Row-major boolean mask.
    pub fn decode(&self) -> Result<Vec<bool>> {
        let [height, width] = self.size;
        let pixels = self.pixels()?;
        let counts = decompress_counts(&self.counts)?;
        let total: u64 = counts.iter().map(|&c| c as u64).sum();
        if total != pixels as u64 {
            bail!("RLE covers {total} pixels but size {height}x{width} has {pixels}");
        }
        let mut mask = vec![false; pixels];
        let mut idx = 0usize;
        let mut value = false;
        for c in counts {
            for _ in 0..c {
                let (x, y) = (idx / height, idx % height);
                mask[y * width + x] = value;
                idx += 1;
            }
            value = !value;
        }
        Ok(mask)
    }

    /// Foreground pixel count, straight from the runs.
    pub fn area(&self) -> Result<u64> {
        Ok(decompress_counts(&self.counts)?.iter().skip(1).step_by(2).map(|&c| c as u64).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_pycocotools_strings() {
        // pycocotools.mask.encode(np.asfortranarray(m)) for these 3x4 masks.
        let w = 4;
        let h = 3;
        let empty = vec![false; 12];
        assert_eq!(CocoRle::encode(&empty, w, h).counts, "<");
        let full = vec![true; 12];
        assert_eq!(CocoRle::encode(&full, w, h).counts, "0<");
    }

    #[test]
    fn round_trip_random_masks() {
        let mut seed: u64 = 0x1234_5678;
        for &(w, h) in &[(1, 1), (7, 5), (64, 48), (256, 256)] {
            let mask: Vec<bool> = (0..w * h)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 60) < 3
                })
                .collect();
            let rle = CocoRle::encode(&mask, w, h);
            assert_eq!(rle.decode().unwrap(), mask);
            assert_eq!(rle.area().unwrap(), mask.iter().filter(|&&b| b).count() as u64);
        }
    }

    /// Issue 24 item 18: `width * height` overflowed (a panic in debug builds), and a
    /// size of 65536 x 131072 with two runs that cover it allocated 8 GiB.
    #[test]
    fn huge_sizes_are_refused_before_allocating() {
        let overflow = CocoRle { size: [usize::MAX, 3], counts: "0".into() };
        assert!(overflow.decode().unwrap_err().to_string().contains("larger than"));
        let mut counts = String::new();
        compress_counts_into(&[u32::MAX, u32::MAX, 2], &mut counts);
        let big = CocoRle { size: [65_536, 131_072], counts };
        assert!(big.decode().unwrap_err().to_string().contains("larger than"));
        assert!(CocoRle { size: [8192, 8192], counts: "0".into() }.pixels().is_ok());
    }

    #[test]
    fn rejects_garbage() {
        let rle = CocoRle { size: [2, 2], counts: "~~".into() };
        assert!(rle.decode().is_err());
        let short = CocoRle { size: [10, 10], counts: "3".into() };
        assert!(short.decode().is_err());
    }
}

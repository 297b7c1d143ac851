//! The shape of one int8 convolution and the memory layout its kernels read.
//!
//! The activations are quantized once per call into a padded, channel-interleaved
//! copy ("X4"): for each block of 4 input channels, every padded row holds, per
//! column, the 4 channels' bytes side by side, so that one 32-bit lane of a
//! vector is one pixel's 4 consecutive reduction terms (what `vpdpbusd` and
//! `sdot` multiply). Columns are stored by stride phase (all columns `ix` with
//! `ix % stride == 0`, then `== 1`, ...), which makes the pixels a strided
//! convolution reads for one tap contiguous. With that layout, output pixel
//! `p = oy * row_step + ox` of tap `t` sits at byte `4 * p + offsets[t]`: one
//! flat index serves every tap, stride, dilation and padding, with no im2col.

use anyhow::{bail, ensure, Result};

/// Convolution attributes after ONNX defaults are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvAttrs {
    pub group: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
}

/// Everything the kernels need to know about one convolution at one input size.
#[derive(Clone, Debug)]
pub struct ConvGeometry {
    pub attrs: ConvAttrs,
    pub cin: usize,
    pub cout: usize,
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    /// Input channels per group, rounded up to a multiple of 4.
    pub cin_g4: usize,
    /// Padded input height.
    pub hp: usize,
    /// Columns of one stride phase (padded width / stride, rounded up).
    pub wq: usize,
    /// Bytes-per-channel-lane columns of one stored row: `stride_w * wq`.
    pub row_len: usize,
    /// Flat distance between two output rows: `stride_h * row_len`.
    pub row_step: usize,
    /// Byte offset of each reduction step (block of 4 channels × tap) in X4.
    pub offsets: Vec<usize>,
    /// Flat start of every 32-pixel tile that holds at least one output pixel.
    pub tiles: Vec<usize>,
    /// The output pixels of every tile, as runs along output rows: tile `i`'s are
    /// `runs[run_starts[i]..run_starts[i + 1]]`. Worked out once here because
    /// finding them takes two divisions per run, which cost 5–10 % of a model's
    /// time when redone for every tile of every output panel.
    runs: Vec<TileRun>,
    run_starts: Vec<usize>,
}

/// Output pixels `(oy, ox .. ox + len)` of a tile, in its lanes `lane .. lane + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileRun {
    pub lane: usize,
    pub oy: usize,
    pub ox: usize,
    pub len: usize,
}

/// Pixels per tile (see `crate::linalg::int8`).
pub use crate::linalg::int8::TILE;
/// Bytes read past the last pixel by a tile's last lanes.
pub const SLACK: usize = 4 * TILE + 64;

impl ConvGeometry {
    pub fn new(attrs: ConvAttrs, cin: usize, cout: usize, in_hw: [usize; 2]) -> Result<ConvGeometry> {
        let [kh, kw] = attrs.kernel;
        let [sh, sw] = attrs.strides;
        let [dh, dw] = attrs.dilations;
        let [pt, pl, pb, pr] = attrs.pads;
        ensure!(attrs.group >= 1 && cin.is_multiple_of(attrs.group) && cout.is_multiple_of(attrs.group), "group {} does not divide {cin} input and {cout} output channels", attrs.group);
        ensure!(kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1, "kernel, strides and dilations must be positive");
        let hp = in_hw[0] + pt + pb;
        let wp = in_hw[1] + pl + pr;
        let (ext_h, ext_w) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        if hp < ext_h || wp < ext_w {
            bail!("input {}x{} (padded {hp}x{wp}) is smaller than the kernel's extent {ext_h}x{ext_w}", in_hw[0], in_hw[1]);
        }
        let out_hw = [(hp - ext_h) / sh + 1, (wp - ext_w) / sw + 1];
        let cin_g4 = (cin / attrs.group).div_ceil(4) * 4;
        let wq = wp.div_ceil(sw);
        let row_len = sw * wq;
        let row_step = sh * row_len;
        let mut offsets = Vec::with_capacity(cin_g4 / 4 * kh * kw);
        for cb in 0..cin_g4 / 4 {
            for ky in 0..kh {
                for kx in 0..kw {
                    let col = kx * dw;
                    offsets.push(4 * ((cb * hp + ky * dh) * row_len + (col % sw) * wq + col / sw));
                }
            }
        }
        let mut g = ConvGeometry { attrs, cin, cout, in_hw, out_hw, cin_g4, hp, wq, row_len, row_step, offsets, tiles: vec![], runs: vec![], run_starts: vec![0] };
        g.tiles = g.tile_starts();
        for i in 0..g.tiles.len() {
            let runs = g.find_runs(g.tiles[i]);
            g.runs.extend(runs);
            g.run_starts.push(g.runs.len());
        }
        Ok(g)
    }

    pub fn cin_g(&self) -> usize {
        self.cin / self.attrs.group
    }

    pub fn cout_g(&self) -> usize {
        self.cout / self.attrs.group
    }

    /// Reduction steps of 4 channels × one tap.
    pub fn k4(&self) -> usize {
        self.offsets.len()
    }

    /// Bytes of one group's X4 copy, read slack included.
    pub fn x4_group_bytes(&self) -> usize {
        4 * (self.cin_g4 / 4) * self.hp * self.row_len + SLACK
    }

    /// Where column `ix` of the padded input is stored within a row.
    pub fn column_slot(&self, ix: usize) -> usize {
        let sw = self.attrs.strides[1];
        (ix % sw) * self.wq + ix / sw
    }

    /// Flat tile starts covering every output pixel, skipping the gaps between
    /// rows (the padding columns, and for strided rows the rows in between).
    fn tile_starts(&self) -> Vec<usize> {
        let [ho, wo] = self.out_hw;
        let mut tiles = Vec::new();
        let mut p = 0;
        while p / self.row_step < ho {
            if p % self.row_step >= wo {
                p = (p / self.row_step + 1) * self.row_step;
                continue;
            }
            tiles.push(p);
            p += TILE;
        }
        tiles
    }

    /// The output pixels of tile `i` (of `tiles`), as runs along output rows.
    pub fn tile_runs(&self, i: usize) -> &[TileRun] {
        &self.runs[self.run_starts[i]..self.run_starts[i + 1]]
    }

    /// The output pixels of the tile at `p0`, worked out.
    fn find_runs(&self, p0: usize) -> Vec<TileRun> {
        let [ho, wo] = self.out_hw;
        let mut runs = Vec::new();
        let mut lane = 0;
        while lane < TILE {
            let p = p0 + lane;
            let (oy, ox) = (p / self.row_step, p % self.row_step);
            if oy >= ho {
                break;
            }
            if ox >= wo {
                lane += self.row_step - ox;
                continue;
            }
            let len = (wo - ox).min(TILE - lane);
            runs.push(TileRun { lane, oy, ox, len });
            lane += len;
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(k: usize, s: usize, d: usize, p: usize) -> ConvAttrs {
        ConvAttrs { group: 1, kernel: [k, k], strides: [s, s], dilations: [d, d], pads: [p; 4] }
    }

    #[test]
    fn output_size_follows_onnx() {
        let g = ConvGeometry::new(attrs(3, 1, 1, 1), 8, 8, [20, 20]).unwrap();
        assert_eq!(g.out_hw, [20, 20]);
        let g = ConvGeometry::new(attrs(3, 2, 1, 1), 8, 8, [20, 20]).unwrap();
        assert_eq!(g.out_hw, [10, 10]);
        let g = ConvGeometry::new(attrs(3, 1, 2, 2), 8, 8, [9, 9]).unwrap();
        assert_eq!(g.out_hw, [9, 9]);
        assert!(ConvGeometry::new(attrs(5, 1, 1, 0), 8, 8, [3, 3]).is_err());
    }

    #[test]
    fn every_output_pixel_is_in_exactly_one_tile() {
        for (k, s, d, p, hw) in [(3, 1, 1, 1, [7, 40]), (3, 2, 1, 1, [13, 9]), (1, 1, 1, 0, [1, 1]), (5, 2, 2, 4, [30, 17])] {
            let g = ConvGeometry::new(attrs(k, s, d, p), 4, 4, hw).unwrap();
            let mut seen = vec![0u8; g.out_hw[0] * g.out_hw[1]];
            for i in 0..g.tiles.len() {
                for r in g.tile_runs(i) {
                    (r.ox..r.ox + r.len).for_each(|x| seen[r.oy * g.out_hw[1] + x] += 1);
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "k{k} s{s} d{d} p{p} {hw:?}");
        }
    }

    #[test]
    fn strided_taps_read_contiguous_slots() {
        // Stride 2: output pixels ox and ox+1 of one tap read input columns two apart,
        // which the phase layout stores side by side.
        let g = ConvGeometry::new(attrs(3, 2, 1, 1), 4, 4, [8, 8]).unwrap();
        for kx in 0..3 {
            for ox in 0..3 {
                assert_eq!(g.column_slot(2 * (ox + 1) + kx), g.column_slot(2 * ox + kx) + 1);
            }
        }
    }
}

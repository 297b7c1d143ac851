//! 3×3 stride-1 float convolutions by Winograd's F(4×4, 3×3): 36 multiplies per
//! 4×4 output tile and channel pair instead of 144.
//!
//! Each 6×6 input tile `d` (overlapping by 2) is transformed to `V = Bᵀ d B`, the
//! weights once at load time to `U = G g Gᵀ`; then, for each of the 36 positions
//! `k`, `M[k] = U[k] · V[k]` is a matrix product over the input channels (computed
//! by the instruction set's dense float kernel, the same one the direct
//! convolutions use, tiles standing for pixels), and `Y = Aᵀ M A` gives the 16
//! outputs of the tile, finished with bias and epilogue. Tiles are taken in
//! chunks so that V and M stay in a few hundred KiB per worker; chunks are the
//! parallel work items. The transforms add rounding of a few hundred ulps of the
//! terms' magnitude, well inside float models' tolerance; `EDGESEG_WINOGRAD=off`
//! computes such convolutions directly.

use crate::linalg::epilogue::Epilogue;
use crate::linalg::f32conv::F32Conv as Kernels;
use crate::model::parallel::{for_each, SyncPtr};
use crate::model::qdq::geometry::ConvAttrs;
use crate::model::qdq::op::Channels;
use std::cell::RefCell;

/// Positions of a transformed tile.
const K: usize = 36;
/// Tiles the transforms take at once (one tile row's run; sizes their stack arrays).
const GROUP: usize = 64;
/// Bytes of V and M a chunk may take, per worker.
const CHUNK_BYTES: usize = 512 << 10;

/// Whether a convolution goes to Winograd: 3×3, stride 1, undilated, dense, and
/// large enough that the transforms pay for themselves.
pub fn applies(attrs: &ConvAttrs, cin: usize, cout: usize, out_hw: [usize; 2]) -> bool {
    fits(attrs, cin, cout) && out_hw[0] >= 4 && out_hw[1] >= 4
}

/// [`applies`] before the output size is known (the load-time rewrite's question).
pub fn fits(attrs: &ConvAttrs, cin: usize, cout: usize) -> bool {
    let off = matches!(std::env::var("EDGESEG_WINOGRAD").as_deref(), Ok("off") | Ok("0") | Ok("false"));
    !off && attrs.kernel == [3, 3] && attrs.strides == [1, 1] && attrs.dilations == [1, 1] && attrs.group == 1 && cin >= 8 && cout >= 8
}

/// The transformed weights and the tiling of one convolution.
#[derive(Debug)]
pub struct Winograd {
    cin: usize,
    cout: usize,
    in_hw: [usize; 2],
    /// Top and left padding.
    pad: [usize; 2],
    out_hw: [usize; 2],
    /// Tiles per column and row.
    tiles: [usize; 2],
    /// Tiles per chunk: a multiple of 16 (the dense kernel's smallest block).
    chunk: usize,
    /// `U[k]` in the dense kernel's panels: `[k][panel][ci][rows]`.
    u: Vec<f32>,
    panel_len: usize,
    panels: usize,
    /// Where input channel `c`'s tiles start in a chunk's V (the dense kernel's steps).
    offsets: Vec<usize>,
}

/// `G g` for a 3-vector: the weight transform of one direction (in f64).
fn weight_1d(g: [f64; 3]) -> [f64; 6] {
    [g[0] / 4.0, -(g[0] + g[1] + g[2]) / 6.0, (-g[0] + g[1] - g[2]) / 6.0, g[0] / 24.0 + g[1] / 12.0 + g[2] / 6.0, g[0] / 24.0 - g[1] / 12.0 + g[2] / 6.0, g[2]]
}

/// `Bᵀ d` for a 6-vector: the input transform of one direction.
#[inline(always)]
fn input_1d(d: [f32; 6]) -> [f32; 6] {
    [
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * d[1] - 4.0 * d[2] + d[3] + d[4],
        4.0 * d[1] - 4.0 * d[2] - d[3] + d[4],
        -2.0 * d[1] - d[2] + 2.0 * d[3] + d[4],
        2.0 * d[1] - d[2] - 2.0 * d[3] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5],
    ]
}

/// `Aᵀ m` for a 6-vector: the output transform of one direction.
#[inline(always)]
fn output_1d(m: [f32; 6]) -> [f32; 4] {
    let (a, b) = (m[1] + m[2], m[1] - m[2]);
    let (c, d) = (m[3] + m[4], m[3] - m[4]);
    [m[0] + a + c, b + 2.0 * d, a + 4.0 * c, b + 8.0 * d + m[5]]
}

impl Winograd {
    /// For weights `[cout, cin, 3, 3]` (see [`applies`]).
    pub fn new(attrs: &ConvAttrs, weights: &[f32], cin: usize, cout: usize, in_hw: [usize; 2], out_hw: [usize; 2], rows: usize) -> Winograd {
        let tiles = [out_hw[0].div_ceil(4), out_hw[1].div_ceil(4)];
        let per_tile = K * (cin + cout) * 4;
        let chunk = (CHUNK_BYTES / per_tile).clamp(16, 512) / 16 * 16;
        let chunk = chunk.min((tiles[0] * tiles[1]).next_multiple_of(16));
        let panels = cout.div_ceil(rows);
        let panel_len = cin * rows;
        let mut u = vec![0f32; K * panels * panel_len];
        for o in 0..cout {
            for c in 0..cin {
                let g: [f64; 9] = std::array::from_fn(|i| f64::from(weights[(o * cin + c) * 9 + i]));
                // G g Gᵀ: columns first, then rows.
                let [c0, c1, c2]: [[f64; 6]; 3] = std::array::from_fn(|x| weight_1d([g[x], g[3 + x], g[6 + x]]));
                for i in 0..6 {
                    let row = weight_1d([c0[i], c1[i], c2[i]]);
                    for (j, &v) in row.iter().enumerate() {
                        let k = i * 6 + j;
                        u[(k * panels + o / rows) * panel_len + c * rows + o % rows] = v as f32;
                    }
                }
            }
        }
        let offsets = (0..cin).map(|c| c * chunk).collect();
        Winograd { cin, cout, in_hw, pad: [attrs.pads[0], attrs.pads[1]], out_hw, tiles, chunk, u, panel_len, panels, offsets }
    }

    /// Run on one image: `x` holds `cin` planes, `y` is `[cout, ho, wo]`.
    pub fn run(&self, kernels: &Kernels, bias: &[f32], epilogue: &Epilogue, x: &Channels, y: &mut [f32]) {
        let total = self.tiles[0] * self.tiles[1];
        let chunks = total.div_ceil(self.chunk);
        let y_ptr = SyncPtr(y.as_mut_ptr());
        let work = self.chunk * K * self.cin * self.cout;
        for_each(chunks, work, |ci| {
            BUFFERS.with_borrow_mut(|(v, m)| {
                let t = self.chunk;
                // The dense kernel reads up to 64 tiles past a block's start.
                v.resize(K * self.cin * t + 64, 0.0);
                m.resize(K * self.cout * t, 0.0);
                let first = ci * t;
                let count = (total - first).min(t);
                self.transform_input(x, first, count, v);
                self.multiply(kernels, v, m);
                // Safety: chunks write disjoint output tiles.
                let y = unsafe { std::slice::from_raw_parts_mut(y_ptr.get(), self.cout * self.out_hw[0] * self.out_hw[1]) };
                self.transform_output(kernels, m, first, count, bias, epilogue, y);
            })
        });
    }

    /// `V[k][c][i] = (Bᵀ d B)[k]` of tiles `first .. first + count`, channel `c`.
    ///
    /// Taken a run of up to [`GROUP`] tiles of one tile row at a time, so that both
    /// passes vectorise: the vertical pass runs along the 6 input rows' pixels, the
    /// horizontal one along the tiles (after splitting each row by phase mod 4).
    fn transform_input(&self, x: &Channels, first: usize, count: usize, v: &mut [f32]) {
        let t = self.chunk;
        let tw = self.tiles[1];
        let [h, w] = self.in_hw;
        let [pt, pl] = self.pad;
        // Zeroed once per call, not per channel: every element read below is written
        // first (d's padding explicitly), and zeroing these 30 KB per channel and run of
        // tiles was a quarter of a small layer's transform (memset in the profile).
        let mut d = [[0f32; 4 * GROUP + 2]; 6];
        let mut cols = [[0f32; 4 * GROUP + 2]; 6];
        let mut phase = [[0f32; GROUP + 1]; 4];
        let mut out = [[0f32; GROUP]; 6];
        let mut tile = first;
        while tile < first + count {
            let (ty, tx) = (tile / tw, tile % tw);
            let n = (first + count).min((ty + 1) * tw).min(tile + GROUP) - tile;
            let i0 = tile - first;
            let width = 4 * n + 2;
            // Input columns x0 .. x0 + width in padded coordinates.
            let x0 = 4 * tx;
            let (lo, hi) = (pl.saturating_sub(x0).min(width), (w + pl).saturating_sub(x0).min(width));
            for c in 0..self.cin {
                let plane = x.float_plane(c);
                for (r, row) in d.iter_mut().enumerate() {
                    let row = &mut row[..width];
                    let Some(iy) = (4 * ty + r).checked_sub(pt).filter(|&iy| iy < h) else {
                        row.fill(0.0);
                        continue;
                    };
                    if lo < hi {
                        let at = iy * w + x0 + lo - pl;
                        row[lo..hi].copy_from_slice(&plane[at..at + hi - lo]);
                        row[..lo].fill(0.0);
                        row[hi..].fill(0.0);
                    } else {
                        row.fill(0.0);
                    }
                }
                // Bᵀ along the columns: six rows of `width` pixels.
                {
                    let [c0, c1, c2, c3, c4, c5] = &mut cols;
                    for p in 0..width {
                        let o = input_1d([d[0][p], d[1][p], d[2][p], d[3][p], d[4][p], d[5][p]]);
                        (c0[p], c1[p], c2[p], c3[p], c4[p], c5[p]) = (o[0], o[1], o[2], o[3], o[4], o[5]);
                    }
                }
                // Then along each row, the tiles side by side. Tile j reads the row's
                // taps 4j .. 4j + 6: split by phase (a stride-4 split, `ld4` on NEON),
                // its taps 4 and 5 are taps 0 and 1 of tile j + 1.
                for (r, row) in cols.iter().enumerate() {
                    let row = &row[..width];
                    {
                        let [p0, p1, p2, p3] = &mut phase;
                        let quads = p0[..n].iter_mut().zip(&mut p1[..n]).zip(&mut p2[..n]).zip(&mut p3[..n]);
                        for (q, (((a, b), c), d)) in row.chunks_exact(4).zip(quads) {
                            (*a, *b, *c, *d) = (q[0], q[1], q[2], q[3]);
                        }
                        (p0[n], p1[n]) = (row[4 * n], row[4 * n + 1]);
                    }
                    {
                        let [p0, p1, p2, p3] = &phase;
                        let [o0, o1, o2, o3, o4, o5] = &mut out;
                        for j in 0..n {
                            let o = input_1d([p0[j], p1[j], p2[j], p3[j], p0[j + 1], p1[j + 1]]);
                            (o0[j], o1[j], o2[j], o3[j], o4[j], o5[j]) = (o[0], o[1], o[2], o[3], o[4], o[5]);
                        }
                    }
                    for (s, o) in out.iter().enumerate() {
                        let at = ((r * 6 + s) * self.cin + c) * t + i0;
                        v[at..at + n].copy_from_slice(&o[..n]);
                    }
                }
            }
            tile += n;
        }
        // Tiles past the last of this chunk hold whatever they held: their
        // products land in M columns that nothing reads.
    }

    /// `M[k] = U[k] · V[k]` for the 36 positions, by the dense float kernel.
    fn multiply(&self, kernels: &Kernels, v: &[f32], m: &mut [f32]) {
        let t = self.chunk;
        let rows = kernels.rows;
        let offsets = &self.offsets;
        let zero = [0f32; 16];
        let none = Epilogue::default();
        for k in 0..K {
            let vk = v[k * self.cin * t..].as_ptr();
            for p in 0..self.panels {
                let w = self.u[(k * self.panels + p) * self.panel_len..].as_ptr();
                let first = p * rows;
                let used = (self.cout - first).min(rows);
                let out = m[(k * self.cout + first) * t..].as_mut_ptr();
                let mut i = 0;
                while i < t {
                    let pixels = if t - i >= 64 { 64 } else if t - i >= 32 { 32 } else { 16 };
                    // Safety: the kernels are the selected set's; V holds cin rows of t tiles
                    // (plus 64 of slack) for position k; the panel holds cin × rows weights;
                    // M holds `used` rows of t tiles from `out`, and i + pixels <= t.
                    unsafe { (kernels.dense)(vk.add(i), offsets, w, &zero[..rows], &none, used, out.add(i), t, pixels) };
                    i += pixels;
                }
            }
        }
    }

    /// `Y = Aᵀ M A` of each tile into `y`, then bias and epilogue over the rows the
    /// chunk covers (by the set's vector `finish_line`). Runs of up to [`GROUP`]
    /// tiles of one tile row at a time, both passes along the tiles.
    #[allow(clippy::too_many_arguments)]
    fn transform_output(&self, kernels: &Kernels, m: &[f32], first: usize, count: usize, bias: &[f32], epilogue: &Epilogue, y: &mut [f32]) {
        let t = self.chunk;
        let [ho, wo] = self.out_hw;
        let tw = self.tiles[1];
        // Once per call, as in `transform_input`: only elements `..n` are read, after
        // being written.
        let mut rows = [[[0f32; GROUP]; 4]; 6];
        let mut col = [[[0f32; GROUP]; 4]; 4];
        let mut tile = first;
        while tile < first + count {
            let (ty, tx) = (tile / tw, tile % tw);
            let n = (first + count).min((ty + 1) * tw).min(tile + GROUP) - tile;
            let i0 = tile - first;
            let (x0, x1) = (4 * tx, (4 * (tx + n)).min(wo));
            for o in 0..self.cout {
                // Aᵀ along each of the 6 rows of M: 6 × 4 values per tile.
                for (r, row) in rows.iter_mut().enumerate() {
                    let at = |s: usize| &m[((r * 6 + s) * self.cout + o) * t + i0..][..n];
                    let (m0, m1, m2, m3, m4, m5) = (at(0), at(1), at(2), at(3), at(4), at(5));
                    let [r0, r1, r2, r3] = row;
                    for j in 0..n {
                        let q = output_1d([m0[j], m1[j], m2[j], m3[j], m4[j], m5[j]]);
                        (r0[j], r1[j], r2[j], r3[j]) = (q[0], q[1], q[2], q[3]);
                    }
                }
                // Then down each of the 4 columns: `col[s][r]` is output row r, column s
                // of every tile.
                for s in 0..4 {
                    let [c0, c1, c2, c3] = &mut col[s];
                    for j in 0..n {
                        let q = output_1d([rows[0][s][j], rows[1][s][j], rows[2][s][j], rows[3][s][j], rows[4][s][j], rows[5][s][j]]);
                        (c0[j], c1[j], c2[j], c3[j]) = (q[0], q[1], q[2], q[3]);
                    }
                }
                // Into the output rows, the 4 columns interleaved (`st4` on NEON); the
                // last tile of a row may stick out past the image's right edge.
                let out = &mut y[o * ho * wo..(o + 1) * ho * wo];
                let whole = ((x1 - x0) / 4).min(n);
                for r in 0..4.min(ho - 4 * ty) {
                    let line = &mut out[(4 * ty + r) * wo..(4 * ty + r + 1) * wo];
                    let cols = col[0][r][..whole].iter().zip(&col[1][r][..whole]).zip(&col[2][r][..whole]).zip(&col[3][r][..whole]);
                    for (q, (((a, b), c), d)) in line[x0..x0 + 4 * whole].chunks_exact_mut(4).zip(cols) {
                        q.copy_from_slice(&[*a, *b, *c, *d]);
                    }
                    for (s, px) in line[x0 + 4 * whole..x1].iter_mut().enumerate() {
                        *px = col[s][r][whole];
                    }
                }
                for oy in 4 * ty..(4 * ty + 4).min(ho) {
                    let line = &mut out[oy * wo + x0..oy * wo + x1];
                    // Safety: the kernels are the selected set's; the line holds its floats.
                    unsafe { (kernels.finish_line)(line.as_mut_ptr(), line.len(), bias[o], epilogue) };
                }
            }
            tile += n;
        }
    }
}

thread_local! {
    /// A worker's V and M of one chunk, kept between calls so the frame loop does not allocate.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

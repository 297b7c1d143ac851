//! `F32Conv`: a tract op that computes a float convolution with edgeseg's kernels.
//!
//! The layout is the int8 convolutions' (`crate::model::qdq::geometry`) with one
//! float per channel instead of four bytes per block of four: each input channel
//! is copied once per call into a zero-padded plane whose columns are stored by
//! stride phase, so that output pixel `p` of reduction step `t` (one channel × one
//! tap) reads `x[p + offsets[t]]`, and a tile of 32 output pixels reads 32
//! consecutive floats per step: no im2col copy, and the selected instruction set's kernel
//! (`crate::linalg::f32conv`) keeps a panel of output channels × a block of pixels of sums
//! in registers. Depthwise convolutions run one output row at a time on their channel's
//! padded plane.

use crate::linalg::f32conv::F32Conv as Kernels;
use crate::model::parallel::{for_each, SyncPtr};
use crate::model::qdq::geometry::{ConvAttrs, ConvGeometry, TILE};
use crate::model::qdq::op::{eval_per_image, store_tile_rows, tile_blocks, Channels, Epilogue};
use crate::model::qdq::pack::deal_to_phases;
use std::cell::RefCell;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Floats a dense tile reads past the last input plane.
const DENSE_SLACK: usize = TILE + 16;

/// The most rows a set's dense kernel takes per panel (see `crate::linalg::f32conv::F32Conv::rows`).
const MAX_ROWS: usize = 16;

#[derive(Debug)]
enum Weights {
    /// Panels of `rows` output channels: `[panel][step][rows]`, rows past `cout` zero.
    Dense { panels: Vec<f32>, panel_len: usize },
    /// `[cout][kh × kw]`; output channel `o` reads input channel `o / multiplier`.
    Depthwise { w: Vec<f32>, multiplier: usize },
    /// A 3×3 stride-1 convolution by Winograd's F(4×4, 3×3).
    Winograd(super::winograd::Winograd),
}

/// What the graph rewrite hands over for one convolution.
pub struct F32ConvParts<'a> {
    pub attrs: ConvAttrs,
    /// `[cout, cin / group, kh, kw]`.
    pub weights: &'a [f32],
    pub weight_shape: [usize; 4],
    pub bias: &'a [f32],
    pub epilogue: Epilogue,
}

/// The weights and layout of one float convolution at one input size.
#[derive(Debug)]
pub struct F32ConvSpec {
    geom: ConvGeometry,
    /// Float offset of each reduction step from an output pixel's slot.
    offsets: Vec<usize>,
    /// Floats of one padded input plane.
    plane_len: usize,
    /// Floats from one dense plane to the next (see `plane_stride`).
    plane_stride: usize,
    /// Whether the kernel reads a one-tensor input where it is (see `reads_in_place`).
    in_place: bool,
    /// The dense kernel's calls, covering `geom.tiles`.
    blocks: Vec<Block>,
    /// For each block, where its pixels start in an output plane when they are
    /// one run of one output row: the kernel then stores them in place. (For
    /// layers with little reduction per pixel, the copy out of a buffer was a
    /// good part of the time: DeepLabV3+'s 16→64 1×1 conv at 256×256.)
    block_out: Vec<Option<usize>>,
    weights: Weights,
    bias: Vec<f32>,
    epilogue: Epilogue,
    /// The selected instruction set's kernels.
    kernels: Kernels,
}

impl F32ConvSpec {
    pub fn new(parts: &F32ConvParts, cin: usize, in_hw: [usize; 2]) -> TractResult<F32ConvSpec> {
        let [cout, cin_g, kh, kw] = parts.weight_shape;
        let group = parts.attrs.group;
        ensure!(cin_g * group == cin, "weights take {cin_g} channels per group × {group} groups, the input has {cin}");
        ensure!(group == 1 || cin_g == 1, "grouped convolutions other than depthwise are left to tract");
        ensure!(parts.weights.len() == cout * cin_g * kh * kw, "weight tensor size does not match its shape");
        ensure!(parts.bias.len() == cout, "{} bias values for {cout} output channels", parts.bias.len());
        ensure!(parts.epilogue.requantize.is_none(), "a float convolution has no output quantization");
        let kernels = crate::linalg::kernels().f32conv.context("this CPU's kernel set has no float convolutions")?;
        ensure!(kernels.rows <= MAX_ROWS, "panels of {} rows", kernels.rows);
        let rows = kernels.rows;
        let geom = ConvGeometry::new(parts.attrs.clone(), cin, cout, in_hw)?;
        let plane_len = geom.hp * geom.row_len;
        let in_place = reads_in_place(&geom, cout, rows);
        let plane_stride = if in_place { plane_len } else { plane_stride(plane_len) };
        let [dh, dw] = geom.attrs.dilations;
        let taps: Vec<usize> = (0..kh * kw).map(|t| (t / kw) * dh * geom.row_len + geom.column_slot(t % kw * dw)).collect();
        let (offsets, weights) = if super::winograd::applies(&geom.attrs, cin, cout, geom.out_hw) {
            (vec![], Weights::Winograd(super::winograd::Winograd::new(&geom.attrs, parts.weights, cin, cout, in_hw, geom.out_hw, rows)))
        } else if group == 1 {
            let offsets: Vec<usize> = (0..cin).flat_map(|c| taps.iter().map(move |&t| c * plane_stride + t)).collect();
            let steps = offsets.len();
            let panel_len = steps * rows;
            let mut panels = vec![0f32; cout.div_ceil(rows) * panel_len];
            for (row, w_row) in parts.weights.chunks_exact(steps).enumerate() {
                for (t, &w) in w_row.iter().enumerate() {
                    panels[(row / rows) * panel_len + t * rows + row % rows] = w;
                }
            }
            (offsets, Weights::Dense { panels, panel_len })
        } else {
            ensure!(cout.is_multiple_of(cin), "depthwise convolution with {cout} outputs for {cin} channels");
            (taps, Weights::Depthwise { w: parts.weights.to_vec(), multiplier: cout / cin })
        };
        let blocks = blocks(&geom);
        let block_out = blocks.iter().map(|&b| in_one_run(&geom, b)).collect();
        Ok(F32ConvSpec { geom, offsets, plane_len, plane_stride, in_place, blocks, block_out, weights, bias: parts.bias.to_vec(), epilogue: parts.epilogue, kernels })
    }

    pub fn output_shape(&self, batch: usize) -> [usize; 4] {
        [batch, self.geom.cout, self.geom.out_hw[0], self.geom.out_hw[1]]
    }

    pub fn is_depthwise(&self) -> bool {
        matches!(self.weights, Weights::Depthwise { .. })
    }

    /// Run on one image: `x` holds `cin` planes, `y` is `[cout, ho, wo]`.
    pub fn run(&self, x: &Channels, y: &mut [f32]) {
        match &self.weights {
            Weights::Dense { panels, panel_len } => self.run_dense(x, y, panels, *panel_len),
            Weights::Depthwise { w, multiplier } => self.run_depthwise(x, y, w, *multiplier),
            Weights::Winograd(wg) => wg.run(&self.kernels, &self.bias, &self.epilogue, x, y),
        }
    }

    fn run_dense(&self, x: &Channels, y: &mut [f32], panels: &[f32], panel_len: usize) {
        let g = &self.geom;
        let (cin, cout) = (g.cin, g.cout);
        let (plane_len, stride) = (self.plane_len, self.plane_stride);
        PLANES.with_borrow_mut(|buf| {
            let planes = match x.as_single().filter(|x| self.in_place && x.len() == cin * plane_len) {
                // Already the layout the kernel reads: planes `plane_len` apart, no padding.
                Some(x) => SyncPtr(x.as_ptr() as *mut f32),
                None => {
                    let total = cin * stride + DENSE_SLACK;
                    if buf.len() < total {
                        buf.resize(total, 0.0);
                    }
                    let planes = SyncPtr(buf.as_mut_ptr());
                    for_each(cin, plane_len, |c| {
                        // Safety: each channel writes its own plane, inside the buffer sized above.
                        let dst = unsafe { std::slice::from_raw_parts_mut(planes.get().add(c * stride), plane_len) };
                        pad_plane(g, x.float_plane(c), dst);
                    });
                    SyncPtr(buf.as_mut_ptr())
                }
            };
            let y_ptr = SyncPtr(y.as_mut_ptr());
            let y_len = y.len();
            let out_plane = g.out_hw[0] * g.out_hw[1];
            for_each(self.blocks.len(), 2 * TILE * self.offsets.len() * cout, |bi| {
                let block = self.blocks[bi];
                // A block's rows in a buffer, 2 tiles wide, where they cannot go in place.
                const LD: usize = 2 * TILE;
                let mut done = [0f32; MAX_ROWS * LD];
                let k = &self.kernels;
                // Safety: outputs of different blocks are different pixels.
                let y = unsafe { std::slice::from_raw_parts_mut(y_ptr.get(), y_len) };
                for (mp, panel) in panels.chunks_exact(panel_len).enumerate() {
                    let first = mp * k.rows;
                    let rows = (cout - first).min(k.rows);
                    let bias: [f32; MAX_ROWS] = std::array::from_fn(|r| if r < rows { self.bias[first + r] } else { 0.0 });
                    let (taps, w, ep) = (&self.offsets, panel.as_ptr(), &self.epilogue);
                    let (out, ld) = match self.block_out[bi] {
                        // Rows `first + r` of the output, at the run's start: inside `y`, as the
                        // block's pixels are one run of an output row.
                        Some(at) => (y.as_mut_ptr().wrapping_add(first * out_plane + at), out_plane),
                        None => (done.as_mut_ptr(), LD),
                    };
                    // Safety: the kernels are the selected set's, which this CPU runs; a block's
                    // reads end inside the planes' slack (see DENSE_SLACK); the panel holds
                    // steps × k.rows floats; the stores go to `rows` rows of the block's pixels at
                    // `out` (see above).
                    unsafe {
                        let at = planes.get().add(g.tiles[block.first_tile()]);
                        let bias = &bias[..k.rows];
                        match block {
                            Block::Pair(_) => (k.dense)(at, taps, w, bias, ep, rows, out, ld, 2 * TILE),
                            Block::Whole(_) => (k.dense)(at, taps, w, bias, ep, rows, out, ld, TILE),
                            Block::Half(_, h) => (k.dense)(at.add(16 * h), taps, w, bias, ep, rows, out.wrapping_add(16 * h), ld, 16),
                        }
                    }
                    if self.block_out[bi].is_none() {
                        store_tile_rows(g, first, rows, block.first_tile(), &done, LD, y);
                        if let Block::Pair(ti) = block {
                            store_tile_rows(g, first, rows, ti + 1, &done[TILE..], LD, y);
                        }
                    }
                }
            });
        });
    }

    fn run_depthwise(&self, x: &Channels, y: &mut [f32], w: &[f32], multiplier: usize) {
        let g = &self.geom;
        let taps = self.offsets.len();
        let [ho, wo] = g.out_hw;
        let y_ptr = SyncPtr(y.as_mut_ptr());
        for_each(g.cin, self.plane_len * (1 + multiplier * taps), |c| {
            DEPTHWISE_PLANE.with_borrow_mut(|plane| {
                plane.resize(self.plane_len + self.kernels.depthwise_slack, 0.0);
                pad_plane(g, x.float_plane(c), &mut plane[..self.plane_len]);
                for o in c * multiplier..(c + 1) * multiplier {
                    let taps = &w[o * taps..(o + 1) * taps];
                    for oy in 0..ho {
                        // Safety: channel o's output plane belongs to this item alone; the row's
                        // reads stay inside the plane and its slack; the kernels are the selected
                        // set's, which this CPU runs.
                        unsafe {
                            let out = y_ptr.get().add((o * ho + oy) * wo);
                            (self.kernels.depthwise_row)(plane.as_ptr().add(oy * g.row_step), &self.offsets, taps, wo, self.bias[o], &self.epilogue, out);
                        }
                    }
                }
            })
        });
    }
}

/// One call of the dense kernel, by index in `ConvGeometry::tiles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// Tiles `i` and `i + 1`, adjacent (64 consecutive pixels), both holding output pixels in both halves.
    Pair(usize),
    /// Tile `i`.
    Whole(usize),
    /// The half `h` of tile `i`, the other half holding no output pixel.
    Half(usize, usize),
}

impl Block {
    fn first_tile(self) -> usize {
        match self {
            Block::Pair(i) | Block::Whole(i) | Block::Half(i, _) => i,
        }
    }
}

/// The tiles grouped into kernel calls: adjacent whole tiles in pairs.
fn blocks(g: &ConvGeometry) -> Vec<Block> {
    let whole = |i| only_half(g, i).is_none();
    let blocks = tile_blocks(g, whole).into_iter().map(|(i, n)| match (n, only_half(g, i)) {
        (2, _) => Block::Pair(i),
        (_, Some(h)) => Block::Half(i, h),
        _ => Block::Whole(i),
    });
    blocks.collect()
}

/// Whether a dense convolution reads its input where it is, instead of a
/// padded copy: a 1×1 stride-1 unpadded convolution (its padded planes are the
/// input's), with whole tiles (so no read runs past the last plane), and one
/// panel of outputs, so each input value is read once. With more panels the
/// copy pays for itself: at the input's own power-of-two plane distance, the
/// tiles re-read for every panel evict each other from the caches (see
/// `plane_stride`). DeepLabV3+'s 256→5 head at 128×128 spent half its time
/// copying 16 MB.
fn reads_in_place(g: &ConvGeometry, cout: usize, rows: usize) -> bool {
    let a = &g.attrs;
    a.kernel == [1, 1] && a.strides == [1, 1] && a.pads == [0; 4] && a.group == 1 && cout <= rows && (g.hp * g.row_len).is_multiple_of(TILE)
}

/// Where the pixels of `block` start in an output plane, when all its lanes
/// are one run of one output row.
fn in_one_run(g: &ConvGeometry, block: Block) -> Option<usize> {
    let (first, tiles) = match block {
        Block::Pair(i) => (i, 2),
        Block::Whole(i) => (i, 1),
        Block::Half(..) => return None,
    };
    let start = match g.tile_runs(first) {
        [run] if run.lane == 0 && run.len == TILE => (run.oy, run.ox),
        _ => return None,
    };
    for k in 1..tiles {
        match g.tile_runs(first + k) {
            [run] if run.lane == 0 && run.len == TILE && (run.oy, run.ox) == (start.0, start.1 + k * TILE) => {}
            _ => return None,
        }
    }
    Some(start.0 * g.out_hw[1] + start.1)
}

/// `Some(h)` when the output pixels of tile `i` all lie in its half `h`.
fn only_half(g: &ConvGeometry, i: usize) -> Option<usize> {
    let mut used = [false; 2];
    for r in g.tile_runs(i) {
        used[r.lane / 16] = true;
        used[(r.lane + r.len - 1) / 16] = true;
    }
    match used {
        [true, false] => Some(0),
        [false, true] => Some(1),
        _ => None,
    }
}

/// The distance between dense input planes: a whole number of 4 KiB plus one
/// cache line. A tile reads the same pixels of every plane; at a power-of-two
/// distance (a 128×128 plane is 64 KiB) those lines all fall in one cache set
/// and evict each other, which made DeepLab's 304-channel 1×1 decoder conv run
/// at half speed. Shifted by a line per plane, they spread over every set.
fn plane_stride(plane_len: usize) -> usize {
    plane_len.next_multiple_of(1024) + 16
}

/// Copy one `h × w` plane into its zero-padded, stride-phase-ordered `hp × row_len` place.
fn pad_plane(g: &ConvGeometry, src: &[f32], dst: &mut [f32]) {
    let [h, w] = g.in_hw;
    let [pt, pl, _, _] = g.attrs.pads;
    let row_len = g.row_len;
    dst[..pt * row_len].fill(0.0);
    dst[(pt + h) * row_len..].fill(0.0);
    for (y, line) in src.chunks_exact(w).take(h).enumerate() {
        let row = &mut dst[(y + pt) * row_len..(y + pt + 1) * row_len];
        if g.attrs.strides[1] == 1 {
            row[..pl].fill(0.0);
            row[pl..pl + w].copy_from_slice(line);
            row[pl + w..].fill(0.0);
        } else {
            row.fill(0.0);
            deal_to_phases::<f32, 1>(g, pl, line, row);
        }
    }
}

thread_local! {
    /// The padded input planes of a dense convolution, kept between calls so the frame loop does not allocate.
    static PLANES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A depthwise worker's padded plane.
    static DEPTHWISE_PLANE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The tract op.
#[derive(Clone, Debug)]
pub struct F32Conv {
    pub spec: Arc<F32ConvSpec>,
}

impl PartialEq for F32Conv {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.spec, &other.spec)
    }
}
impl Eq for F32Conv {}

impl Op for F32Conv {
    fn name(&self) -> StaticName {
        "F32Conv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let s = &self.spec;
        let kind = match s.weights {
            Weights::Dense { .. } => "dense",
            Weights::Depthwise { .. } => "depthwise",
            Weights::Winograd(_) => "winograd F(4x4,3x3)",
        };
        Ok(vec![format!("{kind} ({}) {:?} {}x{} -> {:?} {:?}", s.kernels.name, s.geom.attrs, s.geom.cin, s.geom.cout, s.geom.out_hw, s.epilogue)])
    }

    op_as_typed_op!();
}

impl EvalOp for F32Conv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let g = &self.spec.geom;
        eval_per_image::<f32>("F32Conv", g.in_hw, g.cin, &inputs, &self.spec.output_shape(inputs[0].shape()[0]), false, |x, y| self.spec.run(x, y))
    }
}

impl TypedOp for F32Conv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = self.spec.output_shape(1);
        Ok(tvec!(f32::datum_type().fact([inputs[0].shape[0].clone(), s[1].to_dim(), s[2].to_dim(), s[3].to_dim()])))
    }

    as_op!();
}

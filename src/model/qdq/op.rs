//! `Int8Conv`: a tract op that computes a QDQ convolution in integers.
//!
//! It stands for `Conv(DequantizeLinear(QuantizeLinear(x)), DequantizeLinear(w),
//! DequantizeLinear(b))`, optionally followed by the output's
//! `QuantizeLinear → DequantizeLinear` and a `Relu`: the float input is quantized
//! to uint8 exactly as `QuantizeLinear` does, multiplied by the int8 weights with
//! exact int32 accumulation, and each output channel is scaled once by
//! `x_scale × w_scale[c]` (per-channel scales are exact), biased, and re-quantized
//! to the output's scale when the graph quantizes it there.

pub(crate) use super::channels::eval_per_image;
pub use super::channels::Channels;
use super::channels::Stored;
use super::geometry::{ConvAttrs, ConvGeometry, TileRun, TILE};
use crate::linalg::epilogue::{CodeTable, FinishTable};
use crate::linalg::int8::{Acc, ActivationCode, Elementwise, Kernel, PairKernel, DEPTHWISE_SLACK};
use super::pack::{quantize_block_x4, quantize_plane, BlockPlanes, PackedWeights, MR};
use crate::model::parallel::{for_each, SyncPtr};
use std::cell::RefCell;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

pub use crate::linalg::epilogue::{Epilogue, QuantParams};

/// How the weights are stored for the kernels.
#[derive(Debug)]
enum Weights {
    /// Any group count with several input channels per group: packed panels.
    Gemm(PackedWeights, Kernel, ActivationCode),
    /// One input channel per group: `[cout][kh*kw]` and each row's sum, and
    /// the VNNI kernel's tables where the CPU has it.
    Depthwise {
        w: Vec<i8>,
        sums: Vec<i32>,
        #[cfg(target_arch = "x86_64")]
        vnni: Option<crate::linalg::x86_64::avx512::depthwise::DepthwiseVnni>,
    },
}

/// The weights and constants of one int8 convolution at one input size.
#[derive(Debug)]
pub struct Int8ConvSpec {
    /// For a transposed convolution: a 1×1 convolution with `cout × kh × kw` rows.
    geom: ConvGeometry,
    /// `Some(kernel)` for a transposed convolution whose kernel equals its stride.
    transpose: Option<[usize; 2]>,
    cout: usize,
    input: QuantParams,
    weights: Weights,
    /// `x_scale × w_scale`, and the bias, for every kernel row.
    mult: Vec<f32>,
    bias: Vec<f32>,
    epilogue: Epilogue,
    kernel_name: &'static str,
    /// The element loops of the selected kernel set (`crate::linalg`).
    ew: Elementwise,
    /// The finished value of each output code, where the epilogue requantizes
    /// and then applies SiLU (see `crate::linalg::epilogue::FinishTable`).
    finish_table: Option<FinishTable>,
    /// The two-tile kernel, where the CPU has one (see `crate::linalg::int8::Gemm::pair`).
    pair: Option<PairKernel>,
    /// The kernel calls of a GEMM: `(first tile, 1 or 2 tiles)`, adjacent
    /// tiles paired where there is a two-tile kernel.
    blocks: Vec<(usize, usize)>,
    /// Where the output is stored as the next convolutions' input codes (see `channels`).
    codes: Option<QuantParams>,
    /// With codes and a requantizing epilogue: the stored code of each
    /// requantized one (see `crate::linalg::epilogue::CodeTable`).
    code_table: Option<CodeTable>,
}

/// What the graph rewrite hands over for one convolution.
pub struct Int8ConvParts<'a> {
    pub attrs: ConvAttrs,
    /// Present for ConvTranspose (kernel == stride, no padding, one group).
    pub transpose: bool,
    pub input: QuantParams,
    /// `[cout, cin/g, kh, kw]`, or `[cin, cout, kh, kw]` when transposed.
    pub weights: &'a [i8],
    pub weight_shape: [usize; 4],
    /// One scale, or one per output channel.
    pub weight_scales: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub epilogue: Epilogue,
}

impl Int8ConvSpec {
    pub fn new(parts: &Int8ConvParts, cin: usize, in_hw: [usize; 2]) -> TractResult<Int8ConvSpec> {
        let [w0, w1, kh, kw] = parts.weight_shape;
        let (cout, rows, geom) = if parts.transpose {
            ensure!(w0 == cin, "ConvTranspose weights are for {w0} input channels, the input has {cin}");
            let one = ConvAttrs { group: 1, kernel: [1, 1], strides: [1, 1], dilations: [1, 1], pads: [0; 4] };
            (w1, w1 * kh * kw, ConvGeometry::new(one, cin, w1 * kh * kw, in_hw)?)
        } else {
            ensure!(w1 * parts.attrs.group == cin, "Conv weights take {w1} channels per group × {} groups, the input has {cin}", parts.attrs.group);
            (w0, w0, ConvGeometry::new(parts.attrs.clone(), cin, w0, in_hw)?)
        };
        ensure!(parts.weights.len() == w0 * w1 * kh * kw, "weight tensor size does not match its shape");
        let scales = parts.weight_scales;
        ensure!(scales.len() == 1 || scales.len() == cout, "{} weight scales for {cout} output channels", scales.len());
        if let Some(b) = parts.bias {
            ensure!(b.len() == cout, "{} bias values for {cout} output channels", b.len());
        }
        let taps = kh * kw;
        // Channel of each kernel row: rows of a transposed conv are (co, ky, kx).
        let channel = |row: usize| if parts.transpose { row / taps } else { row };
        let mult = (0..rows).map(|r| parts.input.scale * scales[if scales.len() == 1 { 0 } else { channel(r) }]).collect();
        let bias = (0..rows).map(|r| parts.bias.map_or(0.0, |b| b[channel(r)])).collect();
        let (weights, name) = if parts.transpose {
            // Row (co, ky, kx) of the 1×1 GEMM reads w[ci][co][ky][kx].
            let gemm = crate::linalg::kernels().int8_gemm;
            let packed = PackedWeights::pack(&geom, 1, rows, gemm.weights, |row, ci, _, _| parts.weights[(ci * w1 + row / taps) * taps + row % taps]);
            let k = gemm.tile_for(packed.has_minus_128);
            (Weights::Gemm(packed, k, gemm.code), gemm.name)
        } else if w1 == 1 && cout / cin < MR {
            // One input channel per group and few outputs each: packed panels would
            // be mostly zeros, a direct loop is faster. (A single-channel input with
            // many outputs, like a gray image's first layer, goes to the GEMM.)
            let sums = parts.weights.chunks_exact(taps).map(|r| r.iter().map(|&w| i32::from(w)).sum()).collect();
            #[cfg(target_arch = "x86_64")]
            {
                let vnni = if crate::linalg::kernels().ew.depthwise_vnni { crate::linalg::x86_64::avx512::depthwise::DepthwiseVnni::new(&geom, parts.weights, cout) } else { None };
                let name = if vnni.is_some() { "depthwise (avx512vnni, 4 taps per vpdpbusd)" } else { "depthwise (widening)" };
                (Weights::Depthwise { w: parts.weights.to_vec(), sums, vnni }, name)
            }
            #[cfg(not(target_arch = "x86_64"))]
            (Weights::Depthwise { w: parts.weights.to_vec(), sums }, "depthwise (widening)")
        } else {
            let gemm = crate::linalg::kernels().int8_gemm;
            let groups = geom.attrs.group;
            let packed = PackedWeights::pack(&geom, groups, cout / groups, gemm.weights, |row, ci, ky, kx| parts.weights[((row * w1 + ci) * kh + ky) * kw + kx]);
            let k = gemm.tile_for(packed.has_minus_128);
            (Weights::Gemm(packed, k, gemm.code), gemm.name)
        };
        let transpose = parts.transpose.then_some([kh, kw]);
        let ew = crate::linalg::kernels().ew;
        let epilogue = parts.epilogue;
        let pair = match weights {
            Weights::Gemm(..) => crate::linalg::kernels().int8_gemm.pair,
            Weights::Depthwise { .. } => None,
        };
        let kernel_name = name;
        let blocks = tile_blocks(&geom, |_| pair.is_some());
        Ok(Int8ConvSpec {
            geom,
            transpose,
            cout,
            input: parts.input,
            weights,
            mult,
            bias,
            epilogue,
            kernel_name,
            ew,
            finish_table: match epilogue.requantize {
                // Safety: `ew` is the selected set, which this CPU runs.
                Some(q) if epilogue.silu => Some(unsafe { crate::linalg::int8::finish_table(&ew, q, &epilogue) }),
                _ => None,
            },
            pair,
            blocks,
            codes: None,
            code_table: None,
        })
    }

    /// Store the output as uint8 codes of `q` (the input quantization of every
    /// convolution that reads it) instead of floats: `run` then takes `&mut [u8]`.
    pub fn emit_codes(&mut self, q: QuantParams) -> TractResult<()> {
        ensure!(self.transpose.is_none(), "a transposed convolution stores floats only");
        self.codes = Some(q);
        self.code_table = match self.epilogue.requantize {
            // Safety: `ew` is the selected set, which this CPU runs.
            Some(rq) if !codes_lookup_disabled() => Some(unsafe { CodeTable::new(&self.ew, rq, &self.epilogue, q) }),
            _ => None,
        };
        Ok(())
    }

    pub fn output_shape(&self, batch: usize) -> [usize; 4] {
        let [ho, wo] = self.geom.out_hw;
        match self.transpose {
            Some([kh, kw]) => [batch, self.cout, ho * kh, wo * kw],
            None => [batch, self.cout, ho, wo],
        }
    }

    /// Run on one image: `x` is `[cin, h, w]`, `y` is the output of `output_shape`:
    /// floats, or codes after `emit_codes`.
    pub fn run<T: Stored>(&self, x: &Channels, y: &mut [T]) {
        match &self.weights {
            Weights::Gemm(packed, k, code) => self.run_gemm(x, y, packed, *k, *code),
            #[cfg(target_arch = "x86_64")]
            Weights::Depthwise { vnni: Some(vnni), sums, .. } => self.run_depthwise_vnni(x, y, vnni, sums),
            Weights::Depthwise { w, sums, .. } => self.run_depthwise(x, y, w, sums),
        }
    }

    fn run_gemm<T: Stored>(&self, x: &Channels, y: &mut [T], packed: &PackedWeights, k: Kernel, code: ActivationCode) {
        let g = &self.geom;
        let groups = g.attrs.group;
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        let block = 4 * g.hp * g.row_len;
        let group_bytes = g.x4_group_bytes();
        let blocks = g.cin_g4 / 4;
        let (xor, zp_eff) = match code {
            ActivationCode::Unsigned => (0, i32::from(self.input.zero_point)),
            ActivationCode::ShiftedSigned => (0x80, i32::from(self.input.zero_point) - 128),
        };
        X4.with_borrow_mut(|x4| {
            if x4.len() < groups * group_bytes {
                x4.resize(groups * group_bytes, 0);
            }
            let x4_ptr = SyncPtr(x4.as_mut_ptr());
            for_each(groups * blocks, block, |item| {
                let (grp, cb) = (item / blocks, item % blocks);
                // Safety: each item writes its own block, inside the buffer sized above.
                let dst = unsafe { std::slice::from_raw_parts_mut(x4_ptr.get().add(grp * group_bytes + cb * block), block) };
                let planes: BlockPlanes = std::array::from_fn(|lane| {
                    let ci = cb * 4 + lane;
                    let c = grp * cin_g + ci;
                    (ci < cin_g).then(|| x.plane(c))
                });
                quantize_block_x4(g, planes, dst, self.input.scale, self.input.zero_point, xor);
            });
            let x4_base = SyncPtr(x4.as_mut_ptr());
            let y_ptr = SyncPtr(y.as_mut_ptr());
            let y_len = y.len();
            for_each(self.blocks.len(), 2 * TILE * 4 * g.k4() * g.cout, |bi| {
                let (ti, tiles) = self.blocks[bi];
                let mut acc: [Acc; 2] = [[[0; TILE]; MR]; 2];
                let mut done = [[0f32; TILE]; MR];
                // Safety: outputs of different blocks are different pixels.
                let y = unsafe { std::slice::from_raw_parts_mut(y_ptr.get(), y_len) };
                for grp in 0..groups {
                    for mp in 0..packed.panels_per_group {
                        let x = x4_base.get().wrapping_add(grp * group_bytes + 4 * g.tiles[ti]);
                        let w = packed.panel(grp, mp).as_ptr();
                        // Safety: a block's reads end before the buffer's slack does (a pair
                        // reads what its second tile would); `pair` is the CPU's own.
                        match (tiles, self.pair) {
                            (2, Some(pair)) => unsafe { pair(x, &g.offsets, w, &mut acc) },
                            _ => unsafe { k(x, &g.offsets, w, &mut acc[0]) },
                        }
                        let rows = (cout_g - mp * MR).min(MR);
                        for (i, acc) in acc.iter().enumerate().take(tiles) {
                            self.store_panel(grp * cout_g + mp * MR, rows, acc, zp_eff, &packed.row_sums, ti + i, y, &mut done);
                        }
                    }
                }
            });
        });
    }

    /// Scale, bias and store kernel rows `first .. first + rows` of tile `ti`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn store_panel<T: Stored>(&self, first: usize, rows: usize, acc: &Acc, zp_eff: i32, row_sums: &[i32], ti: usize, y: &mut [T], done: &mut [[f32; TILE]; MR]) {
        let g = &self.geom;
        let corrections: [i32; MR] = std::array::from_fn(|r| if r < rows { zp_eff * row_sums[first + r] } else { 0 });
        if let (Some(table), Some(rq), None) = (&self.code_table, self.epilogue.requantize, self.transpose) {
            if let Some(y) = T::as_codes(y) {
                let mut codes = [[0u8; TILE]; MR];
                // Safety: `ew` is the selected set, which this CPU runs; rows <= MR.
                unsafe { (self.ew.finish_codes)(acc, rows, &corrections, &self.mult[first..first + rows], &self.bias[first..first + rows], rq, table, &mut codes) };
                return store_tile_rows_as(g, first, rows, ti, codes.as_flattened(), TILE, y);
            }
        }
        self.finish_rows(acc, rows, &corrections, &self.mult[first..first + rows], &self.bias[first..first + rows], done);
        match self.transpose {
            None => T::with_values(self.codes, &done.as_flattened()[..rows * TILE], |values| store_tile_rows_as(g, first, rows, ti, values, TILE, y)),
            Some([kh, kw]) => {
                let (ho2, wo2) = (g.out_hw[0] * kh, g.out_hw[1] * kw);
                for &TileRun { lane, oy, ox, len } in g.tile_runs(ti) {
                    for (r, done) in done.iter().enumerate().take(rows) {
                        let row = first + r;
                        let (co, ky, kx) = (row / (kh * kw), row / kw % kh, row % kw);
                        let line = &mut y[co * ho2 * wo2 + (oy * kh + ky) * wo2..][..wo2];
                        for i in 0..len {
                            // Transposed convolutions have no codes (`emit_codes`): this stores floats.
                            line[(ox + i) * kw + kx] = T::finished(None, done[lane + i]);
                        }
                    }
                }
            }
        }
    }

    /// `epilogue((acc - correction) × mult + bias)` for a tile's rows.
    #[inline]
    fn finish_rows(&self, acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], out: &mut [[f32; TILE]; MR]) {
        // Safety: `ew` is the selected set, which this CPU runs; rows <= MR.
        unsafe { (self.ew.finish_rows)(acc, rows, corrections, mult, bias, &self.epilogue, self.finish_table.as_ref(), out) }
    }

    fn run_depthwise<T: Stored>(&self, x: &Channels, y: &mut [T], w: &[i8], sums: &[i32]) {
        let g = &self.geom;
        let [kh, kw] = g.attrs.kernel;
        let [sh, sw] = g.attrs.strides;
        let [dh, dw] = g.attrs.dilations;
        let [ho, wo] = g.out_hw;
        // Where each tap of output row 0 reads in the padded plane; row oy adds oy × sh rows.
        let taps_at: Vec<usize> = (0..kh * kw).map(|t| (t / kw) * dh * g.row_len + (t % kw * dw % sw) * g.wq + t % kw * dw / sw).collect();
        let multiplier = self.cout / g.cin;
        let zp = i32::from(self.input.zero_point);
        let y_ptr = SyncPtr(y.as_mut_ptr());
        for_each(g.cin, g.hp * g.row_len * (1 + multiplier * kh * kw), |c| {
            DEPTHWISE.with_borrow_mut(|(plane, offsets, scratch)| {
                plane.resize(g.hp * g.row_len + DEPTHWISE_SLACK, 0);
                offsets.resize(taps_at.len(), 0);
                quantize_plane(g, x.plane(c), plane, self.input.scale, self.input.zero_point, false);
                for o in c * multiplier..(c + 1) * multiplier {
                    let taps = &w[o * kh * kw..(o + 1) * kh * kw];
                    let correction = zp * sums[o];
                    // Safety: channel o's output plane belongs to this item alone.
                    let out = unsafe { std::slice::from_raw_parts_mut(y_ptr.get().add(o * ho * wo), ho * wo) };
                    for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
                        offsets.iter_mut().zip(&taps_at).for_each(|(d, t)| *d = t + oy * sh * g.row_len);
                        T::fill_row(self.codes, out, scratch, |out| self.depthwise_row(plane, offsets, taps, correction, o, out));
                    }
                }
            })
        });
    }

    /// The depthwise convolution with the VNNI kernel (see `crate::linalg::x86_64::avx512::depthwise`).
    #[cfg(target_arch = "x86_64")]
    fn run_depthwise_vnni<T: Stored>(&self, x: &Channels, y: &mut [T], vnni: &crate::linalg::x86_64::avx512::depthwise::DepthwiseVnni, sums: &[i32]) {
        let g = &self.geom;
        let [kh, kw] = g.attrs.kernel;
        let [ho, wo] = g.out_hw;
        let multiplier = self.cout / g.cin;
        let zp = i32::from(self.input.zero_point);
        let y_ptr = SyncPtr(y.as_mut_ptr());
        for_each(g.cin, g.hp * g.row_len * (1 + multiplier * kh * kw), |c| {
            DEPTHWISE.with_borrow_mut(|(plane, _, scratch)| {
                plane.resize(g.hp * g.row_len + crate::linalg::x86_64::avx512::depthwise::SLACK, 0);
                quantize_plane(g, x.plane(c), plane, self.input.scale, self.input.zero_point, true);
                for (o, &sum) in sums.iter().enumerate().skip(c * multiplier).take(multiplier) {
                    let correction = zp * sum;
                    // Safety: channel o's output plane belongs to this item alone.
                    let out = unsafe { std::slice::from_raw_parts_mut(y_ptr.get().add(o * ho * wo), ho * wo) };
                    let (mult, bias) = (self.mult[o], self.bias[o]);
                    if let (Some(table), Some(rq)) = (&self.code_table, self.epilogue.requantize) {
                        if let Some(out) = T::as_codes(out) {
                            // Safety: as below; the code table is this set's.
                            unsafe { vnni.plane_codes(g, plane, o, correction, mult, bias, rq, table, out) };
                            continue;
                        }
                    }
                    for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
                        // Safety: `vnni` exists only where the CPU has the kernel's
                        // features; the plane has the kernel's slack.
                        T::fill_row(self.codes, out, scratch, |out| unsafe { vnni.row(g, plane, o, oy, correction, mult, bias, &self.epilogue, out) });
                    }
                }
            })
        });
    }

    /// One output row of one depthwise channel: `Σ taps[t] × plane[offsets[t] + i]`.
    #[allow(clippy::too_many_arguments)]
    fn depthwise_row(&self, plane: &[u8], offsets: &[usize], taps: &[i8], correction: i32, o: usize, out: &mut [f32]) {
        let (mult, bias) = (self.mult[o], self.bias[o]);
        debug_assert!(offsets.iter().all(|&off| off + out.len() + DEPTHWISE_SLACK <= plane.len()));
        // Safety: the plane has DEPTHWISE_SLACK bytes past its last row; `ew` is the
        // selected set, which this CPU runs.
        unsafe { (self.ew.depthwise_row)(plane.as_ptr(), offsets, taps, out.len(), correction, mult, bias, &self.epilogue, out.as_mut_ptr()) }
    }
}

/// The tiles of `g` as kernel calls `(first tile, count)`: each tile that
/// starts where the previous one ends joins it, when `pairable` allows both.
pub(crate) fn tile_blocks(g: &ConvGeometry, pairable: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut blocks = Vec::with_capacity(g.tiles.len());
    let mut i = 0;
    while i < g.tiles.len() {
        let adjacent = i + 1 < g.tiles.len() && g.tiles[i + 1] == g.tiles[i] + TILE;
        let n = if adjacent && pairable(i) && pairable(i + 1) { 2 } else { 1 };
        blocks.push((i, n));
        i += n;
    }
    blocks
}

/// Store the finished rows `first .. first + rows` of tile `ti` into the
/// `[cout, ho, wo]` output `y`; row `r` of the tile is `done[r·ld .. r·ld + TILE]`.
pub(crate) fn store_tile_rows(g: &ConvGeometry, first: usize, rows: usize, ti: usize, done: &[f32], ld: usize, y: &mut [f32]) {
    store_tile_rows_as(g, first, rows, ti, done, ld, y)
}

/// [`store_tile_rows`] of floats or of codes.
#[inline]
fn store_tile_rows_as<T: Stored>(g: &ConvGeometry, first: usize, rows: usize, ti: usize, done: &[T], ld: usize, y: &mut [T]) {
    let wo = g.out_hw[1];
    let plane = g.out_hw[0] * wo;
    for &TileRun { lane, oy, ox, len } in g.tile_runs(ti) {
        for r in 0..rows {
            let done: &[T; TILE] = done[r * ld..r * ld + TILE].try_into().expect("TILE-long slice");
            let at = (first + r) * plane + oy * wo + ox;
            if len == TILE {
                // A whole tile in one row (the common case): a fixed-size
                // copy the compiler inlines, instead of a memmove call.
                let dst: &mut [T; TILE] = (&mut y[at..at + TILE]).try_into().expect("TILE-long slice");
                *dst = *done;
            } else {
                T::copy_run(&done[lane..lane + len], &mut y[at..at + len]);
            }
        }
    }
}

/// A depthwise worker's padded plane, tap offsets and finished row (for codes).
type DepthwiseScratch = (Vec<u8>, Vec<usize>, Vec<f32>);

thread_local! {
    /// The quantized input copy, kept between calls so the frame loop does not allocate.
    static X4: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A depthwise worker's buffers (see `DepthwiseScratch`).
    static DEPTHWISE: RefCell<DepthwiseScratch> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// `EDGESEG_CODE_LOOKUP=off`: codes are finished as floats and quantized
/// instead of looked up (the same codes, to compare speed).
fn codes_lookup_disabled() -> bool {
    matches!(std::env::var("EDGESEG_CODE_LOOKUP").as_deref(), Ok("off") | Ok("0") | Ok("false"))
}

/// The tract op.
#[derive(Clone, Debug)]
pub struct Int8Conv {
    pub spec: Arc<Int8ConvSpec>,
}

impl PartialEq for Int8Conv {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.spec, &other.spec)
    }
}
impl Eq for Int8Conv {}

impl Op for Int8Conv {
    fn name(&self) -> StaticName {
        "Int8Conv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let s = &self.spec;
        Ok(vec![format!(
            "{} {:?} groups {} kernel {} x_scale {} x_zp {} {:?}",
            if s.transpose.is_some() { "transposed" } else { "conv" },
            s.geom.attrs,
            s.geom.attrs.group,
            s.kernel_name,
            s.input.scale,
            s.input.zero_point,
            s.epilogue
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Int8Conv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // Several inputs: a fused Concat of them on the channel axis.
        let g = &self.spec.geom;
        let shape = self.spec.output_shape(inputs[0].shape()[0]);
        match self.spec.codes {
            Some(_) => eval_per_image::<u8>("Int8Conv", g.in_hw, g.cin, &inputs, &shape, true, |x, y| self.spec.run(x, y)),
            None => eval_per_image::<f32>("Int8Conv", g.in_hw, g.cin, &inputs, &shape, true, |x, y| self.spec.run(x, y)),
        }
    }
}

impl TypedOp for Int8Conv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch = inputs[0].shape[0].clone();
        let s = self.spec.output_shape(1);
        let dt = if self.spec.codes.is_some() { u8::datum_type() } else { f32::datum_type() };
        Ok(tvec!(dt.fact([batch, s[1].to_dim(), s[2].to_dim(), s[3].to_dim()])))
    }

    as_op!();
}

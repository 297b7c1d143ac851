//! Load-time weight packing and per-call activation quantization into the
//! layout of `geometry` (see there).

use super::channels::Part;
use super::geometry::ConvGeometry;
use crate::linalg::int8::WeightLayout;

/// Output channels per weight panel: the rows one tile kernel call computes.
pub use crate::linalg::int8::MR;

/// Weights of every group, in micro-kernel panels.
///
/// Panel `(g, mp)` is `k4 × MR` rows' weights: for each reduction step `t` (4 input
/// channels × one tap, in `geometry.offsets` order), for each of the panel's
/// rows, the 4 weights that multiply that step's 4 channel bytes, as the kernel's
/// [`WeightLayout`] stores them. Channels past the group's count and rows past
/// the panel's are zero, so they add nothing.
#[derive(Clone, Debug)]
pub struct PackedWeights {
    pub data: Vec<i8>,
    pub panels_per_group: usize,
    pub panel_len: usize,
    /// Sum of each output row's weights (for the zero-point correction).
    pub row_sums: Vec<i32>,
    /// Whether a weight is -128 (see `crate::linalg::int8::Gemm::tile_any`).
    pub has_minus_128: bool,
}

impl PackedWeights {
    /// `weights[row][ci][ky][kx]` with `rows = groups × rows_per_group` and
    /// `ci < cin_g`; `tap_of(ci, ky, kx)` is the flat index into `weights`.
    pub fn pack(
        g: &ConvGeometry,
        groups: usize,
        rows_per_group: usize,
        layout: WeightLayout,
        weight_at: impl Fn(usize, usize, usize, usize) -> i8,
    ) -> PackedWeights {
        let [kh, kw] = g.attrs.kernel;
        let cin_g = g.cin_g();
        let k4 = g.k4();
        let panels_per_group = rows_per_group.div_ceil(MR);
        let bytes = layout.bytes();
        let panel_len = k4 * MR * bytes;
        let mut data = vec![0i8; groups * panels_per_group * panel_len];
        let mut row_sums = vec![0i32; groups * rows_per_group];
        let mut has_minus_128 = false;
        for grp in 0..groups {
            for r in 0..rows_per_group {
                let row = grp * rows_per_group + r;
                let panel = (grp * panels_per_group + r / MR) * panel_len;
                for ci in 0..cin_g {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let w = weight_at(row, ci, ky, kx);
                            let t = ((ci / 4) * kh + ky) * kw + kx;
                            let at = panel + (t * MR + r % MR) * bytes;
                            match layout {
                                WeightLayout::I8x4 => data[at + ci % 4] = w,
                                WeightLayout::I16EvenOdd => {
                                    // w0 w2 w1 w3, each an i16 (little endian: low byte first).
                                    let slot = at + 2 * [0, 2, 1, 3][ci % 4];
                                    data[slot] = w;
                                    data[slot + 1] = if w < 0 { -1 } else { 0 };
                                }
                            }
                            row_sums[row] += i32::from(w);
                            has_minus_128 |= w == i8::MIN;
                        }
                    }
                }
            }
        }
        PackedWeights { data, panels_per_group, panel_len, row_sums, has_minus_128 }
    }

    pub fn panel(&self, group: usize, mp: usize) -> &[i8] {
        let start = (group * self.panels_per_group + mp) * self.panel_len;
        &self.data[start..start + self.panel_len]
    }
}

pub use crate::linalg::epilogue::quantize;

/// The 4 channel planes of one X4 block (`None` past the group's channels).
pub type BlockPlanes<'a> = [Option<Part<'a>>; 4];

/// Quantize up to 4 channel planes (`h × w` floats or codes each) into one X4
/// block, padding with the zero point. Every stored byte is XORed with `xor`
/// (0x80 stores `q - 128` as i8, for kernels that multiply signed by signed).
pub fn quantize_block_x4(g: &ConvGeometry, planes: BlockPlanes, dst: &mut [u8], scale: f32, zero_point: u8, xor: u8) {
    let [h, w] = g.in_hw;
    let [pt, pl, _, pr] = g.attrs.pads;
    let pad = u32::from_ne_bytes([zero_point ^ xor; 4]);
    let wp = w + pl + pr;
    let mut scratch = Vec::new();
    let floats = planes.map(|p| match p {
        Some(Part::F32(x)) => Some(x),
        _ => None,
    });
    if planes.iter().any(|p| matches!(p, Some(Part::Codes(_)))) {
        return interleave_block_x4(g, planes, dst, scale, zero_point, xor, &mut scratch);
    }
    let ew = crate::linalg::kernels().ew;
    for iy in 0..g.hp {
        let row = &mut dst[iy * g.row_len * 4..(iy + 1) * g.row_len * 4];
        let mut put = |ix: usize, v: u32| {
            let at = 4 * g.column_slot(ix);
            row[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        };
        if iy < pt || iy >= pt + h {
            (0..wp).for_each(|ix| put(ix, pad));
            continue;
        }
        (0..pl).chain(pl + w..wp).for_each(|ix| put(ix, pad));
        let y = iy - pt;
        let ptrs = floats.map(|p| p.map(|p| p[y * w..(y + 1) * w].as_ptr()));
        if g.attrs.strides[1] == 1 {
            // Safety: each line holds w floats; slots pl..pl + w are inside the row.
            unsafe { (ew.quantize_x4)(ptrs, w, row[4 * pl..4 * (pl + w)].as_mut_ptr(), scale, zero_point, xor) };
        } else {
            // Strided: quantize in order, then deal the slots out to their phases.
            scratch.resize(4 * w, 0);
            // Safety: as above, into a scratch row of w slots.
            unsafe { (ew.quantize_x4)(ptrs, w, scratch.as_mut_ptr(), scale, zero_point, xor) };
            deal_to_phases::<u8, 4>(g, pl, &scratch, row);
        }
    }
}

/// [`quantize_block_x4`] where some planes are codes already: a row's float
/// lines are quantized into bytes first, then the 4 byte lines are interleaved
/// into the slots (in place for stride 1, else dealt out to the stride phases).
#[allow(clippy::too_many_arguments)]
fn interleave_block_x4(g: &ConvGeometry, planes: BlockPlanes, dst: &mut [u8], scale: f32, zero_point: u8, xor: u8, scratch: &mut Vec<u8>) {
    let [h, w] = g.in_hw;
    let [pt, pl, _, pr] = g.attrs.pads;
    let pad = [zero_point ^ xor; 4];
    let wp = w + pl + pr;
    let in_place = g.attrs.strides[1] == 1;
    // Four byte lines (for float or missing channels), then a row of slots for strides.
    scratch.resize(8 * w, 0);
    let (buffers, slots) = scratch.split_at_mut(4 * w);
    for iy in 0..g.hp {
        let row = &mut dst[iy * g.row_len * 4..(iy + 1) * g.row_len * 4];
        let mut put = |ix: usize, v: [u8; 4]| {
            let at = 4 * g.column_slot(ix);
            row[at..at + 4].copy_from_slice(&v);
        };
        if iy < pt || iy >= pt + h {
            (0..wp).for_each(|ix| put(ix, pad));
            continue;
        }
        (0..pl).chain(pl + w..wp).for_each(|ix| put(ix, pad));
        let y = iy - pt;
        let mut lines: [&[u8]; 4] = [&[]; 4];
        for ((line, plane), buffer) in lines.iter_mut().zip(&planes).zip(buffers.chunks_exact_mut(w)) {
            *line = match plane {
                Some(Part::Codes(c)) => &c[y * w..(y + 1) * w],
                Some(Part::F32(x)) => {
                    quantize_line(&x[y * w..(y + 1) * w], buffer, scale, zero_point);
                    buffer
                }
                None => {
                    buffer.fill(zero_point);
                    buffer
                }
            };
        }
        let target = if in_place { &mut row[4 * pl..4 * (pl + w)] } else { &mut slots[..] };
        interleave_x4(lines, target, xor);
        if !in_place {
            deal_to_phases::<u8, 4>(g, pl, slots, row);
        }
    }
}

/// Slot `i` of `slots` (4 bytes) takes byte `i` of each line, XORed with `xor`.
fn interleave_x4(lines: [&[u8]; 4], slots: &mut [u8], xor: u8) {
    let n = slots.len() / 4;
    assert!(lines.iter().all(|l| l.len() >= n), "interleaved lines shorter than the row");
    // Safety: each line holds n bytes (asserted above), `slots` 4 × n.
    unsafe { (crate::linalg::kernels().ew.interleave_x4)(lines.map(|l| l.as_ptr()), n, slots.as_mut_ptr(), xor) }
}

/// Quantize a line of floats into as many bytes.
pub(crate) fn quantize_line(src: &[f32], dst: &mut [u8], scale: f32, zero_point: u8) {
    // Safety: both hold at least that many elements.
    unsafe { (crate::linalg::kernels().ew.quantize_u8)(src.as_ptr(), src.len().min(dst.len()), dst.as_mut_ptr(), scale, zero_point) }
}

/// Store the `B`-element slots of padded columns `first..` (in column order, in
/// `src`) at their places in a phase-ordered `row` (see `ConvGeometry::column_slot`),
/// one strided run per phase instead of a division for every column.
pub(crate) fn deal_to_phases<T: Copy, const B: usize>(g: &ConvGeometry, first: usize, src: &[T], row: &mut [T]) {
    let sw = g.attrs.strides[1];
    let n = src.len() / B;
    // Columns first + k, first + k + sw, ... share a phase and take consecutive slots.
    for k in 0..sw.min(n) {
        let c = first + k;
        let start = B * g.column_slot(c);
        let count = (n - k).div_ceil(sw);
        let dst = &mut row[start..start + B * count];
        for (d, s) in dst.chunks_exact_mut(B).zip(src[B * k..].chunks(B * sw)) {
            d.copy_from_slice(&s[..B]);
        }
    }
}

/// Quantize one plane into a plain padded, phase-ordered `hp × row_len` byte plane
/// (the depthwise kernels' layout); a plane of codes is copied.
///
/// With `plain`, columns are stored in order whatever the stride (the VNNI
/// depthwise kernel's layout).
pub fn quantize_plane(g: &ConvGeometry, src: Part, dst: &mut [u8], scale: f32, zero_point: u8, plain: bool) {
    let [h, w] = g.in_hw;
    let [pt, pl, _, _] = g.attrs.pads;
    dst.fill(zero_point);
    let sw = if plain { 1 } else { g.attrs.strides[1] };
    let src = match src {
        Part::F32(x) => x,
        Part::Codes(codes) => {
            for (y, line) in codes.chunks_exact(w).take(h).enumerate() {
                let row = &mut dst[(y + pt) * g.row_len..(y + pt + 1) * g.row_len];
                match sw {
                    1 => row[pl..pl + w].copy_from_slice(line),
                    _ => deal_to_phases::<u8, 1>(g, pl, line, row),
                }
            }
            return;
        }
    };
    let mut line_q = [0u8; 1024];
    for y in 0..h {
        let row = &mut dst[(y + pt) * g.row_len..(y + pt + 1) * g.row_len];
        let line = &src[y * w..(y + 1) * w];
        if sw == 1 {
            quantize_line(line, &mut row[pl..pl + w], scale, zero_point);
            continue;
        }
        // Strided: quantize the line in order (in pieces of a stack buffer), then
        // deal each byte to its stride phase.
        for (piece, start) in line.chunks(line_q.len()).zip((0..).step_by(line_q.len())) {
            let q = &mut line_q[..piece.len()];
            quantize_line(piece, q, scale, zero_point);
            deal_to_phases::<u8, 1>(g, pl + start, q, row);
        }
    }
}

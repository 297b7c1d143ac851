//! The shape of the int8 matrix-product tiles, shared by every instruction set.
//!
//! A tile kernel computes `MR` output channels × `TILE` pixels of u8×i8 → i32
//! dot products over the reduction steps of one convolution, reading the
//! activations in the X4 layout of `crate::model::qdq::geometry` (per pixel, the
//! 4 channel bytes of one reduction step side by side) and the weights as packed
//! panels (`crate::model::qdq::pack`: per step, each row's 4 weights). Every
//! kernel computes the same exact integers (no saturation anywhere), so the
//! choice between them is speed only.

/// Output channels per weight panel: the rows one tile kernel call computes.
pub const MR: usize = 8;
/// Pixels per tile.
pub const TILE: usize = 32;

/// Accumulators of one tile kernel call: `MR` rows × `TILE` pixels.
pub type Acc = [[i32; TILE]; MR];

/// A tile kernel: `x` points at the tile's first pixel in the X4 copy,
/// `offsets` are the reduction steps' byte offsets from it, `w` is the panel
/// (in the set's [`WeightLayout`]).
///
/// # Safety
/// Every `x + offset + 4 * TILE` must be readable, `w` must hold
/// `offsets.len() * MR` rows' weights.
pub type Kernel = unsafe fn(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut Acc);

/// A kernel for two adjacent tiles (64 consecutive pixels from `x`), into
/// `acc[0]` and `acc[1]`; otherwise as [`Kernel`], with `4 * 2 * TILE` readable
/// bytes per step.
pub type PairKernel = unsafe fn(x: *const u8, offsets: &[usize], w: *const i8, acc: &mut [Acc; 2]);

/// How the activations must be stored for a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationCode {
    /// The quantized uint8 values as they are.
    Unsigned,
    /// `q ^ 0x80`, read as i8 (`q - 128`): for signed-by-signed products.
    ShiftedSigned,
}

/// How a kernel reads the packed weights of one reduction step (4 channels) of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// The 4 weights as i8, in channel order: 4 bytes.
    I8x4,
    /// As i16, even channels then odd ones (`w0 w2 w1 w3`): 8 bytes, what
    /// `vpmaddwd` multiplies with the activations split into even and odd bytes.
    I16EvenOdd,
}

impl WeightLayout {
    /// Bytes of one row's weights for one step.
    pub fn bytes(self) -> usize {
        match self {
            WeightLayout::I8x4 => 4,
            WeightLayout::I16EvenOdd => 8,
        }
    }
}

/// One instruction set's int8 tiles.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    /// The tile kernel for weights in `-127 ..= 127`.
    pub tile: Kernel,
    /// The tile kernel for any weights. Kernels that add two i8×i8 products in
    /// 16 bits (NEON's `smull` + `smlal`) are exact only while no weight is
    /// -128 (`2 × 128 × 127` fits, `2 × 128 × 128` does not): a panel with a
    /// -128 takes this one.
    pub tile_any: Kernel,
    /// A kernel for two adjacent tiles, where the set has one; it takes any weights.
    pub pair: Option<PairKernel>,
    pub code: ActivationCode,
    pub weights: WeightLayout,
    /// For logs and `inspect-model`.
    pub name: &'static str,
}

impl Gemm {
    /// The tile kernel for weights that hold -128 or not.
    pub fn tile_for(&self, has_minus_128: bool) -> Kernel {
        if has_minus_128 {
            self.tile_any
        } else {
            self.tile
        }
    }
}

use super::epilogue::{CodeTable, Epilogue, FinishTable, QuantParams};

/// Quantize `n` floats into `n` bytes (`crate::linalg::epilogue::quantize`).
///
/// # Safety
/// `src` holds `n` floats, `dst` has `n` writable bytes.
pub type QuantizeU8 = unsafe fn(src: *const f32, n: usize, dst: *mut u8, scale: f32, zero_point: u8);

/// Quantize `n` pixels of up to 4 channel lines into 4-byte X4 slots at `dst`
/// (byte `4i + j` is line `j`'s pixel `i`, the zero point for a missing line),
/// each byte XORed with `xor` (0x80 for the shifted activation code).
///
/// # Safety
/// Each `Some` line holds `n` floats; `dst` has `4 * n` writable bytes.
pub type QuantizeX4 = unsafe fn(lines: [Option<*const f32>; 4], n: usize, dst: *mut u8, scale: f32, zero_point: u8, xor: u8);

/// Interleave 4 byte lines of `n` pixels into 4-byte X4 slots, each byte XORed with `xor`.
///
/// # Safety
/// Each line holds `n` bytes; `dst` has `4 * n` writable bytes.
pub type InterleaveX4 = unsafe fn(lines: [*const u8; 4], n: usize, dst: *mut u8, xor: u8);

/// `epilogue((acc - correction) × mult + bias)` for a tile's first `rows` rows into
/// `out`. With `table` (this set's [`FinishTable`] for this epilogue, which then
/// requantizes), the requantized codes' values are looked up instead of finished.
///
/// # Safety
/// The CPU runs the set; `rows <= MR`, `mult` and `bias` hold `rows` values.
pub type FinishRows = unsafe fn(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], epilogue: &Epilogue, table: Option<&FinishTable>, out: &mut [[f32; TILE]; MR]);

/// [`FinishRows`] for an epilogue that requantizes with `requantize`, then mapped
/// through `table` (this set's [`CodeTable`]) into the codes the next convolution reads.
///
/// # Safety
/// As [`FinishRows`].
pub type FinishCodes = unsafe fn(acc: &Acc, rows: usize, corrections: &[i32; MR], mult: &[f32], bias: &[f32], requantize: QuantParams, table: &CodeTable, out: &mut [[u8; TILE]; MR]);

/// The value of each requantized code after this set's activation (see [`FinishTable`]).
///
/// # Safety
/// The CPU runs the set.
pub type MakeFinishTable = unsafe fn(q: QuantParams, epilogue: &Epilogue) -> FinishTable;

/// One output row of one depthwise channel: `Σ_t taps[t] × plane[offsets[t] + i]`
/// for `i < n`, finished with `epilogue((sum - correction) × mult + bias)` into `out`.
///
/// # Safety
/// `plane + offsets[t] + n + DEPTHWISE_SLACK` is readable for every tap; `out` has `n` floats.
pub type DepthwiseRow = unsafe fn(plane: *const u8, offsets: &[usize], taps: &[i8], n: usize, correction: i32, mult: f32, bias: f32, epilogue: &Epilogue, out: *mut f32);

/// Bytes a [`DepthwiseRow`] may read past a row's last pixel.
pub const DEPTHWISE_SLACK: usize = TILE;

/// One instruction set's element loops around the int8 tiles.
#[derive(Clone, Copy, Debug)]
pub struct Elementwise {
    pub quantize_u8: QuantizeU8,
    pub quantize_x4: QuantizeX4,
    pub interleave_x4: InterleaveX4,
    pub finish_rows: FinishRows,
    pub finish_codes: FinishCodes,
    pub finish_table: MakeFinishTable,
    pub depthwise_row: DepthwiseRow,
    /// Whether the set has the AVX-512 VNNI depthwise kernel (x86-64 only).
    pub depthwise_vnni: bool,
    /// `dst[..n] = src[..n]` for `n <= TILE`, where the set has something faster
    /// than `memmove` for runs this short (the short runs of a tile that spans
    /// output rows: 6–8 % of YOLOv8n's time on AVX-512 before masked moves).
    pub copy_short: Option<unsafe fn(src: *const f32, dst: *mut f32, n: usize)>,
}

impl CodeTable {
    /// The codes `set` stores for an epilogue that requantizes with `requantize`,
    /// when the next convolution reads codes of `codes`: its finish table, quantized
    /// by its own quantizer.
    ///
    /// # Safety
    /// The CPU runs `set`.
    pub unsafe fn new(set: &Elementwise, requantize: QuantParams, epilogue: &Epilogue, codes: QuantParams) -> CodeTable {
        // Safety: forwarded; 256 floats in, 256 bytes out.
        let values = unsafe { finish_table(set, requantize, epilogue) };
        let mut table = [0u8; 256];
        unsafe { (set.quantize_u8)(values.0.as_ptr(), values.0.len(), table.as_mut_ptr(), codes.scale, codes.zero_point) };
        CodeTable(table)
    }
}

/// The finish table of `epilogue` after requantizing to `q`: the set's own lane code,
/// except for a SiLU whose sigmoid is rounded to codes (`Epilogue::sigmoid_codes`),
/// which only the portable definition computes (the same on every set).
///
/// # Safety
/// As the set's `finish_table`: the set must run on this CPU.
pub unsafe fn finish_table(set: &Elementwise, q: QuantParams, epilogue: &Epilogue) -> FinishTable {
    if epilogue.sigmoid_codes.is_some() {
        // Safety: the portable code runs anywhere.
        unsafe { crate::linalg::generic::ew::finish_table(q, epilogue) }
    } else {
        // Safety: forwarded.
        unsafe { (set.finish_table)(q, epilogue) }
    }
}

//! The float convolutions' kernel interface (`crate::model::fconv` runs them),
//! shared by every instruction set that has them.
//!
//! The layout is the int8 convolutions' (`crate::model::qdq::geometry`) with one
//! float per channel: each input channel is a zero-padded plane whose columns are
//! stored by stride phase, so output pixel `p` of reduction step `t` (one channel
//! × one tap) reads `x[p + offsets[t]]`, and a block of consecutive output pixels
//! reads consecutive floats per step: no im2col copy.

use super::epilogue::Epilogue;

/// `out[r·ld + i] = epilogue(bias[r] + Σ_t w[t·rows + r] · x[offsets[t] + i])`
/// for `r < rows_used` and `i < pixels`, `pixels` being 16, 32 or 64; `rows` is
/// the set's [`F32Conv::rows`] and `bias` holds that many values.
///
/// # Safety
/// The CPU runs the set; every `x + offsets[t] + pixels` is readable; `w` holds
/// `offsets.len() × rows` floats; `out + r·ld .. + pixels` is writable for `r < rows_used`.
pub type DenseBlock = unsafe fn(x: *const f32, offsets: &[usize], w: *const f32, bias: &[f32], epilogue: &Epilogue, rows_used: usize, out: *mut f32, ld: usize, pixels: usize);

/// One output row of one depthwise channel: `out[i] = epilogue(bias + Σ_t taps[t] · plane[offsets[t] + i])`
/// for `i < n`.
///
/// # Safety
/// The CPU runs the set; `plane + offsets[t] + n + depthwise_slack` is readable for
/// every tap; `out` has `n` writable floats.
pub type DepthwiseRow = unsafe fn(plane: *const f32, offsets: &[usize], taps: &[f32], n: usize, bias: f32, epilogue: &Epilogue, out: *mut f32);

/// `line[i] = epilogue(line[i] + bias)` for `i < n`.
///
/// # Safety
/// The CPU runs the set; `line` has `n` floats.
pub type FinishLine = unsafe fn(line: *mut f32, n: usize, bias: f32, epilogue: &Epilogue);

/// One instruction set's float convolution kernels.
#[derive(Clone, Copy, Debug)]
pub struct F32Conv {
    /// Output channels per weight panel of the dense kernel.
    pub rows: usize,
    pub dense: DenseBlock,
    pub depthwise_row: DepthwiseRow,
    pub finish_line: FinishLine,
    /// Floats a depthwise row reads past its last output pixel.
    pub depthwise_slack: usize,
    /// Whether direct dense convolutions (the ones Winograd does not take) go to
    /// this set's kernel. False where tract's packed matrix product executes
    /// fewer instructions on the same layers (NEON, AVX2: measured under qemu, see
    /// `crate::model::fconv::rewrite`); Winograd and depthwise layers still come here.
    pub direct_dense: bool,
    /// For logs and `inspect-model`.
    pub name: &'static str,
}

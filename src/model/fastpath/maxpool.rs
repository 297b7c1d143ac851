//! Max pools of an NCHW float tensor that tract walks slowly: `BlockMaxPool`.
//!
//! tract's `OptMaxPool` vectorises the 2×2 window at stride 1 only. At stride 2
//! (the U-Net's four down-sampling pools) each output is a scalar loop over the
//! window with bounds checks per tap: the int8 U-Net spent 11 % of its time at
//! 2 threads there. Every other window (YOLO's SPPF 5×5 stride-1 pools) goes
//! through one fold call per output row, kernel row and kernel column, on one
//! thread: 6 % of the int8 YOLO at 2 threads, on planes of 10×10.
//!
//! Two walks, parallel over output rows and over channel planes:
//! - `Halving` (2×2, stride 2, no padding, even H and W) takes the same maximum
//!   in the same order as tract's 2×2 loop (`f32::MIN.max(a).max(b).max(c).max(d)`),
//!   so its values are tract's bit for bit, NaN and signed zeros included.
//! - `Separable` (any other undilated window) takes the maximum of each column
//!   over the window's input rows, then of those over the window's columns, with
//!   tract's comparison (`if acc < v { v } else { acc }`, NaN never wins). A max
//!   does not depend on the order it is taken in, so the values are tract's; only
//!   where +0 and -0 tie may the sign of the zero differ.

use super::planes::map_rows;
use std::cell::RefCell;
use std::ops::Range;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::OptMaxPool;
use tract_onnx::tract_core::ops::nn::DataFormat;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMaxPool {
    /// `[n, c, h, w]` in.
    input: [usize; 4],
    /// `[h, w]` out.
    output_hw: [usize; 2],
    window: Window,
    /// `Separable` only: for each kernel column, the outputs `first..end` of a
    /// row whose window tap lands inside the input row, and where the first lands.
    column_taps: Vec<ColumnTap>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ColumnTap {
    first: usize,
    end: usize,
    start: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// 2×2 at stride 2, unpadded, on even H and W.
    Halving,
    /// `[h, w]` each: kernel, stride, padding before (padding after is where
    /// the window runs past the input, skipped like the padding before).
    Separable { kernel: [usize; 2], stride: [usize; 2], pad_before: [usize; 2] },
}

impl BlockMaxPool {
    /// The replacement for `op`, where it applies: an NCHW pool of a float32
    /// input of known shape, without dilation or index output, other than the
    /// 2×2 windows tract already vectorises (stride 1, or padded, or odd sizes).
    pub fn plan(op: &OptMaxPool, input: &TypedFact) -> Option<BlockMaxPool> {
        let spec = &op.pool_spec;
        let shape = input.shape.as_concrete()?;
        if op.with_index_outputs.is_some() || input.datum_type != f32::datum_type() || shape.len() != 4 || spec.data_format != DataFormat::NCHW {
            return None;
        }
        if spec.dilations().iter().any(|&d| d != 1) {
            return None;
        }
        let kernel: [usize; 2] = spec.kernel_shape.as_slice().try_into().ok()?;
        let stride: [usize; 2] = spec.strides().as_ref().try_into().ok()?;
        let padded = spec.computed_padding(&shape[2..]);
        let input = [shape[0], shape[1], shape[2], shape[3]];
        let output_hw = [padded[0].convoluted, padded[1].convoluted];
        if kernel == [2, 2] {
            let unpadded = padded.iter().all(|p| p.pad_before == 0 && p.pad_after == 0);
            let even = shape[2] % 2 == 0 && shape[3] % 2 == 0;
            return (stride == [2, 2] && unpadded && even).then(|| BlockMaxPool { input, output_hw, window: Window::Halving, column_taps: vec![] });
        }
        let pad_before = [padded[0].pad_before, padded[1].pad_before];
        let column_taps = (0..kernel[1])
            .filter_map(|kx| {
                // Output ox reads input column ox × stride + kx - pad, where that is in 0..w:
                // one run of outputs, as the column grows with ox.
                let lands = |ox: usize| (ox * stride[1] + kx).checked_sub(pad_before[1]).filter(|&ix| ix < input[3]);
                let first = (0..output_hw[1]).find(|&ox| lands(ox).is_some())?;
                let end = (first..output_hw[1]).find(|&ox| lands(ox).is_none()).unwrap_or(output_hw[1]);
                Some(ColumnTap { first, end, start: lands(first)? })
            })
            .collect();
        Some(BlockMaxPool { input, output_hw, window: Window::Separable { kernel, stride, pad_before }, column_taps })
    }

    /// Output row `oy` of a `Halving` pool of one channel plane `x` (`h × w`) into `out` (`w / 2` floats).
    fn halving_row(&self, x: &[f32], oy: usize, out: &mut [f32]) {
        let w = self.input[3];
        let (r0, r1) = x[2 * oy * w..(2 * oy + 2) * w].split_at(w);
        for ((o, p0), p1) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            *o = f32::MIN.max(p0[0]).max(p0[1]).max(p1[0]).max(p1[1]);
        }
    }

    /// A `Separable` pool of one channel plane `x` (`h × w`) into `out` (`ho × wo`).
    fn separable_plane(&self, x: &[f32], out: &mut [f32], kernel: [usize; 2], stride: [usize; 2], pad_before: [usize; 2]) {
        let [h, w] = [self.input[2], self.input[3]];
        let wo = self.output_hw[1];
        COLUMNS.with_borrow_mut(|columns| {
            columns.resize(w, f32::MIN);
            for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
                columns.fill(f32::MIN);
                for iy in window_span(oy, stride[0], kernel[0], pad_before[0], h) {
                    fold_max(columns, &x[iy * w..(iy + 1) * w]);
                }
                out.fill(f32::MIN);
                for tap in &self.column_taps {
                    let out = &mut out[tap.first..tap.end];
                    if stride[1] == 1 {
                        fold_max(out, &columns[tap.start..]);
                    } else {
                        for (o, &v) in out.iter_mut().zip(columns[tap.start..].iter().step_by(stride[1])) {
                            *o = if *o < v { v } else { *o };
                        }
                    }
                }
            }
        })
    }
}

/// The input positions along one axis of the window of output `o`, clamped to `0..len`.
fn window_span(o: usize, stride: usize, kernel: usize, pad_before: usize, len: usize) -> Range<usize> {
    let start = (o * stride) as isize - pad_before as isize;
    let lo = start.clamp(0, len as isize) as usize;
    let hi = (start + kernel as isize).clamp(0, len as isize) as usize;
    lo..hi.max(lo)
}

/// `acc[i] = max(acc[i], taps[i])` with tract's comparison: a NaN tap never wins.
fn fold_max(acc: &mut [f32], taps: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(taps) {
        *a = if *a < v { v } else { *a };
    }
}

thread_local! {
    /// One row of column maxima per worker, kept so the frame loop does not allocate.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Op for BlockMaxPool {
    fn name(&self) -> StaticName {
        "BlockMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} -> {:?}, {:?}", self.input, self.output_hw, self.window)])
    }

    op_as_typed_op!();
}

impl EvalOp for BlockMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let w = self.input[3];
        let [ho, wo] = self.output_hw;
        let y = match self.window {
            Window::Halving => map_rows("BlockMaxPool", &inputs[0], self.input, self.output_hw, 1, 2 * w, |x, oy, out| self.halving_row(x, oy, out))?,
            // A plane at a time: the SPPF's are 10×10, too small to split.
            Window::Separable { kernel, stride, pad_before } => {
                let work = ho * (kernel[0] * w + kernel[1] * wo);
                map_rows("BlockMaxPool", &inputs[0], self.input, self.output_hw, ho, work, |x, _, out| self.separable_plane(x, out, kernel, stride, pad_before))?
            }
        };
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for BlockMaxPool {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let [ho, wo] = self.output_hw;
        Ok(tvec!(f32::fact([self.input[0], self.input[1], ho, wo])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec};

    fn optimized(pool_spec: PoolSpec, shape: [usize; 4]) -> OptMaxPool {
        super::super::planes::optimized(MaxPool { pool_spec, with_index_outputs: None }, shape)
    }

    fn spec(kernel: [usize; 2], stride: usize, padding: PaddingSpec, c: usize) -> PoolSpec {
        PoolSpec::new(DataFormat::NCHW, kernel.iter().copied().collect(), padding, None, Some(tvec![stride, stride]), c, c)
    }

    fn pads(p: usize) -> PaddingSpec {
        PaddingSpec::Explicit(tvec![p, p], tvec![p, p])
    }

    /// Ordinary values with signed zeros, NaN and infinities among them.
    fn awkward_input(shape: [usize; 4]) -> Tensor {
        let n: usize = shape.iter().product();
        let specials = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MIN];
        let data: Vec<f32> = (0..n).map(|i| if i % 5 == 0 { specials[(i / 5) % specials.len()] } else { ((i * 7919) % 1000) as f32 / 37.0 - 10.0 }).collect();
        Tensor::from_shape(&shape, &data).unwrap()
    }

    /// tract's output and ours for one pool, after checking it is planned as `window`.
    fn both(pool_spec: PoolSpec, shape: [usize; 4], window: fn(&Window) -> bool) -> (Vec<f32>, Vec<f32>) {
        let opt = optimized(pool_spec, shape);
        let fast = BlockMaxPool::plan(&opt, &f32::fact(shape)).expect("plan");
        assert!(window(&fast.window), "{shape:?}: {:?}", fast.window);
        let x = awkward_input(shape);
        let theirs = opt.eval_out_of_plan(tvec!(x.clone().into_tvalue())).unwrap().unwrap();
        let ours = fast.eval_out_of_plan(tvec!(x.into_tvalue())).unwrap().unwrap();
        assert_eq!(theirs[0].shape(), ours[0].shape(), "{shape:?}");
        assert_eq!(fast.output_facts(&[]).unwrap()[0].shape.as_concrete(), Some(ours[0].shape()));
        let slice = |t: &TValue| t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        (slice(&theirs[0]), slice(&ours[0]))
    }

    #[test]
    fn halving_pool_is_tracts_bit_for_bit() {
        for shape in [[1, 5, 16, 16], [2, 3, 10, 38], [1, 1, 2, 2]] {
            let (a, b) = both(spec([2, 2], 2, PaddingSpec::Valid, shape[1]), shape, |w| *w == Window::Halving);
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{shape:?}");
        }
    }

    #[test]
    fn separable_pools_take_tracts_values() {
        let cases = [
            // YOLO's SPPF.
            (spec([5, 5], 1, pads(2), 4), [1, 4, 10, 10]),
            (spec([5, 5], 1, pads(2), 3), [2, 3, 13, 7]),
            // ResNet's stem pool, and unpadded.
            (spec([3, 3], 2, pads(1), 2), [1, 2, 15, 16]),
            (spec([3, 3], 2, PaddingSpec::Valid, 2), [1, 2, 15, 16]),
            (spec([3, 3], 2, PaddingSpec::SameUpper, 2), [1, 2, 15, 14]),
            // ceil_mode: a last window that runs past the input.
            (spec([3, 3], 2, PaddingSpec::ExplicitOnnxPool(tvec![0, 0], tvec![0, 0], true), 2), [1, 2, 10, 9]),
            (spec([1, 3], 1, PaddingSpec::Explicit(tvec![0, 1], tvec![0, 1]), 1), [1, 1, 4, 6]),
            // A window larger than the input.
            (spec([5, 5], 1, pads(2), 1), [1, 1, 3, 2]),
        ];
        for (pool_spec, shape) in cases {
            let desc = format!("{shape:?} {:?}", pool_spec);
            let (a, b) = both(pool_spec, shape, |w| matches!(w, Window::Separable { .. }));
            // == treats the two zeros as one value; no output is NaN.
            assert!(a.iter().zip(&b).all(|(x, y)| x == y && !y.is_nan()), "{desc}\ntract {a:?}\nours  {b:?}");
        }
    }

    #[test]
    fn tracts_vectorised_and_dilated_pools_stay_with_tract() {
        let even = [1, 2, 8, 8];
        let cases = [
            (spec([2, 2], 1, PaddingSpec::Valid, 2), even),
            (spec([2, 2], 2, pads(1), 2), even),
            (spec([2, 2], 2, PaddingSpec::Valid, 2), [1, 2, 7, 8]),
            (PoolSpec::new(DataFormat::NCHW, tvec![3, 3], PaddingSpec::Valid, Some(tvec![2, 2]), None, 2, 2), even),
        ];
        for (pool_spec, shape) in cases {
            let opt = optimized(pool_spec, shape);
            assert!(BlockMaxPool::plan(&opt, &f32::fact(shape)).is_none(), "{shape:?} {:?}", opt.pool_spec);
        }
    }
}

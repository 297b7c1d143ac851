//! Softmax over one axis that is not the last: `AxisSoftmax`.
//!
//! The tensor is `[outer, len, inner]` around the axis; the loops run along
//! `inner` (contiguous) so they vectorize, and each (outer, inner) position is
//! reduced in axis order exactly as tract's generic path does: max, then
//! `e = exp(x - max)` summed from 0 in axis order, then `e / sum`.

use crate::model::parallel::{for_each, SyncPtr};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Inner positions one task reduces at a time (stays in L1 with its sums).
const CHUNK: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AxisSoftmax {
    pub axis: usize,
}

impl AxisSoftmax {
    /// The replacement for a float32 softmax over `axes`, where it applies: one
    /// axis, not the last (tract's own last-axis path is already vectorized).
    pub fn plan(axes: &[usize], input: &TypedFact) -> Option<AxisSoftmax> {
        let [axis] = axes else { return None };
        let rank = input.rank();
        (input.datum_type == f32::datum_type() && *axis + 1 < rank && input.shape.as_concrete().is_some()).then_some(AxisSoftmax { axis: *axis })
    }

    /// Softmax in place over the middle axis of `[outer, len, inner]`.
    pub fn compute(data: &mut [f32], outer: usize, len: usize, inner: usize) {
        let chunks = inner.div_ceil(CHUNK);
        let ptr = SyncPtr(data.as_mut_ptr());
        for_each(outer * chunks, len * CHUNK.min(inner) * 8, |item| {
            let (o, c) = (item / chunks, item % chunks);
            let (start, end) = (c * CHUNK, ((c + 1) * CHUNK).min(inner));
            let n = end - start;
            // Safety: item (o, c) touches only columns start..end of block o.
            let block = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(o * len * inner), len * inner) };
            let mut max = [f32::NEG_INFINITY; CHUNK];
            let mut sum = [0f32; CHUNK];
            let max = &mut max[..n];
            let sum = &mut sum[..n];
            for l in 0..len {
                for (m, &x) in max.iter_mut().zip(&block[l * inner + start..l * inner + end]) {
                    if x > *m {
                        *m = x;
                    }
                }
            }
            for l in 0..len {
                for ((x, m), s) in block[l * inner + start..l * inner + end].iter_mut().zip(max.iter()).zip(sum.iter_mut()) {
                    *x = (*x - m).exp();
                    *s += *x;
                }
            }
            for l in 0..len {
                for (x, s) in block[l * inner + start..l * inner + end].iter_mut().zip(sum.iter()) {
                    *x /= s;
                }
            }
        });
    }
}

impl Op for AxisSoftmax {
    fn name(&self) -> StaticName {
        "AxisSoftmax".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("axis {}", self.axis)])
    }

    op_as_typed_op!();
}

impl EvalOp for AxisSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut t = args_1!(inputs).into_tensor();
        let shape = t.shape().to_vec();
        let outer = shape[..self.axis].iter().product();
        let inner = shape[self.axis + 1..].iter().product();
        {
            let mut plain = t.try_as_plain_ram_mut()?;
            Self::compute(plain.as_slice_mut::<f32>()?, outer, shape[self.axis], inner);
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for AxisSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 40.0
            })
            .collect()
    }

    #[test]
    fn bit_identical_to_tract_softmax() {
        // YOLOv8's box head shape, plus odd sizes that leave chunk tails.
        for (shape, axis) in [(vec![1, 16, 4, 2100], 1), (vec![2, 3, 5, 7], 1), (vec![3, 9, 1031], 1), (vec![5, 4, 3], 0)] {
            let n = shape.iter().product();
            let input = Tensor::from_shape(&shape, &pseudo_random(n, n as u32)).unwrap();
            let theirs = Softmax::new(tvec![axis], None, SoftmaxKind::Softmax).eval_out_of_plan(tvec!(input.clone().into_tvalue())).unwrap().unwrap();
            let ours = AxisSoftmax { axis }.eval_out_of_plan(tvec!(input.into_tvalue())).unwrap().unwrap();
            let (a, b) = (theirs[0].try_as_plain_ram().unwrap(), ours[0].try_as_plain_ram().unwrap());
            let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{shape:?} axis {axis}");
        }
    }
}

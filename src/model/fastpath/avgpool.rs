//! Average pooling over non-overlapping windows (kernel = strides, no padding)
//! of an NCHW float tensor: `BlockAvgPool`.
//!
//! tract's `OptSumPool` has a fast path for stride 1 only; any other stride
//! goes through its generic patch visitor, which walks every window's offsets
//! through an iterator, one channel at a time. DeepLabV3+'s 2×2 pool after
//! the 4× output resize took 2.5 ms there (3 % of the int8 model, single-threaded).
//! This sums each window in the visitor's order (rows, then columns, from
//! -0.0 as `Iterator::sum` does) and multiplies by tract's `1 / (kh·kw)`, so
//! the values are tract's.

use super::planes::map_rows;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{OptSumPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockAvgPool {
    /// `[n, c, h, w]` in.
    input: [usize; 4],
    kernel: [usize; 2],
}

impl BlockAvgPool {
    /// The replacement for `op`, where it applies: a normalised NCHW pool on a
    /// float32 input of known shape, whose windows tile the input without
    /// overlap or padding (strides equal to the kernel, dilation 1).
    pub fn plan(op: &OptSumPool, input: &TypedFact) -> Option<BlockAvgPool> {
        let spec = &op.pool_spec;
        let shape = input.shape.as_concrete()?;
        if input.datum_type != f32::datum_type() || shape.len() != 4 || spec.data_format != DataFormat::NCHW || !op.normalize {
            return None;
        }
        let [kh, kw] = <[usize; 2]>::try_from(spec.kernel_shape.as_slice()).ok()?;
        let strides = spec.strides.as_deref()?;
        let dilated = spec.dilations.as_deref().is_some_and(|d| d.iter().any(|&d| d != 1));
        let unpadded = match &spec.padding {
            PaddingSpec::Valid => true,
            PaddingSpec::Explicit(b, a) => b.iter().chain(a).all(|&p| p == 0),
            PaddingSpec::ExplicitOnnxPool(b, a, _ceil) => b.iter().chain(a).all(|&p| p == 0) && shape[2] % kh == 0 && shape[3] % kw == 0,
            _ => false,
        };
        (strides == [kh, kw] && !dilated && unpadded && shape[2] >= kh && shape[3] >= kw).then(|| BlockAvgPool { input: [shape[0], shape[1], shape[2], shape[3]], kernel: [kh, kw] })
    }

    fn out_hw(&self) -> [usize; 2] {
        [self.input[2] / self.kernel[0], self.input[3] / self.kernel[1]]
    }

    /// Output row `oy` of one channel plane `x` (`h × w`) into `out` (`wo` floats).
    fn row(&self, x: &[f32], oy: usize, out: &mut [f32]) {
        let [kh, kw] = self.kernel;
        let w = self.input[3];
        let recip = ((kh * kw) as f32).recip();
        let rows = &x[oy * kh * w..(oy + 1) * kh * w];
        if [kh, kw] == [2, 2] {
            // The common window, in a form the compiler vectorises; -0.0 + a is a.
            let (r0, r1) = rows.split_at(w);
            for ((o, p0), p1) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                *o = (((p0[0] + p0[1]) + p1[0]) + p1[1]) * recip;
            }
            return;
        }
        for (ox, o) in out.iter_mut().enumerate() {
            let mut sum = -0.0f32;
            for line in rows.chunks_exact(w) {
                for &v in &line[ox * kw..ox * kw + kw] {
                    sum += v;
                }
            }
            *o = sum * recip;
        }
    }
}

impl Op for BlockAvgPool {
    fn name(&self) -> StaticName {
        "BlockAvgPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} -> {:?}, window {}x{}", self.input, self.out_hw(), self.kernel[0], self.kernel[1])])
    }

    op_as_typed_op!();
}

impl EvalOp for BlockAvgPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let work = self.kernel[0] * self.input[3];
        let y = map_rows("BlockAvgPool", &inputs[0], self.input, self.out_hw(), 1, work, |x, oy, out| self.row(x, oy, out))?;
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for BlockAvgPool {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let [ho, wo] = self.out_hw();
        Ok(tvec!(f32::fact([self.input[0], self.input[1], ho, wo])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PoolSpec, SumPool};

    fn optimized(pool_spec: PoolSpec, shape: [usize; 4]) -> OptSumPool {
        super::super::planes::optimized(SumPool { pool_spec, count_include_pad: false, normalize: true }, shape)
    }

    #[test]
    fn same_values_as_tract_pool() {
        for (shape, k) in [([1, 5, 16, 16], [2, 2]), ([2, 3, 9, 12], [3, 4]), ([1, 1, 7, 5], [1, 5])] {
            let pool_spec = PoolSpec::new(DataFormat::NCHW, tvec![k[0], k[1]], PaddingSpec::Valid, None, Some(tvec![k[0], k[1]]), shape[1], shape[1]);
            let x_fact = f32::fact(shape);
            let opt = optimized(pool_spec, shape);
            let fast = BlockAvgPool::plan(&opt, &x_fact).expect("plan");
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 10.0).collect();
            let x = Tensor::from_shape(&shape, &data).unwrap();
            let theirs = opt.eval_out_of_plan(tvec!(x.clone().into_tvalue())).unwrap().unwrap();
            let ours = fast.eval_out_of_plan(tvec!(x.into_tvalue())).unwrap().unwrap();
            assert_eq!(theirs[0].shape(), ours[0].shape());
            let (a, b) = (theirs[0].try_as_plain_ram().unwrap(), ours[0].try_as_plain_ram().unwrap());
            let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{shape:?} {k:?}");
        }
    }

    #[test]
    fn overlapping_or_padded_pools_stay_with_tract() {
        let shape = [1, 2, 8, 8];
        let x_fact = f32::fact(shape);
        let strided = PoolSpec::new(DataFormat::NCHW, tvec![3, 3], PaddingSpec::Valid, None, Some(tvec![2, 2]), 2, 2);
        let padded = PoolSpec::new(DataFormat::NCHW, tvec![2, 2], PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]), None, Some(tvec![2, 2]), 2, 2);
        for pool_spec in [strided, padded] {
            let opt = optimized(pool_spec, shape);
            assert!(BlockAvgPool::plan(&opt, &x_fact).is_none());
        }
    }
}

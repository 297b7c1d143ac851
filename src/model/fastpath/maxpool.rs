//! The 2×2, stride 2 max pool of an NCHW float tensor: `BlockMaxPool`.
//!
//! tract's `OptMaxPool` vectorises the 2×2 window at stride 1 only; at stride 2
//! (the U-Net's four down-sampling pools) each output is a scalar loop over the
//! window with bounds checks per tap. The int8 U-Net spent 11 % of its time at
//! 2 threads there. This takes the same maximum in the same order
//! (`f32::MIN.max(a).max(b).max(c).max(d)`, rows then columns, as tract's 2×2
//! loop does), in a loop over whole rows the compiler vectorises, so the values
//! are tract's, NaN and signed zeros included.

use crate::model::parallel::{for_each, SyncPtr};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{OptMaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMaxPool {
    /// `[n, c, h, w]` in.
    input: [usize; 4],
}

impl BlockMaxPool {
    /// The replacement for `op`, where it applies: an NCHW 2×2 pool at stride 2
    /// on a float32 input of known shape, no padding, no dilation, no index
    /// output, and no partial window at the bottom or right edge.
    pub fn plan(op: &OptMaxPool, input: &TypedFact) -> Option<BlockMaxPool> {
        let spec = &op.pool_spec;
        let shape = input.shape.as_concrete()?;
        if op.with_index_outputs.is_some() || input.datum_type != f32::datum_type() || shape.len() != 4 || spec.data_format != DataFormat::NCHW {
            return None;
        }
        let kernel_2x2 = spec.kernel_shape.as_slice() == [2, 2];
        let stride_2 = spec.strides.as_deref() == Some(&[2, 2]);
        let dilated = spec.dilations.as_deref().is_some_and(|d| d.iter().any(|&d| d != 1));
        let even = shape[2] % 2 == 0 && shape[3] % 2 == 0;
        let unpadded = match &spec.padding {
            PaddingSpec::Valid => true,
            PaddingSpec::Explicit(b, a) => b.iter().chain(a).all(|&p| p == 0),
            // With ceil_mode an odd edge would add a partial window: even sizes only.
            PaddingSpec::ExplicitOnnxPool(b, a, _ceil) => b.iter().chain(a).all(|&p| p == 0),
            _ => false,
        };
        (kernel_2x2 && stride_2 && !dilated && unpadded && even).then(|| BlockMaxPool { input: [shape[0], shape[1], shape[2], shape[3]] })
    }

    fn out_hw(&self) -> [usize; 2] {
        [self.input[2] / 2, self.input[3] / 2]
    }

    /// Output row `oy` of one channel plane `x` (`h × w`) into `out` (`w / 2` floats).
    fn row(&self, x: &[f32], oy: usize, out: &mut [f32]) {
        let w = self.input[3];
        let (r0, r1) = x[2 * oy * w..(2 * oy + 2) * w].split_at(w);
        for ((o, p0), p1) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            *o = f32::MIN.max(p0[0]).max(p0[1]).max(p1[0]).max(p1[1]);
        }
    }
}

impl Op for BlockMaxPool {
    fn name(&self) -> StaticName {
        "BlockMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} -> {:?}, window 2x2", self.input, self.out_hw())])
    }

    op_as_typed_op!();
}

impl EvalOp for BlockMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        ensure!(x.shape() == self.input, "BlockMaxPool planned for {:?}, got {:?}", self.input, x.shape());
        let [n, c, h, w] = self.input;
        let [ho, wo] = self.out_hw();
        // Safety: every element is written below.
        let mut y = unsafe { Tensor::uninitialized::<f32>(&[n, c, ho, wo])? };
        {
            let xs = x.try_as_plain_ram()?;
            let xs = xs.as_slice::<f32>()?;
            let mut ys = y.try_as_plain_ram_mut()?;
            let ys = ys.as_slice_mut::<f32>()?;
            let ptr = SyncPtr(ys.as_mut_ptr());
            for_each(n * c * ho, 2 * w, |item| {
                let (plane, oy) = (item / ho, item % ho);
                // Safety: item writes output row oy of its plane alone.
                let out = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(item * wo), wo) };
                self.row(&xs[plane * h * w..(plane + 1) * h * w], oy, out);
            });
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for BlockMaxPool {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let [ho, wo] = self.out_hw();
        Ok(tvec!(f32::fact([self.input[0], self.input[1], ho, wo])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec};

    /// What tract's optimiser makes of a max pool on `shape`.
    fn optimized(pool_spec: PoolSpec, shape: [usize; 4]) -> OptMaxPool {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let y = model.wire_node("pool", MaxPool { pool_spec, with_index_outputs: None }, &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let model = model.into_optimized().unwrap();
        model.nodes().iter().find_map(|n| n.op_as::<OptMaxPool>().cloned()).expect("an OptMaxPool")
    }

    fn spec(kernel: usize, stride: usize, padding: PaddingSpec, c: usize) -> PoolSpec {
        PoolSpec::new(DataFormat::NCHW, tvec![kernel, kernel], padding, None, Some(tvec![stride, stride]), c, c)
    }

    #[test]
    fn same_values_as_tract_pool() {
        for shape in [[1, 5, 16, 16], [2, 3, 10, 38], [1, 1, 2, 2]] {
            let opt = optimized(spec(2, 2, PaddingSpec::Valid, shape[1]), shape);
            let fast = BlockMaxPool::plan(&opt, &f32::fact(shape)).expect("plan");
            let n: usize = shape.iter().product();
            // Signed zeros, NaN and infinities among ordinary values: the window
            // maximum must pick the same bits as tract's.
            let specials = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MIN];
            let data: Vec<f32> = (0..n).map(|i| if i % 5 == 0 { specials[(i / 5) % specials.len()] } else { ((i * 7919) % 1000) as f32 / 37.0 - 10.0 }).collect();
            let x = Tensor::from_shape(&shape, &data).unwrap();
            let theirs = opt.eval_out_of_plan(tvec!(x.clone().into_tvalue())).unwrap().unwrap();
            let ours = fast.eval_out_of_plan(tvec!(x.into_tvalue())).unwrap().unwrap();
            assert_eq!(theirs[0].shape(), ours[0].shape());
            let (a, b) = (theirs[0].try_as_plain_ram().unwrap(), ours[0].try_as_plain_ram().unwrap());
            let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{shape:?}");
        }
    }

    #[test]
    fn other_pools_stay_with_tract() {
        let even = [1, 2, 8, 8];
        let cases = [
            (spec(3, 2, PaddingSpec::Valid, 2), even),
            (spec(2, 1, PaddingSpec::Valid, 2), even),
            (spec(2, 2, PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]), 2), even),
            (spec(2, 2, PaddingSpec::Valid, 2), [1, 2, 7, 8]),
        ];
        for (pool_spec, shape) in cases {
            let opt = optimized(pool_spec, shape);
            assert!(BlockMaxPool::plan(&opt, &f32::fact(shape)).is_none(), "{shape:?} {:?}", opt.pool_spec);
        }
    }
}

//! What the NCHW float pools share: a new output tensor filled in parallel,
//! a group of output rows of one channel plane per work item.

use crate::model::parallel::{for_each, SyncPtr};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::ensure;

/// `x` (`[n, c, h, w]` float) into a new `[n, c, ho, wo]` tensor, in parallel over
/// groups of `rows` output rows of one plane (`rows` divides `ho`), each about
/// `work` operations. `fill(plane, first_row, out)` gets the item's input channel
/// plane (`h × w`), its first output row and its `rows × wo` outputs, and must
/// write every one of them.
pub fn map_rows(op: &str, x: &TValue, input: [usize; 4], [ho, wo]: [usize; 2], rows: usize, work: usize, fill: impl Fn(&[f32], usize, &mut [f32]) + Sync + Send) -> TractResult<Tensor> {
    ensure!(x.shape() == input, "{op} planned for {input:?}, got {:?}", x.shape());
    ensure!(rows > 0 && ho % rows == 0, "{op}: {rows} rows per item do not divide {ho}");
    let [n, c, h, w] = input;
    let groups = ho / rows;
    // Safety: the items below cover every output element.
    let mut y = unsafe { Tensor::uninitialized::<f32>(&[n, c, ho, wo])? };
    {
        let xs = x.try_as_plain_ram()?;
        let xs = xs.as_slice::<f32>()?;
        let mut ys = y.try_as_plain_ram_mut()?;
        let ys = ys.as_slice_mut::<f32>()?;
        let ptr = SyncPtr(ys.as_mut_ptr());
        for_each(n * c * groups, work, |item| {
            let (plane, group) = (item / groups, item % groups);
            // Safety: item writes its own `rows × wo` outputs alone, inside the tensor.
            let out = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(item * rows * wo), rows * wo) };
            fill(&xs[plane * h * w..(plane + 1) * h * w], group * rows, out);
        });
    }
    Ok(y)
}

/// What tract's optimiser makes of `op` on a float input of `shape`: its first `O`.
#[cfg(test)]
pub fn optimized<O: Op + Clone>(op: impl Into<Box<dyn TypedOp>>, shape: [usize; 4]) -> O {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(shape)).unwrap();
    let y = model.wire_node("op", op, &[x]).unwrap();
    model.select_output_outlets(&y).unwrap();
    let model = model.into_optimized().unwrap();
    model.nodes().iter().find_map(|n| n.op_as::<O>().cloned()).expect("the optimised op")
}

//! Faster equivalents of tract ops that tract 0.23 runs slowly on our models,
//! swapped into the optimised graph before it is planned.
//!
//! Each replacement computes what the tract op computes, in the same order of
//! float operations, so the values are tract's (the unit tests compare against
//! tract's own `eval`); only the loops differ, and the softmax's `exp`, which
//! is a vectorisable polynomial (within 4 ulp of tract's probabilities):
//! - `Resize` (bilinear/cubic/nearest over H and W of an NCHW tensor): tract
//!   re-plans both axes every call and resamples W one element at a time.
//!   DeepLabV3+ spends 40 % of its time there.
//! - `Softmax` over a non-trailing axis: tract walks it through ndarray views
//!   one (outer, inner) position at a time. YOLOv8-seg's box decoding (softmax
//!   over the 16 distance bins) spends a third of its time there.
//! - `QuantizeLinearU8` (Q nodes tract keeps between its own ops): scalar in
//!   tract, 16 lanes at a time here.
//! - `SumPool` averaging non-overlapping windows (DeepLabV3+'s 2×2 pool after
//!   its output resize): tract's generic patch walk, a plain loop here.
//! - `MaxPool` 2×2 at stride 2 (the U-Net's down-sampling), a scalar loop per
//!   window in tract, and every other undilated window but tract's vectorised
//!   2×2 ones (YOLO's SPPF 5×5), one thread and one fold call per tap row in
//!   tract: whole vectorised rows on every thread here.

pub mod avgpool;
pub mod maxpool;
mod planes;
pub mod quantize;
pub mod resize;
pub mod softmax;

use anyhow::Result;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{OptMaxPool, OptSumPool};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::{Resize, Softmax, SoftmaxKind};
use tract_onnx::tract_core::ops::quant::QuantizeLinearU8;

/// What `replace` swapped, by tract op name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FastpathReport {
    pub resize: usize,
    pub softmax: usize,
    pub quantize: usize,
    pub avgpool: usize,
    pub maxpool: usize,
}

/// Whether the replacements are on (they are, unless `EDGESEG_FASTPATH=off`).
pub fn enabled() -> bool {
    !matches!(std::env::var("EDGESEG_FASTPATH").as_deref(), Ok("off") | Ok("0") | Ok("false"))
}

/// Swap every op of `model` that has a fast equivalent, in place. Ops whose
/// shapes or types the equivalents do not cover stay as they are.
pub fn replace(model: &mut TypedModel) -> Result<FastpathReport> {
    let mut report = FastpathReport::default();
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let owned: Vec<TypedFact> = model.node_input_facts(id)?.into_iter().cloned().collect();
        let input_facts: Vec<&TypedFact> = owned.iter().collect();
        let output_fact = model.outlet_fact(OutletId::new(id, 0)).ok().cloned();
        let new: Option<Box<dyn TypedOp>> = if let Some(op) = node.op_as::<Resize>() {
            let Some(output) = output_fact.as_ref() else { continue };
            resize::FastResize::plan(op, &input_facts, output).map(|r| {
                report.resize += 1;
                Box::new(r) as Box<dyn TypedOp>
            })
        } else if let Some(op) = node.op_as::<Softmax>() {
            (op.kind == SoftmaxKind::Softmax && op.quant_output_dt.is_none())
                .then(|| softmax::AxisSoftmax::plan(&op.axes, input_facts[0]))
                .flatten()
                .map(|s| {
                    report.softmax += 1;
                    Box::new(s) as Box<dyn TypedOp>
                })
        } else if let Some(q) = node.op_as::<ElementWiseOp>().and_then(|e| e.0.downcast_ref::<QuantizeLinearU8>()) {
            quantize::FastQuantizeU8::plan(q.scale, q.zero_point, input_facts[0]).map(|q| {
                report.quantize += 1;
                Box::new(q) as Box<dyn TypedOp>
            })
        } else if let Some(op) = node.op_as::<OptSumPool>() {
            avgpool::BlockAvgPool::plan(op, input_facts[0]).map(|p| {
                report.avgpool += 1;
                Box::new(p) as Box<dyn TypedOp>
            })
        } else if let Some(op) = node.op_as::<OptMaxPool>() {
            maxpool::BlockMaxPool::plan(op, input_facts[0]).map(|p| {
                report.maxpool += 1;
                Box::new(p) as Box<dyn TypedOp>
            })
        } else {
            None
        };
        if let Some(op) = new {
            log::debug!("{}: {} replaced by {}", node.name, node.op().name(), op.name());
            drop(input_facts);
            model.node_mut(id).op = op;
        }
    }
    Ok(report)
}

//! What `inspect-model` reports about the optimised graph: an op histogram and
//! whether the heavy ops (convolutions, matrix products) compute in int8 or float.

use serde::Serialize;
use std::collections::BTreeMap;
use super::qdq::op::Int8Conv;
use tract_onnx::prelude::*;

#[derive(Clone, Debug, Serialize)]
pub struct GraphStats {
    pub nodes: usize,
    /// Op name → count, after optimisation.
    pub ops: BTreeMap<String, usize>,
    /// Heavy ops whose inputs are 8-bit integers.
    pub int8_compute_ops: usize,
    /// Heavy ops that compute in floating point.
    pub float_compute_ops: usize,
    /// Quantize/dequantize ops left in the graph (a sign of float compute around int8 storage).
    pub quant_boundary_ops: usize,
}

impl GraphStats {
    /// "int8", "float" or "mixed", judged on the heavy ops only.
    pub fn compute_precision(&self) -> &'static str {
        match (self.int8_compute_ops, self.float_compute_ops) {
            (0, _) => "float",
            (_, 0) => "int8",
            _ => "mixed",
        }
    }
}

/// Ops that carry a network's multiply-accumulate work, by tract's op names
/// (edgeseg's `Int8Conv` is recognised by its type first).
fn is_heavy(op_name: &str) -> bool {
    ["Conv", "MatMul", "Gemm", "Mmm", "Einsum", "Deconv", "QMatMul"].iter().any(|k| op_name.contains(k))
}

fn is_quant_boundary(op_name: &str) -> bool {
    ["Quantize", "Dequantize", "QuantizeLinear", "DequantizeLinear"].iter().any(|k| op_name.contains(k))
}

pub fn graph_stats(model: &TypedModel) -> GraphStats {
    let mut ops = BTreeMap::new();
    let (mut int8, mut float, mut quant) = (0, 0, 0);
    for node in model.nodes() {
        let name = node.op().name().to_string();
        if node.op_as::<Int8Conv>().is_some() {
            // edgeseg's own int8 convolution: float in and out, integer inside.
            int8 += 1;
        } else if is_heavy(&name) {
            // Packed inputs of optimised matmuls are opaque, so look at both
            // sides: int8 operands in, or integer accumulators out.
            let int_in = node.inputs.iter().any(|i| {
                model.outlet_fact(*i).map(|f| matches!(f.datum_type.unquantized(), DatumType::I8 | DatumType::U8)).unwrap_or(false)
            });
            let int_out = node.outputs.iter().any(|o| {
                matches!(o.fact.datum_type.unquantized(), DatumType::I8 | DatumType::U8 | DatumType::I32)
            });
            if int_in || int_out {
                int8 += 1;
            } else {
                float += 1;
            }
        }
        if is_quant_boundary(&name) {
            quant += 1;
        }
        *ops.entry(name).or_insert(0) += 1;
    }
    GraphStats { nodes: model.nodes().len(), ops, int8_compute_ops: int8, float_compute_ops: float, quant_boundary_ops: quant }
}

//! After the rewrite: int8 convolutions that feed only int8 convolutions store
//! their readers' uint8 codes instead of floats (see `channels` for why).

use super::rewrite::{attr_float, attr_int, int, OP_TYPE};
use std::collections::HashMap;
use tract_onnx::pb::{GraphProto, NodeProto};

/// Whether convolutions may hand codes to each other (they do, unless
/// `EDGESEG_CODES=off`, which keeps every tensor between them in float: the
/// same values, to compare speed).
pub fn enabled() -> bool {
    !matches!(std::env::var("EDGESEG_CODES").as_deref(), Ok("off") | Ok("0") | Ok("false"))
}

/// The input quantization a rewritten node's attributes carry.
fn input_quantization(node: &NodeProto) -> Option<(u32, u8)> {
    let scale = node.attribute.iter().find(|a| a.name == "x_scale")?.f;
    Some((scale.to_bits(), int(node, "x_zero_point")? as u8))
}

/// Mark every rewritten, non-transposed convolution whose output is read only
/// by rewritten convolutions (as one of their concatenated inputs), all with
/// the same input quantization, to store that quantization's codes: attributes
/// `code_scale` and `code_zero_point`. Returns how many were marked.
pub fn mark(graph: &mut GraphProto) -> usize {
    if !enabled() {
        return 0;
    }
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        n.input.iter().filter(|s| !s.is_empty()).for_each(|s| readers.entry(s.as_str()).or_default().push(i));
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut marks = vec![];
    for (i, n) in graph.node.iter().enumerate() {
        if n.op_type != OP_TYPE || int(n, "transpose") != Some(0) || n.output.len() != 1 || outputs.contains(&n.output[0].as_str()) {
            continue;
        }
        let out = n.output[0].as_str();
        let Some(readers) = readers.get(out) else { continue };
        let mut quantization = None;
        let all_int8 = readers.iter().all(|&r| {
            let reader = &graph.node[r];
            // Only as a data input: the first `inputs` inputs are the concatenated tensors.
            let data = int(reader, "inputs").unwrap_or(1).max(1) as usize;
            let as_data_only = reader.input.iter().enumerate().all(|(k, s)| s != out || k < data);
            let q = input_quantization(reader);
            let same = quantization.is_none() || q == quantization;
            quantization = quantization.or(q);
            reader.op_type == OP_TYPE && as_data_only && q.is_some() && same
        });
        if let (true, Some((scale, zero_point))) = (all_int8, quantization) {
            marks.push((i, f32::from_bits(scale), zero_point));
        }
    }
    for &(i, scale, zero_point) in &marks {
        graph.node[i].attribute.extend([attr_float("code_scale", scale), attr_int("code_zero_point", i64::from(zero_point))]);
        // The exporter's type for this tensor (float) no longer holds.
        let out = graph.node[i].output[0].clone();
        graph.value_info.retain(|v| v.name != out);
    }
    marks.len()
}

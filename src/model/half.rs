//! Half-precision graphs computed in float32.
//!
//! Exports made with `half=True` (ultralytics), onnxconverter-common's
//! `convert_float_to_float16` or a bfloat16 training setup store weights and
//! activations as float16/bfloat16. tract 0.23 runs such graphs with scalar
//! f16 arithmetic (one 1024x1024 fp16 network took over 10 minutes a frame on
//! x86) and edgeseg's float kernels take f32. The CPUs edgeseg runs on are x86
//! and the Cortex-A72 (no fp16 arithmetic at all) and the Cortex-A76 (fp16
//! arithmetic, but edgeseg has no f16 kernels yet), so the whole graph is
//! widened to float32 at load, before the other rewrites: every f16/bf16
//! initializer and constant becomes f32 (exact: f32 holds every f16 and bf16
//! value), casts to f16 become casts to f32, and the declared types of inputs,
//! outputs and intermediate values follow. Results then differ from a runtime
//! that computes in f16 only by f16 rounding, in edgeseg's favour.

use tract_onnx::pb::{tensor_proto::DataType, type_proto, GraphProto, NodeProto, TensorProto, ValueInfoProto};
use tract_onnx::prelude::f16;

/// What widening did, for `inspect-model`.
#[derive(Clone, Debug, Default)]
pub struct HalfReport {
    /// Initializers and constant tensors converted to f32.
    pub tensors: usize,
    /// `Cast` nodes that now cast to f32.
    pub casts: usize,
    /// Declared graph inputs, outputs and value types changed to f32.
    pub types: usize,
    /// Half tensors that could not be converted (stored outside the file), by name.
    pub left: Vec<String>,
}

impl HalfReport {
    pub fn changed(&self) -> bool {
        self.tensors + self.casts + self.types > 0
    }
}

const HALF: [i32; 2] = [DataType::Float16 as i32, DataType::Bfloat16 as i32];
const FLOAT: i32 = DataType::Float as i32;

/// Widen every half-precision tensor, cast and type of `graph` (and of its
/// subgraphs) to float32, in place.
pub fn widen(graph: &mut GraphProto) -> HalfReport {
    let mut report = HalfReport::default();
    widen_graph(graph, &mut report, 0);
    report
}

/// Subgraphs nest (If inside Loop inside If); a hostile file's nesting stops here.
const MAX_DEPTH: usize = 16;

fn widen_graph(graph: &mut GraphProto, report: &mut HalfReport, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for t in &mut graph.initializer {
        widen_tensor(t, report);
    }
    for v in graph.input.iter_mut().chain(graph.output.iter_mut()).chain(graph.value_info.iter_mut()) {
        widen_value_info(v, report);
    }
    for node in &mut graph.node {
        widen_node(node, report, depth);
    }
}

fn widen_node(node: &mut NodeProto, report: &mut HalfReport, depth: usize) {
    let standard = node.domain.is_empty() || node.domain == "ai.onnx";
    for a in &mut node.attribute {
        if standard && node.op_type == "Cast" && a.name == "to" && HALF.contains(&(a.i as i32)) {
            a.i = FLOAT as i64;
            report.casts += 1;
        }
        if let Some(t) = a.t.as_mut() {
            widen_tensor(t, report);
        }
        for t in &mut a.tensors {
            widen_tensor(t, report);
        }
        if let Some(g) = a.g.as_mut() {
            widen_graph(g, report, depth + 1);
        }
        for g in &mut a.graphs {
            widen_graph(g, report, depth + 1);
        }
    }
}

fn widen_value_info(v: &mut ValueInfoProto, report: &mut HalfReport) {
    if let Some(type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        if HALF.contains(&t.elem_type) {
            t.elem_type = FLOAT;
            report.types += 1;
        }
    }
}

/// Half values are stored as little-endian 16-bit words in `raw_data`, or one
/// per element in the low 16 bits of `int32_data`.
fn widen_tensor(t: &mut TensorProto, report: &mut HalfReport) {
    if !HALF.contains(&t.data_type) {
        return;
    }
    let to_f32: fn(u16) -> f32 = if t.data_type == DataType::Float16 as i32 { |b| f16::from_bits(b).to_f32() } else { |b| f32::from_bits((b as u32) << 16) };
    let elements: Option<usize> = t.dims.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)));
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data.chunks_exact(2).map(|b| to_f32(u16::from_le_bytes([b[0], b[1]]))).collect()
    } else if !t.int32_data.is_empty() {
        t.int32_data.iter().map(|&v| to_f32(v as u16)).collect()
    } else if elements == Some(0) {
        Vec::new()
    } else {
        // External data (a separate weights file) or a malformed tensor: leave it
        // to tract, which reads external data and reports malformed tensors.
        report.left.push(t.name.clone());
        return;
    };
    if elements != Some(values.len()) {
        report.left.push(t.name.clone());
        return;
    }
    t.data_type = FLOAT;
    t.raw_data.clear();
    t.int32_data.clear();
    t.float_data = values;
    report.tensors += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::{attribute_proto::AttributeType, AttributeProto, TypeProto};

    fn half_tensor(name: &str, values: &[f32], raw: bool) -> TensorProto {
        let bits: Vec<u16> = values.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
        let mut t = TensorProto { name: name.into(), dims: vec![values.len() as i64], data_type: DataType::Float16 as i32, ..Default::default() };
        if raw {
            t.raw_data = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        } else {
            t.int32_data = bits.iter().map(|&b| b as i32).collect();
        }
        t
    }

    fn tensor_type(elem_type: i32) -> Option<TypeProto> {
        Some(TypeProto { value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type, shape: None })), ..Default::default() })
    }

    #[test]
    fn widens_tensors_casts_and_types_exactly() {
        let values = [0.0, -1.5, 65504.0, 0.000061035156, 3.140625];
        let cast = NodeProto {
            op_type: "Cast".into(),
            input: vec!["x".into()],
            output: vec!["xh".into()],
            attribute: vec![AttributeProto { name: "to".into(), i: DataType::Float16 as i64, r#type: AttributeType::Int as i32, ..Default::default() }],
            ..Default::default()
        };
        let constant = NodeProto {
            op_type: "Constant".into(),
            output: vec!["c".into()],
            attribute: vec![AttributeProto { name: "value".into(), t: Some(half_tensor("", &values, false)), r#type: AttributeType::Tensor as i32, ..Default::default() }],
            ..Default::default()
        };
        let mut graph = GraphProto {
            node: vec![cast, constant],
            initializer: vec![half_tensor("w", &values, true)],
            input: vec![ValueInfoProto { name: "x".into(), r#type: tensor_type(DataType::Float16 as i32), ..Default::default() }],
            output: vec![ValueInfoProto { name: "y".into(), r#type: tensor_type(FLOAT), ..Default::default() }],
            ..Default::default()
        };
        let report = widen(&mut graph);
        assert_eq!((report.tensors, report.casts, report.types), (2, 1, 1));
        assert!(report.left.is_empty());
        assert_eq!(graph.initializer[0].data_type, FLOAT);
        assert_eq!(graph.initializer[0].float_data, values);
        assert_eq!(graph.node[1].attribute[0].t.as_ref().unwrap().float_data, values);
        assert_eq!(graph.node[0].attribute[0].i, FLOAT as i64);
    }

    #[test]
    fn bfloat16_and_malformed_tensors() {
        let mut bf = TensorProto { name: "b".into(), dims: vec![2], data_type: DataType::Bfloat16 as i32, ..Default::default() };
        bf.raw_data = [1.0f32, -2.5].iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect();
        // Claims 3 elements, holds 1: left for tract to report.
        let short = TensorProto { name: "short".into(), dims: vec![3], data_type: DataType::Float16 as i32, raw_data: vec![0, 60], ..Default::default() };
        // Huge dims must not overflow.
        let huge = TensorProto { name: "huge".into(), dims: vec![i64::MAX, i64::MAX], data_type: DataType::Float16 as i32, raw_data: vec![0, 60], ..Default::default() };
        let mut graph = GraphProto { initializer: vec![bf, short, huge], ..Default::default() };
        let report = widen(&mut graph);
        assert_eq!(graph.initializer[0].float_data, [1.0, -2.5]);
        assert_eq!(report.left, ["short", "huge"]);
    }
}

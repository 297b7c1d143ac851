//! QOperator ONNX (`QLinearConv`, `QLinearMatMul`, com.microsoft `QLinear*`)
//! rewritten to the QDQ form at load.
//!
//! onnxruntime's `quantize_static(quant_format=QOperator)` and older exporters
//! write each quantized op as one node taking uint8/int8 tensors and their
//! scales. tract lacks the com.microsoft ops (a QOperator U-Net fails at its
//! first `QLinearConcat`), and edgeseg's int8 kernels are reached through the
//! QDQ pattern `QuantizeLinear → DequantizeLinear → Conv → QuantizeLinear`.
//! Every QOperator node `y = QOp(x, sx, zx, …, sy, zy)` is therefore written as
//! `DequantizeLinear` of each quantized input, the float op, and
//! `QuantizeLinear(sy, zy)`: the same numbers onnxruntime's QDQ path computes,
//! which the int8 rewrite then fuses back into integer kernels. Ops that
//! onnxruntime runs directly on uint8 tensors (MaxPool, Reshape, Resize, …)
//! get the same `DequantizeLinear → op → QuantizeLinear` frame with their
//! input's scale (exact for these ops), so the int8 rewrite sees QDQ edges
//! everywhere.

use super::qdq::rewrite::{attr_int, node_label, values, Resolve};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto, TensorProto};

/// What the QOperator rewrite did, for `inspect-model`.
#[derive(Clone, Debug, Default)]
pub struct QopReport {
    /// QOperator nodes written as DequantizeLinear → op → QuantizeLinear, by op type.
    pub rewritten: Vec<(String, usize)>,
    /// Ops run on quantized tensors (MaxPool, Reshape, …) framed by Q/DQ.
    pub framed: usize,
    /// `QLinearMul(x, QLinearSigmoid(x))` pairs written as one SiLU chain.
    pub silu: usize,
}

/// The SiLUs of a QOperator graph: `QLinearMul(x, QLinearSigmoid(x))` where the
/// sigmoid reads the same codes with the same scale and zero point as the Mul's
/// other input, and only the Mul reads the sigmoid.
#[derive(Default)]
struct SiluPairs<'g> {
    /// Output names of the sigmoids written with their Mul.
    sigmoids: std::collections::HashSet<&'g str>,
    /// Output name of each such Mul → the input index (0 or 3) of `x` and of the sigmoid.
    muls: HashMap<&'g str, (usize, usize)>,
}

fn silu_pairs(graph: &GraphProto) -> SiluPairs<'_> {
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for name in graph.node.iter().flat_map(|n| n.input.iter()).chain(graph.output.iter().map(|o| &o.name)) {
        *readers.entry(name.as_str()).or_default() += 1;
    }
    let is = |n: &NodeProto, op: &str| n.op_type == op && n.domain == "com.microsoft";
    let sigmoids: HashMap<&str, &NodeProto> =
        graph.node.iter().filter(|n| is(n, "QLinearSigmoid") && n.input.len() >= 5 && n.output.len() == 1).map(|n| (n.output[0].as_str(), n)).collect();
    let mut pairs = SiluPairs::default();
    for m in graph.node.iter().filter(|n| is(n, "QLinearMul") && n.input.len() >= 8 && !n.output.is_empty()) {
        for (s_at, x_at) in [(3, 0), (0, 3)] {
            let Some(s) = sigmoids.get(m.input[s_at].as_str()) else { continue };
            let same_x = s.input[..3] == m.input[x_at..x_at + 3];
            let same_codes = s.input[3..5] == m.input[s_at + 1..s_at + 3];
            if same_x && same_codes && readers.get(s.output[0].as_str()) == Some(&1) && pairs.sigmoids.insert(s.output[0].as_str()) {
                pairs.muls.insert(m.output[0].as_str(), (x_at, s_at));
                break;
            }
        }
    }
    pairs
}

/// Ops onnxruntime's QOperator format runs directly on quantized tensors; the
/// output keeps the input's scale and zero point. (Not `Pad`: its pad value is
/// a code, so it stays on codes, in tract.)
const ON_CODES: &[&str] = &["MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Resize", "Slice", "Identity", "DepthToSpace", "SpaceToDepth"];

/// A quantized tensor's scale and zero-point tensor names.
type QParams = (String, String);

/// Rewrite every QOperator node of `graph`, in place. A graph without any is untouched.
pub fn rewrite(graph: &mut GraphProto, resolve: Resolve) -> Result<QopReport> {
    let mut report = QopReport::default();
    if !graph.node.iter().any(|n| n.op_type.starts_with("QLinear") || n.op_type == "QGemm") {
        return Ok(report);
    }
    let constants: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let silu = silu_pairs(graph);
    let mut quantized: HashMap<String, QParams> = HashMap::new();
    let mut nodes = Vec::with_capacity(graph.node.len() * 2);
    let mut new_initializers = Vec::new();
    for node in &graph.node {
        // A node without an output writes nothing to rewrite (a malformed file: the
        // rewrites after this one refuse it with its name).
        if node.output.first().is_none_or(|o| o.is_empty()) {
            nodes.push(node.clone());
            continue;
        }
        let label = node_label(node);
        let mut b = Builder { base: node.output.first().cloned().unwrap_or_default(), nodes: &mut nodes, count: 0 };
        let standard = node.domain.is_empty() || node.domain == "ai.onnx";
        let ms = node.domain == "com.microsoft";
        match node.op_type.as_str() {
            "QuantizeLinear" => {
                if let (Some(s), Some(z), Some(y)) = (node.input.get(1), node.input.get(2), node.output.first()) {
                    quantized.insert(y.clone(), (s.clone(), z.clone()));
                }
                b.nodes.push(node.clone());
                continue;
            }
            op if ON_CODES.contains(&op) && standard && node.input.first().is_some_and(|x| quantized.contains_key(x)) => {
                let (s, z) = quantized[&node.input[0]].clone();
                let x = b.dq(&node.input[0], &s, &z, None);
                let mut float = node.clone();
                float.input[0] = x;
                let y = node.output[0].clone();
                float.output[0] = b.name("f");
                let yf = float.output[0].clone();
                b.nodes.push(float);
                b.q(&yf, &s, &z, &y);
                quantized.insert(y, (s, z));
                report.framed += 1;
                continue;
            }
            "QLinearConv" if standard => {
                let i = inputs(node, 8, &label)?;
                let x = b.dq(i[0], i[1], i[2], None);
                let w = b.dq(i[3], i[4], i[5], Some(0));
                let mut conv_inputs = vec![x, w];
                if let Some(bias) = node.input.get(8).filter(|s| !s.is_empty()) {
                    // The int32 bias is in units of sx * sw[c] with zero point 0 (ONNX spec).
                    let scale = product(&constants, i[1], i[4], resolve).with_context(|| format!("{label}: the bias scale"))?;
                    let (s_name, z_name) = (b.name("bias_scale"), b.name("bias_zero"));
                    let n = scale.len() as i64;
                    new_initializers.push(TensorProto { name: s_name.clone(), dims: vec![n], data_type: 1, float_data: scale, ..Default::default() });
                    new_initializers.push(TensorProto { name: z_name.clone(), dims: vec![n], data_type: 6, int32_data: vec![0; n as usize], ..Default::default() });
                    conv_inputs.push(b.dq(bias, &s_name, &z_name, Some(0)));
                }
                b.float_op("Conv", "", conv_inputs, node.attribute.clone(), i[6], i[7], &node.output[0]);
            }
            "QLinearMatMul" if standard => {
                let i = inputs(node, 8, &label)?;
                let a = b.dq(i[0], i[1], i[2], None);
                // A per-column scale of the right matrix is along its last axis.
                let axis = match (constant_f32(&constants, i[4], resolve).map(|v| v.len()), constants.get(i[3])) {
                    (Ok(n), Some(m)) if n > 1 => Some(m.dims.len().max(1) as i64 - 1),
                    (Ok(n), None) if n > 1 => Some(-1),
                    _ => None,
                };
                let m = b.dq(i[3], i[4], i[5], axis);
                b.float_op("MatMul", "", vec![a, m], vec![], i[6], i[7], &node.output[0]);
            }
            "QLinearSigmoid" if ms && silu.sigmoids.contains(node.output[0].as_str()) => {
                // Written with the QLinearMul that reads it (below).
                continue;
            }
            "QLinearMul" if ms && silu.muls.contains_key(node.output[0].as_str()) => {
                // SiLU: one DequantizeLinear of x read by both the Sigmoid and the Mul, the
                // sigmoid rounded to its own codes in between (as onnxruntime computes it):
                // the shape the int8 rewrite folds into the convolution that produced x.
                let i = inputs(node, 8, &label)?;
                let (x_at, s_at) = silu.muls[node.output[0].as_str()];
                let x = b.dq(i[x_at], i[x_at + 1], i[x_at + 2], None);
                let sig = b.name("sigmoid");
                b.nodes.push(NodeProto { name: sig.clone(), op_type: "Sigmoid".into(), input: vec![x.clone()], output: vec![sig.clone()], ..Default::default() });
                let sig_codes = b.name("sigmoid_q");
                b.q(&sig, i[s_at + 1], i[s_at + 2], &sig_codes);
                let sig_f = b.dq(&sig_codes, i[s_at + 1], i[s_at + 2], None);
                b.float_op("Mul", "", vec![x, sig_f], vec![], i[6], i[7], &node.output[0]);
                report.silu += 1;
            }
            "QLinearAdd" | "QLinearMul" if ms => {
                let i = inputs(node, 8, &label)?;
                let (a, c) = (b.dq(i[0], i[1], i[2], None), b.dq(i[3], i[4], i[5], None));
                b.float_op(&node.op_type["QLinear".len()..], "", vec![a, c], vec![], i[6], i[7], &node.output[0]);
            }
            "QLinearSigmoid" | "QLinearLeakyRelu" | "QLinearSoftmax" if ms => {
                let i = inputs(node, 5, &label)?;
                let x = b.dq(i[0], i[1], i[2], None);
                let attrs = node.attribute.iter().filter(|a| a.name == "alpha" || a.name == "axis").cloned().collect();
                b.float_op(&node.op_type["QLinear".len()..], "", vec![x], attrs, i[3], i[4], &node.output[0]);
            }
            "QLinearGlobalAveragePool" | "QLinearAveragePool" if ms => {
                let i = inputs(node, 5, &label)?;
                ensure!(
                    node.attribute.iter().all(|a| a.name != "channels_last" || a.i == 0),
                    "{label}: {} with channels_last=1 is not supported; fix: quantize the NCHW model",
                    node.op_type
                );
                let x = b.dq(i[0], i[1], i[2], None);
                let attrs = node.attribute.iter().filter(|a| a.name != "channels_last").cloned().collect();
                b.float_op(&node.op_type["QLinear".len()..], "", vec![x], attrs, i[3], i[4], &node.output[0]);
            }
            "QLinearConcat" if ms => {
                ensure!(node.input.len() >= 5 && (node.input.len() - 2) % 3 == 0, "{label}: QLinearConcat with {} inputs", node.input.len());
                let xs = node.input[2..].chunks(3).map(|t| b.dq(&t[0], &t[1], &t[2], None)).collect();
                let attrs = node.attribute.iter().filter(|a| a.name == "axis").cloned().collect();
                b.float_op("Concat", "", xs, attrs, &node.input[0], &node.input[1], &node.output[0]);
            }
            op if op.starts_with("QLinear") || op == "QGemm" => bail!(
                "{label}: the QOperator op {}{op} is not supported; fix: quantize in the QDQ format \
                 (onnxruntime: quantize_static(..., quant_format=QuantFormat.QDQ), or scripts/quantize.py)",
                if node.domain.is_empty() { String::new() } else { format!("{}.", node.domain) }
            ),
            _ => {
                b.nodes.push(node.clone());
                continue;
            }
        }
        if let Some((s, z)) = qparams_of_output(node) {
            quantized.insert(node.output[0].clone(), (s, z));
        }
        match report.rewritten.iter_mut().find(|(op, _)| *op == node.op_type) {
            Some((_, n)) => *n += 1,
            None => report.rewritten.push((node.op_type.clone(), 1)),
        }
    }
    graph.node = nodes;
    graph.initializer.extend(new_initializers);
    Ok(report)
}

/// The output scale and zero point a QOperator node writes its output with.
fn qparams_of_output(node: &NodeProto) -> Option<QParams> {
    let (s, z) = match node.op_type.as_str() {
        "QLinearConv" | "QLinearMatMul" | "QLinearAdd" | "QLinearMul" => (6, 7),
        "QLinearConcat" => (0, 1),
        _ => (3, 4),
    };
    Some((node.input.get(s)?.clone(), node.input.get(z)?.clone()))
}

/// The first `n` inputs, each present.
fn inputs<'n>(node: &'n NodeProto, n: usize, label: &str) -> Result<Vec<&'n str>> {
    ensure!(
        node.input.len() >= n && node.input[..n].iter().all(|s| !s.is_empty()),
        "{label}: {} needs {n} inputs, has {}; fix: re-export the model",
        node.op_type,
        node.input.len()
    );
    Ok(node.input[..n].iter().map(String::as_str).collect())
}

fn constant_f32(constants: &HashMap<&str, &TensorProto>, name: &str, resolve: Resolve) -> Result<Vec<f32>> {
    let t = constants.get(name).with_context(|| format!("{name} is not an initializer"))?;
    values::<f32>(&resolve(t).with_context(|| format!("reading {name}"))?)
}

/// `a * b` elementwise, broadcasting a scalar `a` (the input scale) over `b` (per channel).
fn product(constants: &HashMap<&str, &TensorProto>, a: &str, b: &str, resolve: Resolve) -> Result<Vec<f32>> {
    let (a, b) = (constant_f32(constants, a, resolve)?, constant_f32(constants, b, resolve)?);
    ensure!(a.len() == 1, "the input scale has {} values, expected 1", a.len());
    Ok(b.iter().map(|w| a[0] * w).collect())
}

/// Appends the replacement nodes of one QOperator node, naming new tensors
/// after its first output (unique in a valid graph).
struct Builder<'a> {
    base: String,
    nodes: &'a mut Vec<NodeProto>,
    count: usize,
}

impl Builder<'_> {
    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{}.edgeseg_qop_{what}{}", self.base, self.count)
    }

    fn dq(&mut self, x: &str, scale: &str, zero: &str, axis: Option<i64>) -> String {
        let out = self.name("dq");
        let attribute = axis.map(|a| vec![attr_int("axis", a)]).unwrap_or_default();
        self.nodes.push(NodeProto {
            name: out.clone(),
            op_type: "DequantizeLinear".into(),
            input: vec![x.into(), scale.into(), zero.into()],
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    fn q(&mut self, x: &str, scale: &str, zero: &str, out: &str) {
        self.nodes.push(NodeProto {
            name: format!("{out}.edgeseg_qop_q"),
            op_type: "QuantizeLinear".into(),
            input: vec![x.into(), scale.into(), zero.into()],
            output: vec![out.into()],
            ..Default::default()
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn float_op(&mut self, op: &str, domain: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>, scale: &str, zero: &str, out: &str) {
        let y = self.name(&op.to_ascii_lowercase());
        self.nodes.push(NodeProto { name: y.clone(), op_type: op.into(), domain: domain.into(), input: inputs, output: vec![y.clone()], attribute, ..Default::default() });
        self.q(&y, scale, zero, out);
    }
}

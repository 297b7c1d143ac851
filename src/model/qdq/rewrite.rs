//! The load-time graph rewrite: QDQ convolutions become `EdgesegInt8Conv` nodes.
//!
//! Pattern (what onnxruntime's `quantize_static(quant_format=QDQ)` writes):
//!
//! ```text
//! x ─ QuantizeLinear ─ DequantizeLinear ─┐
//! w(int8) ─ DequantizeLinear(axis 0) ────┼─ Conv ─ [QuantizeLinear ─ DequantizeLinear] ─ [Relu] ─
//! b(int32) ─ DequantizeLinear ───────────┘
//! ```
//!
//! becomes `x ─ EdgesegInt8Conv ─` (a `Mul(y, HardSigmoid(y))` or
//! `Mul(y, Sigmoid(y))` on the output, HardSwish or SiLU, is fused too), whose inputs are `x`, the int8 weights, one
//! float scale per output channel and the float bias, and whose attributes carry
//! the convolution's geometry, the input's quantization and the fused epilogue.
//! ConvTranspose with kernel == stride is rewritten the same way. A convolution
//! that does not fit (float weights, weight zero points, `auto_pad=SAME_*`, …)
//! stays as it is and is reported with the reason.

use anyhow::{bail, ensure, Context, Result};
use std::collections::{HashMap, HashSet};
use tract_onnx::pb::{attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto, GraphProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;

/// The op type of the rewritten nodes (see `super::register`).
pub const OP_TYPE: &str = "EdgesegInt8Conv";

/// What the rewrite did.
#[derive(Clone, Debug, Default)]
pub struct RewriteReport {
    /// Convolutions now computed in int8.
    pub fused: usize,
    /// Of those, how many also absorbed the output's Q→DQ pair, and a Relu.
    pub requantize_fused: usize,
    pub relu_fused: usize,
    pub hardswish_fused: usize,
    pub silu_fused: usize,
    /// Of those, how many store their readers' uint8 codes instead of floats.
    pub code_edges: usize,
    /// Convolutions left in float, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Reads an initializer's value (the loader passes tract's own decoding).
pub type Resolve<'a> = &'a dyn Fn(&TensorProto) -> TractResult<Tensor>;

/// Rewrite every QDQ convolution of `graph` in place.
pub fn rewrite(graph: &mut GraphProto, resolve: Resolve) -> Result<RewriteReport> {
    check_arity(graph)?;
    let mut report = RewriteReport::default();
    let has_qdq = graph.node.iter().any(|n| n.op_type == "DequantizeLinear");
    if !has_qdq {
        return Ok(report);
    }
    // Keys of the convolutions: their first output, which the rewrite keeps or replaces.
    let convs: Vec<String> = graph.node.iter().filter(|n| n.op_type == "Conv" || n.op_type == "ConvTranspose").map(|n| n.output[0].clone()).collect();
    for key in convs {
        let index = graph.node.iter().position(|n| n.output.first() == Some(&key)).context("rewrite lost a convolution")?;
        let view = GraphView::new(graph);
        let label = node_label(&graph.node[index]);
        match plan(&view, index, resolve) {
            Ok(plan) => {
                report.fused += 1;
                report.requantize_fused += plan.requantize.is_some() as usize;
                report.relu_fused += plan.relu.is_some() as usize;
                report.hardswish_fused += matches!(plan.gate, Some(Gate::HardSwish(..))) as usize;
                report.silu_fused += matches!(plan.gate, Some(Gate::Silu | Gate::QuantizedSilu(..))) as usize;
                apply(graph, index, plan.replacement);
            }
            Err(reason) => report.skipped.push((label, format!("{reason:#}"))),
        }
    }
    remove_dead_quantization(graph);
    report.code_edges = super::code_edges::mark(graph);
    Ok(report)
}

/// Inputs (fewest, most) of the ops the rewrites read by position, as ONNX defines them.
fn arity(op_type: &str) -> Option<(usize, usize)> {
    Some(match op_type {
        "Conv" | "ConvTranspose" | "QuantizeLinear" | "DequantizeLinear" => (2, 3),
        "Mul" => (2, 2),
        "Cast" | "Relu" | "HardSwish" | "HardSigmoid" | "Sigmoid" => (1, 1),
        _ => return None,
    })
}

/// Refuse a malformed graph before the rewrites index into it: every node the
/// rewrites read must have the inputs ONNX gives its op and a named output
/// (a `Conv` with one input used to panic the loader, and `edgeseg run`'s reload with it).
/// Every tensor is produced once (ONNX is in SSA form): the rewrites find nodes by
/// their output name, and a second producer of a `Conv`'s output used to be taken
/// for the `Conv` (found by tests/fuzz_inputs.rs).
pub(crate) fn check_arity(graph: &GraphProto) -> Result<()> {
    let mut produced = HashSet::new();
    for n in &graph.node {
        ensure!(n.output.first().is_some_and(|o| !o.is_empty()), "node {} ({}) has no output; fix: re-export the model", node_label(n), n.op_type);
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            ensure!(produced.insert(o.as_str()), "tensor {o:?} is produced by two nodes (the second: {} ({})); the model is malformed; fix: re-export it", node_label(n), n.op_type);
        }
        if let Some((fewest, most)) = arity(&n.op_type) {
            ensure!(
                (fewest..=most).contains(&n.input.len()),
                "node {} ({}) has {} input(s) but {} takes {fewest} to {most}; the model is malformed; fix: re-export it",
                node_label(n),
                n.op_type,
                n.input.len(),
                n.op_type
            );
        }
    }
    Ok(())
}

pub(crate) fn node_label(n: &NodeProto) -> String {
    if n.name.is_empty() {
        format!("{} -> {}", n.op_type, n.output.first().map_or("?", |s| s.as_str()))
    } else {
        n.name.clone()
    }
}

/// Producers, consumers and initializers by tensor name.
pub(crate) struct GraphView<'g> {
    graph: &'g GraphProto,
    pub producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    pub initializer: HashMap<&'g str, &'g TensorProto>,
    pub outputs: HashSet<&'g str>,
}

impl<'g> GraphView<'g> {
    pub fn new(graph: &'g GraphProto) -> GraphView<'g> {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            n.input.iter().filter(|s| !s.is_empty()).for_each(|s| consumers.entry(s.as_str()).or_default().push(i));
        }
        let initializer = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let outputs = graph.output.iter().map(|o| o.name.as_str()).collect();
        GraphView { graph, producer, consumers, initializer, outputs }
    }

    pub fn node(&self, i: usize) -> &'g NodeProto {
        &self.graph.node[i]
    }

    fn produced_by(&self, tensor: &str, op_type: &str) -> Result<&'g NodeProto> {
        let i = *self.producer.get(tensor).with_context(|| format!("{tensor} is not produced by a node"))?;
        let n = self.node(i);
        ensure!(n.op_type == op_type, "{tensor} comes from {}, not {op_type}", n.op_type);
        Ok(n)
    }

    pub fn consumers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map_or(&[], |v| v.as_slice())
    }

    pub fn constant(&self, name: &str, resolve: Resolve) -> Result<Tensor> {
        let t = self.initializer.get(name).with_context(|| format!("{name} is not an initializer"))?;
        resolve(t).map_err(|e| anyhow::anyhow!("{e:#}")).with_context(|| format!("reading initializer {name}"))
    }

    /// Scale and zero point of a Quantize/DequantizeLinear node, in the uint8 domain.
    fn per_tensor(&self, node: &NodeProto, resolve: Resolve) -> Result<(f32, u8)> {
        let scale = self.constant(&node.input[1], resolve)?;
        ensure!(scale.len() == 1, "{} has {} scales; activations must be quantized per tensor", node_label(node), scale.len());
        let scale = scale.cast_to_scalar::<f32>().map_err(|e| anyhow::anyhow!("{e}"))?;
        let zp = match node.input.get(2).filter(|s| !s.is_empty()) {
            None => 0,
            Some(name) => {
                let z = self.constant(name, resolve)?;
                ensure!(z.len() == 1, "{} has {} zero points", node_label(node), z.len());
                match z.datum_type() {
                    // int8 q with zero point z is uint8 q + 128 with zero point z + 128.
                    DatumType::I8 => (i16::from(z.cast_to_scalar::<i8>().map_err(|e| anyhow::anyhow!("{e}"))?) + 128) as u8,
                    DatumType::U8 => z.cast_to_scalar::<u8>().map_err(|e| anyhow::anyhow!("{e}"))?,
                    dt => bail!("{} zero point is {dt:?}; only 8-bit activations are computed in int8", node_label(node)),
                }
            }
        };
        ensure!(scale.is_finite() && scale > 0.0, "{} has scale {scale}", node_label(node));
        Ok((scale, zp))
    }
}

/// What replaces one convolution in the graph.
pub(crate) struct Replacement {
    pub node: NodeProto,
    pub new_initializers: Vec<TensorProto>,
    /// Nodes that belong to this convolution alone and go with it (by first output).
    pub remove: Vec<String>,
    /// Tensor renames for the remaining nodes and the graph outputs.
    pub renames: Vec<(String, String)>,
}

/// One convolution's rewrite.
struct Plan {
    replacement: Replacement,
    requantize: Option<(f32, u8)>,
    relu: Option<()>,
    gate: Option<Gate>,
}

/// `y · f(y)` after the output, fused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Gate {
    /// `Mul(y, HardSigmoid(y))`: HardSigmoid's (alpha, beta).
    HardSwish(f32, f32),
    /// `Mul(y, Sigmoid(y))`.
    Silu,
    /// `Mul(y, DequantizeLinear(QuantizeLinear(Sigmoid(y))))`: the sigmoid rounded to
    /// codes of this (scale, zero point) first (QOperator SiLUs, see `crate::model::qop`).
    QuantizedSilu(f32, u8),
}

fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

pub(crate) fn int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn positive(v: &[i64], what: &str) -> Result<Vec<usize>> {
    v.iter().map(|&x| usize::try_from(x).ok().filter(|&x| x > 0 || what == "pads").with_context(|| format!("{what} {v:?}"))).collect()
}

fn plan(g: &GraphView, index: usize, resolve: Resolve) -> Result<Plan> {
    let conv = g.node(index);
    let transpose = conv.op_type == "ConvTranspose";
    let (x_name, x_scale, x_zp) = input_quantization(g, conv, resolve)?;
    let xs = concat_inputs(g, &x_name).unwrap_or_else(|| vec![x_name.clone()]);
    // Weights: DequantizeLinear of an int8 initializer with zero zero points.
    let dq_w = g.produced_by(&conv.input[1], "DequantizeLinear").context("the weights are not quantized")?;
    let w = g.constant(&dq_w.input[0], resolve)?;
    ensure!(w.datum_type() == DatumType::I8, "weights are {:?}, not int8", w.datum_type());
    ensure!(w.rank() == 4, "weights of rank {} (only 2-D convolutions are computed in int8)", w.rank());
    if let Some(zp) = dq_w.input.get(2).filter(|s| !s.is_empty()) {
        let zp = values::<i32>(&g.constant(zp, resolve)?)?;
        ensure!(zp.iter().all(|&z| z == 0), "weight zero points are not all 0");
    }
    let shape: Vec<usize> = w.shape().to_vec();
    let cout = if transpose { shape[1] } else { shape[0] };
    let scales = values::<f32>(&g.constant(&dq_w.input[1], resolve)?)?;
    if scales.len() > 1 {
        let axis = int(dq_w, "axis").unwrap_or(1);
        let want = if transpose { 1 } else { 0 };
        ensure!(axis == want && scales.len() == cout, "per-channel weight scales on axis {axis} ({} of them) are not per output channel", scales.len());
    }
    let scales = if scales.len() == 1 { vec![scales[0]; cout] } else { scales };
    // Bias: DequantizeLinear of an int32 initializer, or a float initializer.
    let bias: Vec<f32> = match conv.input.get(2).filter(|s| !s.is_empty()) {
        None => vec![0.0; cout],
        Some(b) => {
            let v = if g.initializer.contains_key(b.as_str()) {
                values::<f32>(&g.constant(b, resolve)?)?
            } else {
                let dq_b = g.produced_by(b, "DequantizeLinear").context("the bias is neither constant nor dequantized")?;
                dequantize_constant(g, dq_b, resolve)?
            };
            ensure!(v.len() == cout, "{} bias values for {cout} output channels", v.len());
            v
        }
    };
    let attrs = conv_attrs(conv, &shape, transpose)?;

    // Epilogue: the output's Q → DQ (every DQ of it alike), then a Relu.
    let mut out = conv.output[0].clone();
    let mut remove = vec![];
    let mut renames = vec![];
    let mut requantize = None;
    let consumers = g.consumers(&out);
    if consumers.len() == 1 && !g.outputs.contains(out.as_str()) && g.node(consumers[0]).op_type == "QuantizeLinear" {
        let q_y = g.node(consumers[0]);
        let dqs = g.consumers(&q_y.output[0]);
        let params = g.per_tensor(q_y, resolve)?;
        let all_dq = !dqs.is_empty()
            && !g.outputs.contains(q_y.output[0].as_str())
            && dqs.iter().all(|&d| g.node(d).op_type == "DequantizeLinear" && g.per_tensor(g.node(d), resolve).ok() == Some(params));
        if all_dq {
            requantize = Some(params);
            remove.push(q_y.output[0].clone());
            let first = g.node(dqs[0]).output[0].clone();
            for &d in dqs {
                let name = g.node(d).output[0].clone();
                remove.push(name.clone());
                if name != first {
                    renames.push((name, first.clone()));
                }
            }
            out = first;
        }
    }
    let (mut relu, mut gate) = (None, None);
    if renames.is_empty() {
        let activation = activation_after(g, &out);
        relu = activation.relu.then_some(());
        gate = activation.gate;
        remove.extend(activation.remove);
        out = activation.output;
        // Only through the requantized epilogue's table, which the GEMM path of a
        // plain convolution always takes (depthwise rows compute SiLU in lanes).
        if relu.is_none() && gate.is_none() && requantize.is_some() && attrs.group == 1 && !transpose {
            if let Some((g8, removed, output)) = quantized_silu_after(g, &out, resolve) {
                gate = Some(g8);
                remove.extend(removed);
                out = output;
            }
        }
    }

    let base = if conv.name.is_empty() { conv.output[0].clone() } else { conv.name.clone() };
    let scale_name = format!("{base}.edgeseg_weight_scales");
    let bias_name = format!("{base}.edgeseg_bias");
    let mut attributes = node_attributes(&attrs, cout, xs.len(), relu.is_some(), gate);
    attributes.extend([attr_int("transpose", transpose as i64), attr_float("x_scale", x_scale), attr_int("x_zero_point", i64::from(x_zp))]);
    if let Some((s, z)) = requantize {
        attributes.push(attr_float("y_scale", s));
        attributes.push(attr_int("y_zero_point", i64::from(z)));
    }
    let node = NodeProto {
        name: conv.name.clone(),
        op_type: OP_TYPE.into(),
        input: xs.into_iter().chain([dq_w.input[0].clone(), scale_name.clone(), bias_name.clone()]).collect(),
        output: vec![out],
        attribute: attributes,
        ..Default::default()
    };
    let new_initializers = vec![float_tensor(&scale_name, scales), float_tensor(&bias_name, bias)];
    Ok(Plan { replacement: Replacement { node, new_initializers, remove, renames }, requantize, relu, gate })
}

/// The attributes every rewritten convolution node carries (see `super::node_conv_attrs`,
/// `node_inputs` and `node_epilogue`, which read them back).
pub(crate) fn node_attributes(attrs: &super::ConvAttrs, cout: usize, inputs: usize, relu: bool, gate: Option<Gate>) -> Vec<AttributeProto> {
    let mut attributes = vec![
        attr_ints("kernel_shape", &attrs.kernel),
        attr_ints("strides", &attrs.strides),
        attr_ints("dilations", &attrs.dilations),
        attr_ints("pads", &attrs.pads),
        attr_int("group", attrs.group as i64),
        attr_int("cout", cout as i64),
        attr_int("relu", relu as i64),
        attr_int("inputs", inputs as i64),
    ];
    match gate {
        Some(Gate::HardSwish(alpha, beta)) => {
            attributes.push(attr_float("hardswish_alpha", alpha));
            attributes.push(attr_float("hardswish_beta", beta));
        }
        Some(Gate::Silu) => attributes.push(attr_int("silu", 1)),
        Some(Gate::QuantizedSilu(scale, zero_point)) => {
            attributes.push(attr_int("silu", 1));
            attributes.push(attr_float("sigmoid_scale", scale));
            attributes.push(attr_int("sigmoid_zero_point", i64::from(zero_point)));
        }
        None => {}
    }
    attributes
}

/// The activation a convolution's output `out` goes through, when nothing else reads it.
pub(crate) struct Activation {
    pub relu: bool,
    pub gate: Option<Gate>,
    /// The activation's nodes (by first output), which go with the convolution.
    pub remove: Vec<String>,
    /// The activation's output (`out` itself when there is none).
    pub output: String,
}

/// A `Relu`, a `HardSwish`, or else a HardSwish or SiLU gate written out, that alone reads `out`.
pub(crate) fn activation_after(g: &GraphView, out: &str) -> Activation {
    let none = Activation { relu: false, gate: None, remove: vec![], output: out.to_string() };
    if g.outputs.contains(out) {
        return none;
    }
    let consumers = g.consumers(out);
    if consumers.len() == 1 && g.node(consumers[0]).op_type == "Relu" {
        let r = &g.node(consumers[0]).output[0];
        return Activation { relu: true, gate: None, remove: vec![r.clone()], output: r.clone() };
    }
    if consumers.len() == 1 && g.node(consumers[0]).op_type == "HardSwish" {
        // ONNX HardSwish is x · HardSigmoid(x) with alpha 1/6, beta 1/2.
        let r = &g.node(consumers[0]).output[0];
        return Activation { relu: false, gate: Some(Gate::HardSwish(1.0 / 6.0, 0.5)), remove: vec![r.clone()], output: r.clone() };
    }
    match gate_after(g, out) {
        Some((gate, remove, output)) => Activation { relu: false, gate: Some(gate), remove, output },
        None => none,
    }
}

/// The inputs of the `Concat` on the channel axis that produces `x`, when
/// nothing else reads `x`: the convolution quantizes each of them into its
/// input copy directly (the same integers as quantizing `x`), and the Concat
/// goes once no node reads it.
pub(crate) fn concat_inputs(g: &GraphView, x: &str) -> Option<Vec<String>> {
    let concat = g.node(*g.producer.get(x)?);
    let on_channels = concat.op_type == "Concat" && int(concat, "axis") == Some(1);
    let alone = g.consumers(x).len() == 1 && !g.outputs.contains(x);
    let inputs: Vec<String> = concat.input.iter().filter(|s| !s.is_empty()).cloned().collect();
    (on_channels && alone && inputs.len() > 1 && inputs.iter().all(|i| !g.initializer.contains_key(i.as_str()))).then_some(inputs)
}

/// `Mul(x, HardSigmoid(x))` (what exporters write for HardSwish) or
/// `Mul(x, Sigmoid(x))` (SiLU) reading `x`, and nothing else reading it: the
/// gate, the two nodes' outputs (to remove) and the Mul's output.
fn gate_after(g: &GraphView, x: &str) -> Option<(Gate, Vec<String>, String)> {
    let consumers = g.consumers(x);
    let [a, b] = consumers else { return None };
    let is_gate = |t: &str| t == "HardSigmoid" || t == "Sigmoid";
    let (hs, mul) = match (g.node(*a).op_type.as_str(), g.node(*b).op_type.as_str()) {
        (t, "Mul") if is_gate(t) => (g.node(*a), g.node(*b)),
        ("Mul", t) if is_gate(t) => (g.node(*b), g.node(*a)),
        _ => return None,
    };
    let h = hs.output.first()?;
    let reads_both = mul.input.len() == 2 && mul.input.iter().any(|i| i == x) && mul.input.iter().any(|i| i == h);
    if !reads_both || g.consumers(h).len() != 1 || g.outputs.contains(h.as_str()) {
        return None;
    }
    let attr = |name: &str, default: f32| hs.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f);
    let gate = if hs.op_type == "Sigmoid" { Gate::Silu } else { Gate::HardSwish(attr("alpha", 0.2), attr("beta", 0.5)) };
    Some((gate, vec![h.clone(), mul.output[0].clone()], mul.output[0].clone()))
}

/// `Mul(x, DequantizeLinear(QuantizeLinear(Sigmoid(x))))` reading `x`, the quantize
/// pair per tensor with equal parameters, and nothing else reading `x` or the chain:
/// the gate, the chain's outputs (to remove) and the Mul's output.
fn quantized_silu_after(g: &GraphView, x: &str, resolve: Resolve) -> Option<(Gate, Vec<String>, String)> {
    if g.outputs.contains(x) {
        return None;
    }
    let consumers = g.consumers(x);
    let [a, b] = consumers else { return None };
    let (sig, mul) = match (g.node(*a).op_type.as_str(), g.node(*b).op_type.as_str()) {
        ("Sigmoid", "Mul") => (g.node(*a), g.node(*b)),
        ("Mul", "Sigmoid") => (g.node(*b), g.node(*a)),
        _ => return None,
    };
    let only = |t: &str, op: &str| -> Option<&NodeProto> {
        let [c] = g.consumers(t) else { return None };
        (!g.outputs.contains(t) && g.node(*c).op_type == op).then(|| g.node(*c))
    };
    let q = only(sig.output.first()?, "QuantizeLinear")?;
    let dq = only(q.output.first()?, "DequantizeLinear")?;
    let params = g.per_tensor(q, resolve).ok()?;
    if g.per_tensor(dq, resolve).ok()? != params {
        return None;
    }
    let s = dq.output.first()?;
    let reads_both = mul.input.len() == 2 && mul.input.iter().any(|i| i == x) && mul.input.iter().any(|i| i == s);
    if !reads_both || g.consumers(s).len() != 1 || g.outputs.contains(s.as_str()) {
        return None;
    }
    let removed = vec![sig.output[0].clone(), q.output[0].clone(), s.clone(), mul.output[0].clone()];
    Some((Gate::QuantizedSilu(params.0, params.1), removed, mul.output[0].clone()))
}

/// The float tensor the convolution quantizes, and how: either
/// `DequantizeLinear(QuantizeLinear(x))` with the same parameters, or the output
/// of an already rewritten convolution that re-quantized it (quantizing an exactly
/// dequantized value again with the same parameters gives back the same integers).
fn input_quantization(g: &GraphView, conv: &NodeProto, resolve: Resolve) -> Result<(String, f32, u8)> {
    let input = &conv.input[0];
    if let Some(&p) = g.producer.get(input.as_str()) {
        let prev = g.node(p);
        if prev.op_type == OP_TYPE {
            let scale = prev.attribute.iter().find(|a| a.name == "y_scale").map(|a| a.f);
            let zp = int(prev, "y_zero_point");
            if let (Some(scale), Some(zp)) = (scale, zp) {
                return Ok((input.clone(), scale, zp as u8));
            }
            bail!("the input comes from an int8 convolution whose output is not quantized");
        }
    }
    let dq_x = g.produced_by(input, "DequantizeLinear").context("the input is not quantized")?;
    let q_x = g.produced_by(&dq_x.input[0], "QuantizeLinear").context("the input's DequantizeLinear does not follow a QuantizeLinear")?;
    let (x_scale, x_zp) = g.per_tensor(dq_x, resolve)?;
    ensure!(g.per_tensor(q_x, resolve)? == (x_scale, x_zp), "QuantizeLinear and DequantizeLinear of the input disagree");
    Ok((q_x.input[0].clone(), x_scale, x_zp))
}

/// A constant DequantizeLinear, computed as ONNX defines it: `(x - zp) * scale`
/// along `axis` (default 1; a 1-D tensor's only axis is 0).
fn dequantize_constant(g: &GraphView, dq: &NodeProto, resolve: Resolve) -> Result<Vec<f32>> {
    let x = g.constant(&dq.input[0], resolve)?;
    let xs = values::<f32>(&x)?;
    let read = |name: Option<&String>| -> Result<Vec<f32>> {
        match name.filter(|s| !s.is_empty()) {
            None => Ok(vec![0.0]),
            Some(n) => values::<f32>(&g.constant(n, resolve)?),
        }
    };
    let scale = read(dq.input.get(1))?;
    let zp = read(dq.input.get(2))?;
    ensure!(x.rank() == 1 || (scale.len() == 1 && zp.len() == 1), "per-axis constant dequantization of rank {} is not supported here", x.rank());
    // Per element along the only axis: one value, or one per element (found by fuzzing: a
    // 4-value scale on a longer bias indexed past its end).
    for (what, v) in [("scale", &scale), ("zero point", &zp)] {
        ensure!(v.len() == 1 || v.len() == xs.len(), "{} has {} {what} values for {} elements", node_label(dq), v.len(), xs.len());
    }
    let at = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    Ok(xs.iter().enumerate().map(|(i, &q)| (q - at(&zp, i)) * at(&scale, i)).collect())
}

/// A constant's elements, converted to `T`.
pub(crate) fn values<T: Datum>(t: &Tensor) -> Result<Vec<T>> {
    let tract = |e: TractError| anyhow::anyhow!("{e}");
    let cast = t.cast_to::<T>().map_err(tract)?;
    let plain = cast.try_as_plain_ram().map_err(tract)?;
    Ok(plain.as_slice::<T>().map_err(tract)?.to_vec())
}

pub(crate) fn conv_attrs(conv: &NodeProto, w_shape: &[usize], transpose: bool) -> Result<super::ConvAttrs> {
    let kernel = positive(&ints(conv, "kernel_shape").unwrap_or(vec![w_shape[2] as i64, w_shape[3] as i64]), "kernel_shape")?;
    ensure!(kernel == [w_shape[2], w_shape[3]], "kernel_shape {kernel:?} does not match the weights");
    let strides = positive(&ints(conv, "strides").unwrap_or(vec![1, 1]), "strides")?;
    let dilations = positive(&ints(conv, "dilations").unwrap_or(vec![1, 1]), "dilations")?;
    let mut pads = positive(&ints(conv, "pads").unwrap_or(vec![0; 4]), "pads")?;
    let group = int(conv, "group").unwrap_or(1);
    match conv.attribute.iter().find(|a| a.name == "auto_pad").map(|a| String::from_utf8_lossy(&a.s).to_string()).as_deref() {
        None | Some("NOTSET") | Some("") => {}
        Some("VALID") => pads = vec![0; 4],
        Some(other) => bail!("auto_pad={other} (export with explicit pads)"),
    }
    ensure!(strides.len() == 2 && dilations.len() == 2 && pads.len() == 4, "not a 2-D convolution");
    let group = usize::try_from(group).ok().filter(|&g| g > 0).context("bad group")?;
    if transpose {
        ensure!(group == 1 && strides == kernel && dilations == [1, 1] && pads == [0; 4], "ConvTranspose other than kernel == stride, no padding, one group");
        let extra = ints(conv, "output_padding").unwrap_or_default();
        ensure!(extra.iter().all(|&p| p == 0) && ints(conv, "output_shape").is_none(), "ConvTranspose with output_padding or output_shape");
    }
    Ok(super::ConvAttrs {
        group,
        kernel: [kernel[0], kernel[1]],
        strides: [strides[0], strides[1]],
        dilations: [dilations[0], dilations[1]],
        pads: [pads[0], pads[1], pads[2], pads[3]],
    })
}

/// Put `plan` in place of node `index`.
pub(crate) fn apply(graph: &mut GraphProto, index: usize, plan: Replacement) {
    graph.node[index] = plan.node;
    graph.initializer.extend(plan.new_initializers);
    let gone: HashSet<String> = plan.remove.into_iter().collect();
    // Rewritten nodes (ours all start with "Edgeseg") may carry a removed node's output name.
    graph.node.retain(|n| n.op_type.starts_with("Edgeseg") || !n.output.first().is_some_and(|o| gone.contains(o)));
    for (from, to) in &plan.renames {
        for n in graph.node.iter_mut() {
            n.input.iter_mut().filter(|i| *i == from).for_each(|i| *i = to.clone());
        }
        for o in graph.output.iter_mut().filter(|o| &o.name == from) {
            o.name = to.clone();
        }
    }
}

/// Drop Quantize/DequantizeLinear nodes nothing reads any more (the inputs'
/// pairs and the weights' dequantization of fused convolutions), and the
/// Concats that fused convolutions read through.
pub(crate) fn remove_dead_quantization(graph: &mut GraphProto) {
    loop {
        let used: HashSet<String> = graph.node.iter().flat_map(|n| n.input.iter().cloned()).chain(graph.output.iter().map(|o| o.name.clone())).collect();
        let before = graph.node.len();
        graph.node.retain(|n| !(matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear" | "Concat") && n.output.iter().all(|o| !used.contains(o))));
        if graph.node.len() == before {
            break;
        }
    }
}

pub(crate) fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.iter().map(|&x| x as i64).collect(), ..Default::default() }
}

pub(crate) fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: v, ..Default::default() }
}

pub(crate) fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f: v, ..Default::default() }
}

pub(crate) fn float_tensor(name: &str, v: Vec<f32>) -> TensorProto {
    TensorProto { name: name.into(), dims: vec![v.len() as i64], data_type: DataType::Float as i32, float_data: v, ..Default::default() }
}

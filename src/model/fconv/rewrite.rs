//! The load-time graph rewrite for float models: `Conv` nodes with constant
//! weights become `EdgesegF32Conv` nodes (see `super::op`).
//!
//! Pattern: `x ─ Conv(w, [b]) ─ [Relu | x·HardSigmoid(x) | x·Sigmoid(x)] ─`, where
//! `w` and `b` are initializers, or a `Cast` to float of one (our exports keep the
//! weights in float16 and cast them at load: exact, so the rewrite converts once).
//! A channel `Concat` that only this convolution reads is fused as in the int8
//! rewrite. Dense (one group) and depthwise convolutions are rewritten; anything
//! else (grouped, `auto_pad=SAME_*`, non-constant weights) stays with tract and is
//! reported with the reason.

use crate::model::qdq::rewrite::{activation_after, apply, check_arity, concat_inputs, conv_attrs, int, node_attributes, node_label, remove_dead_quantization, values, Gate, GraphView, Replacement, Resolve};
use anyhow::{ensure, Context, Result};
use std::collections::HashSet;
use tract_onnx::pb::{tensor_proto::DataType, GraphProto, TensorProto};
use tract_onnx::prelude::Datum;

/// The op type of the rewritten nodes (see `super::register`).
pub const OP_TYPE: &str = "EdgesegF32Conv";

/// What the float rewrite did.
#[derive(Clone, Debug, Default)]
pub struct FloatRewriteReport {
    /// Convolutions now computed by edgeseg's float kernels.
    pub fused: usize,
    pub depthwise: usize,
    pub relu_fused: usize,
    pub hardswish_fused: usize,
    pub silu_fused: usize,
    pub concat_fused: usize,
    /// Convolutions left to tract, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Rewrite every float `Conv` of `graph` that fits, in place.
pub fn rewrite(graph: &mut GraphProto, resolve: Resolve) -> Result<FloatRewriteReport> {
    check_arity(graph)?;
    let mut report = FloatRewriteReport::default();
    let convs: Vec<String> = graph.node.iter().filter(|n| n.op_type == "Conv").map(|n| n.output[0].clone()).collect();
    for key in convs {
        let index = graph.node.iter().position(|n| n.output.first() == Some(&key)).context("rewrite lost a convolution")?;
        let view = GraphView::new(graph);
        let label = node_label(&graph.node[index]);
        match plan(&view, index, resolve) {
            Ok((replacement, kind)) => {
                report.fused += 1;
                report.depthwise += kind.depthwise as usize;
                report.relu_fused += kind.relu as usize;
                report.hardswish_fused += matches!(kind.gate, Some(Gate::HardSwish(..))) as usize;
                report.silu_fused += matches!(kind.gate, Some(Gate::Silu)) as usize;
                report.concat_fused += kind.concat as usize;
                apply(graph, index, replacement);
            }
            Err(reason) => report.skipped.push((label, format!("{reason:#}"))),
        }
    }
    if report.fused > 0 {
        remove_dead_quantization(graph);
        remove_dead_casts_and_initializers(graph);
    }
    Ok(report)
}

struct Kind {
    depthwise: bool,
    relu: bool,
    gate: Option<Gate>,
    concat: bool,
}

fn plan(g: &GraphView, index: usize, resolve: Resolve) -> Result<(Replacement, Kind)> {
    let conv = g.node(index);
    let (w, w_shape) = float_constant(g, &conv.input[1], resolve).context("the weights")?;
    ensure!(w_shape.len() == 4, "weights of rank {} (only 2-D convolutions are rewritten)", w_shape.len());
    let attrs = conv_attrs(conv, &w_shape, false)?;
    let cout = w_shape[0];
    let depthwise = attrs.group > 1 && w_shape[1] == 1;
    ensure!(attrs.group == 1 || depthwise, "grouped convolution ({} groups of {} channels)", attrs.group, w_shape[1]);
    // Where tract's packed matrix product beats the set's direct kernel, direct dense
    // convolutions stay in tract. NEON, emulated Cortex-A72, instructions per inference:
    // YOLOv8n-seg with every convolution here 659 M (597 M with Winograd), all in tract
    // 551 M, Winograd layers here and the rest in tract 551 M; U-Net (3×3 layers) 4471 M
    // in tract, 2238 M by Winograd here. AVX2, emulated Haswell: YOLOv8n-seg with every
    // convolution here 944 M, all in tract 539 M. `EDGESEG_FCONV=all` takes them anyway.
    let all = matches!(std::env::var("EDGESEG_FCONV").as_deref(), Ok("all"));
    let set_takes_it = crate::linalg::kernels().f32conv.is_some_and(|k| k.direct_dense);
    ensure!(
        depthwise || all || set_takes_it || super::winograd::fits(&attrs, w_shape[1], cout),
        "a direct dense convolution: tract's own matrix product is faster on this CPU's kernel set ({})",
        crate::linalg::kernels().name
    );
    let bias = match conv.input.get(2).filter(|s| !s.is_empty()) {
        None => vec![0.0; cout],
        Some(b) => float_constant(g, b, resolve).context("the bias")?.0,
    };
    ensure!(bias.len() == cout, "{} bias values for {cout} output channels", bias.len());
    let x = conv.input[0].clone();
    // Depthwise convolutions pad each channel's plane from wherever it is, so a
    // fused Concat costs them nothing: DeepLabV3+'s decoder concat (304 channels
    // at 128×128, 20 MB) took 1.8 ms on one thread and did not scale.
    let xs = concat_inputs(g, &x);
    let concat = xs.is_some();
    let xs = xs.unwrap_or_else(|| vec![x]);
    let activation = activation_after(g, &conv.output[0]);

    let base = if conv.name.is_empty() { conv.output[0].clone() } else { conv.name.clone() };
    let (w_name, b_name) = (format!("{base}.edgeseg_f32_weights"), format!("{base}.edgeseg_f32_bias"));
    let attributes = node_attributes(&attrs, cout, xs.len(), activation.relu, activation.gate);
    let node = tract_onnx::pb::NodeProto {
        name: conv.name.clone(),
        op_type: OP_TYPE.into(),
        input: xs.into_iter().chain([w_name.clone(), b_name.clone()]).collect(),
        output: vec![activation.output],
        attribute: attributes,
        ..Default::default()
    };
    let dims: Vec<i64> = w_shape.iter().map(|&d| d as i64).collect();
    let new_initializers = vec![f32_tensor(&w_name, dims, w), f32_tensor(&b_name, vec![cout as i64], bias)];
    let kind = Kind { depthwise, relu: activation.relu, gate: activation.gate, concat };
    Ok((Replacement { node, new_initializers, remove: activation.remove, renames: vec![] }, kind))
}

/// An initializer, or `Cast(initializer, to=FLOAT)`, as f32 values and its shape.
fn float_constant(g: &GraphView, name: &str, resolve: Resolve) -> Result<(Vec<f32>, Vec<usize>)> {
    let source = match g.producer.get(name) {
        None => name,
        Some(&p) => {
            let cast = g.node(p);
            ensure!(cast.op_type == "Cast", "{name} comes from {}, not a constant", cast.op_type);
            ensure!(int(cast, "to") == Some(DataType::Float as i64), "{name} is a Cast to type {:?}, not float", int(cast, "to"));
            &cast.input[0]
        }
    };
    let t = g.constant(source, resolve)?;
    // Without a Cast the convolution computes in the initializer's type, and the
    // rewritten node computes in f32: anything else would not type-check in tract.
    let wanted_f32 = source == name;
    ensure!(
        if wanted_f32 { t.datum_type() == f32::datum_type() } else { t.datum_type().is_float() },
        "{name} is {:?}, not float32",
        t.datum_type()
    );
    Ok((values::<f32>(&t)?, t.shape().to_vec()))
}

fn f32_tensor(name: &str, dims: Vec<i64>, v: Vec<f32>) -> TensorProto {
    TensorProto { name: name.into(), dims, data_type: DataType::Float as i32, float_data: v, ..Default::default() }
}

/// Drop the weights' `Cast` nodes and initializers no node reads any more (tract
/// would otherwise still load the float16 copies).
fn remove_dead_casts_and_initializers(graph: &mut GraphProto) {
    let used = |graph: &GraphProto| -> HashSet<String> { graph.node.iter().flat_map(|n| n.input.iter().cloned()).chain(graph.output.iter().map(|o| o.name.clone())).collect() };
    let live = used(graph);
    graph.node.retain(|n| n.op_type != "Cast" || n.output.iter().any(|o| live.contains(o)));
    let live = used(graph);
    let dead: HashSet<String> = graph.initializer.iter().filter(|t| !live.contains(&t.name)).map(|t| t.name.clone()).collect();
    graph.initializer.retain(|t| !dead.contains(&t.name));
    // Old exporters also list initializers as graph inputs; without its value one would become a real input.
    graph.input.retain(|i| !dead.contains(&i.name));
}

//! Loading an ONNX file into a runnable, optimised tract plan.
//!
//! Every failure names the file and says what to do: a missing path, bytes that
//! are not ONNX, an operator tract lacks, an input size the graph rejects.

use super::meta::{self, GraphShapes, MetaOverrides, ModelMeta};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, InferenceFact};

/// Prefix tract gives the ONNX `metadata_props` in a model's properties.
const PROPS_PREFIX: &str = "onnx.metadata_props.";

pub struct Loaded {
    pub meta: ModelMeta,
    pub props: HashMap<String, String>,
    pub plan: Arc<TypedRunnableModel>,
    pub input_shape: [usize; 4],
    pub output_shapes: Vec<Vec<usize>>,
    pub opset: i64,
    /// What widening float16/bfloat16 to float32 did (all zero for f32 models).
    pub half: super::half::HalfReport,
    /// What the QOperator → QDQ rewrite did (empty for other models).
    pub qop: super::qop::QopReport,
    /// What the int8 rewrite did (all zero for float models).
    pub int8: super::qdq::RewriteReport,
    /// What the float-convolution rewrite did (all zero where it is off).
    pub f32conv: super::fconv::FloatRewriteReport,
    /// Which slow tract ops were swapped for edgeseg's equivalents.
    pub fastpath: super::fastpath::FastpathReport,
}

/// Load and optimise `path`; `threads` > 1 runs matrix products on a pool of
/// that many threads.
pub fn load(path: &Path, flags: &MetaOverrides, threads: usize) -> Result<Loaded> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read model file {shown}: {e}; fix: check the path (the committed models are in models/, \
             e.g. models/unet_defects.onnx)"
        )
    })?;
    let mut onnx = tract_onnx::onnx();
    super::qdq::register(&mut onnx);
    super::fconv::register(&mut onnx);
    let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| {
        anyhow::anyhow!(
            "{shown} is not an ONNX model (protobuf decoding failed: {e}); fix: pass a .onnx file, \
             e.g. one exported by scripts/train_unet.py"
        )
    })?;
    if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        bail!("{shown} holds no ONNX graph (empty or not an ONNX model); fix: re-export the model");
    }
    // Read before the rewrites below replace nodes: what the file's author wrote.
    let output_op = proto.graph.as_ref().and_then(last_value_op);
    let declared_output = proto.graph.as_ref().map(declared_output_dims).unwrap_or_default();
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    // Half-precision graphs run in f32 (see `half`), before the rewrites read their weights.
    let half = proto.graph.as_mut().map(super::half::widen).unwrap_or_default();
    if !half.left.is_empty() {
        log::warn!("{shown}: {} half-precision tensor(s) stored outside the file stay in f16 (slow in tract): {}", half.left.len(), half.left.join(", "));
    }
    let provider = onnx.provider.clone();
    let resolve = move |t: &tract_onnx::pb::TensorProto| tract_onnx::tensor::load_tensor(&*provider, t, None);
    let qop = match proto.graph.as_mut() {
        Some(graph) => super::qop::rewrite(graph, &resolve).with_context(|| format!("{shown}: rewriting QOperator ops to QDQ"))?,
        None => Default::default(),
    };
    let int8 = match proto.graph.as_mut() {
        Some(graph) if super::qdq::enabled() => {
            let report = super::qdq::rewrite(graph, &resolve).with_context(|| format!("{shown}: rewriting QDQ convolutions for int8"))?;
            for (conv, why) in &report.skipped {
                log::info!("{shown}: {conv} stays in float: {why}");
            }
            report
        }
        _ => super::qdq::RewriteReport::default(),
    };
    // The float convolutions left (all of a float model's; an int8 model's first
    // layers where they are not quantized).
    let f32conv = match proto.graph.as_mut() {
        Some(graph) if super::fconv::enabled() => {
            let report = super::fconv::rewrite(graph, &resolve).with_context(|| format!("{shown}: rewriting float convolutions"))?;
            for (conv, why) in &report.skipped {
                log::debug!("{shown}: {conv} stays with tract's float convolution: {why}");
            }
            report
        }
        _ => super::fconv::FloatRewriteReport::default(),
    };
    let model = onnx.model_for_proto_model(&proto).map_err(|e| {
        anyhow::anyhow!(
            "{shown}: tract cannot translate this ONNX graph: {e:#}; fix: export with opset 11 to 18 using \
             standard ops (see `edgeseg inspect-model` for what loads)"
        )
    })?;

    let props: HashMap<String, String> = model
        .properties
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(PROPS_PREFIX)?;
            let value = v.try_as_plain_ram().ok()?.to_scalar::<String>().ok()?.clone();
            Some((key.to_string(), value))
        })
        .collect();

    let mut shapes = graph_shapes(&model).with_context(|| format!("{shown}: reading input/output shapes"))?;
    shapes.output_op = output_op;
    // tract does not read the outputs' declared shapes (nor should it trust them
    // for planning); for naming classes they are what the file says.
    if shapes.output.is_empty() {
        shapes.output = declared_output;
    }
    let input_dt = model.input_fact(0)?.datum_type.concretize();
    if let Some(dt) = input_dt {
        if dt != f32::datum_type() {
            bail!("{shown}: the model input is {dt:?}; edgeseg feeds float32 images; fix: export with a float32 input");
        }
    }
    // Ultralytics exports describe themselves in their own keys; map them to ours.
    let mut effective = props.clone();
    super::ultralytics::translate(&mut effective).with_context(|| format!("model {shown}"))?;
    let meta = meta::resolve(&effective, &shapes, flags).with_context(|| format!("model {shown}"))?;

    let input_shape = match meta.layout {
        meta::Layout::Nchw => [1, meta.channels(), meta.height, meta.width],
        meta::Layout::Nhwc => [1, meta.height, meta.width, meta.channels()],
    };
    let model = model.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), input_shape))?;
    let mut typed = tract_knobs()
        .enter(|| model.into_optimized())
        .with_context(|| {
            format!(
                "{shown}: the graph does not accept an input of shape {input_shape:?}; fix: check --size \
                 (models are usually trained at one size; for U-Nets it must be a multiple of 16)"
            )
        })?;
    let fastpath = if super::fastpath::enabled() {
        super::fastpath::replace(&mut typed).with_context(|| format!("{shown}: swapping in edgeseg's fast ops"))?
    } else {
        super::fastpath::FastpathReport::default()
    };
    let output_shapes = typed
        .output_outlets()?
        .iter()
        .map(|o| {
            let fact = typed.outlet_fact(*o)?;
            fact.shape
                .as_concrete()
                .map(|s| s.to_vec())
                .with_context(|| format!("output shape {:?} is not concrete", fact.shape))
        })
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("{shown}: resolving output shapes"))?;
    let options = RunOptions {
        executor: (threads > 1).then(|| multithread::Executor::multithread(threads)),
        ..Default::default()
    };
    let plan = typed.into_runnable_with_options(&options).with_context(|| format!("{shown}: building the execution plan"))?;
    Ok(Loaded { meta, props, plan, input_shape, output_shapes, opset, half, qop, int8, f32conv, fastpath })
}

/// The tract settings edgeseg plans with, unless the environment sets them.
///
/// `TRACT_DISABLE_DIRECT_SPATIAL`: tract 0.23 computes group-1 3×3 float
/// convolutions with up to 64 input channels as a filter along W instead of
/// im2col + matrix product. On our U-Net (32–64 channels at 256×256) that
/// took 770–860 ms a frame against 460–510 ms with the matrix product, on
/// this project's x86 host; on YOLOv8n-seg and DeepLabV3+ the two were within
/// noise of each other.
fn tract_knobs() -> tract_onnx::tract_core::knobs::KnobScope {
    const DIRECT_SPATIAL: &str = "TRACT_DISABLE_DIRECT_SPATIAL";
    let mut set = vec![];
    if std::env::var_os(DIRECT_SPATIAL).is_none() {
        set.push((DIRECT_SPATIAL, "true"));
    }
    // The knob names are tract's own; if a tract update drops one, plan with its defaults.
    tract_onnx::tract_core::knobs::KnobScope::new(set).unwrap_or_default()
}

/// Input and output dims as declared by the graph (None where symbolic or unknown).
fn graph_shapes(model: &InferenceModel) -> Result<GraphShapes> {
    let dims = |fact: &InferenceFact| -> Vec<Option<usize>> {
        fact.shape.dims().map(|d| d.concretize().and_then(|d| d.as_i64().and_then(|v| usize::try_from(v).ok()))).collect()
    };
    let input = dims(model.input_fact(0)?);
    let output = if model.output_outlets()?.is_empty() { vec![] } else { dims(model.output_fact(0)?) };
    // Output dims that the file does not declare can often be inferred once the
    // input is fixed; a symbolic analysis here would double the load time, so
    // the classes check falls back to the declared shape only.
    Ok(GraphShapes { input, output, output_op: None })
}

/// The first output's dims as the file declares them (`None` for a symbolic or
/// absent dim; empty when the file declares no shape).
fn declared_output_dims(graph: &tract_onnx::pb::GraphProto) -> Vec<Option<usize>> {
    graph.output.first().map(declared_dims).unwrap_or_default()
}

/// A value's dims as the file declares them (`None` for a symbolic or absent dim;
/// empty when it declares no tensor shape).
pub(crate) fn declared_dims(v: &tract_onnx::pb::ValueInfoProto) -> Vec<Option<usize>> {
    use tract_onnx::pb::{tensor_shape_proto::dimension::Value as Dim, type_proto::Value};
    let Some(Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else { return Vec::new() };
    let Some(shape) = &t.shape else { return Vec::new() };
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Dim::DimValue(n)) => usize::try_from(*n).ok(),
            _ => None,
        })
        .collect()
}

/// Ops that move, reshape, resample or re-encode values without changing what
/// they mean: a probability stays a probability through them.
const VALUE_KEEPING_OPS: &[&str] = &[
    "Identity",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Cast",
    "Resize",
    "Upsample",
    "Slice",
    "QuantizeLinear",
    "DequantizeLinear",
];

/// The op type and node name of the last node before the graph's first output
/// that changes values (walking back over `VALUE_KEEPING_OPS` along their first
/// input). `None` when the output is a graph input or an initializer.
fn last_value_op(graph: &tract_onnx::pb::GraphProto) -> Option<(String, String)> {
    let mut name = graph.output.first()?.name.as_str();
    // Each step moves to an earlier node; a hostile file with a cycle stops at the node count.
    for _ in 0..=graph.node.len() {
        let node = graph.node.iter().find(|n| n.output.iter().any(|o| o == name))?;
        let standard = node.domain.is_empty() || node.domain == "ai.onnx";
        if !standard || !VALUE_KEEPING_OPS.contains(&node.op_type.as_str()) {
            return Some((node.op_type.clone(), node.name.clone()));
        }
        name = node.input.first()?.as_str();
    }
    None
}

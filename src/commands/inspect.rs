//! `edgeseg inspect-model`: what a model file is and how tract will run it.

use crate::cli::InspectArgs;
use crate::model::graph_stats::graph_stats;
use crate::model::Model;
use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    let model = Model::load(&args.model, &args.model_flags.overrides()?)?;
    let stats = graph_stats(model.graph());
    let file_bytes = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    let mut props: Vec<(&String, &String)> = model.props.iter().collect();
    props.sort();
    if args.json {
        let value = json!({
            "path": args.model.display().to_string(),
            "file_bytes": file_bytes,
            "opset": model.opset,
            "input_shape": model.input_shape,
            "output_shapes": model.output_shapes,
            "metadata_props": props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
            "resolved": model.meta,
            "graph": stats,
            "compute_precision": stats.compute_precision(),
            "int8_rewrite": {
                "convolutions": model.int8.fused,
                "requantize_fused": model.int8.requantize_fused,
                "relu_fused": model.int8.relu_fused,
                "hardswish_fused": model.int8.hardswish_fused,
                "silu_fused": model.int8.silu_fused,
                "code_edges": model.int8.code_edges,
                "kernel": crate::linalg::kernels().int8_gemm.name,
                "left_in_float": model.int8.skipped.iter().map(|(n, why)| json!({"node": n, "reason": why})).collect::<Vec<_>>(),
            },
            "half_to_f32": {"tensors": model.half.tensors, "casts": model.half.casts, "types": model.half.types, "left_in_half": model.half.left},
            "qoperator_to_qdq": {"rewritten": model.qop.rewritten.iter().map(|(op, n)| (op.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(), "framed": model.qop.framed, "silu": model.qop.silu},
            "f32_rewrite": {
                "convolutions": model.f32conv.fused,
                "depthwise": model.f32conv.depthwise,
                "relu_fused": model.f32conv.relu_fused,
                "hardswish_fused": model.f32conv.hardswish_fused,
                "silu_fused": model.f32conv.silu_fused,
                "concat_fused": model.f32conv.concat_fused,
                "left_to_tract": model.f32conv.skipped.iter().map(|(n, why)| json!({"node": n, "reason": why})).collect::<Vec<_>>(),
            },
            "fastpath": {"resize": model.fastpath.resize, "softmax": model.fastpath.softmax, "quantize": model.fastpath.quantize, "avgpool": model.fastpath.avgpool, "maxpool": model.fastpath.maxpool},
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let m = &model.meta;
    println!("model        {} ({} bytes, opset {})", args.model.display(), file_bytes, model.opset);
    println!("name         {}", m.name);
    println!("task         {:?}", m.task);
    println!("input        f32 {:?} ({}, {}x{}, {:?})", model.input_shape, m.layout, m.width, m.height, m.color);
    for (i, s) in model.output_shapes.iter().enumerate() {
        let role = match (m.task, s.len()) {
            (crate::model::Task::Semantic, _) if s.get(1) == Some(&1) || s.get(3) == Some(&1) && m.layout == crate::model::meta::Layout::Nhwc => {
                format!("activation {:?}: {}; foreground above {}", m.activation, m.activation_reason, m.binary_threshold)
            }
            (crate::model::Task::Semantic, _) => format!("activation {:?}: {}", m.activation, m.activation_reason),
            (crate::model::Task::Instance, 3) => "detections: boxes, class scores, mask coefficients".to_string(),
            (crate::model::Task::Instance, _) => "mask prototypes".to_string(),
        };
        println!("output {i}     f32 {s:?} ({role})");
    }
    println!("classes      {}", m.classes.join(", "));
    println!("normalise    mean {:?} std {:?} (0..1 scale), resize {:?}", m.mean, m.std, m.resize);
    let origins: Vec<String> = m.origins.iter().map(|(k, o)| format!("{k}={o:?}").to_lowercase()).collect();
    println!("taken from   {}", origins.join(" "));
    println!("metadata     {} entries", props.len());
    for (k, v) in &props {
        println!("  {k} = {v}");
    }
    println!("graph        {} nodes after optimisation", stats.nodes);
    let mut ops: Vec<(&String, &usize)> = stats.ops.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, n) in ops {
        println!("  {n:>5}  {op}");
    }
    println!(
        "compute      {} ({} int8 / {} float heavy ops, {} quantize/dequantize ops)",
        stats.compute_precision(),
        stats.int8_compute_ops,
        stats.float_compute_ops,
        stats.quant_boundary_ops
    );
    let h = &model.half;
    if h.changed() {
        println!(
            "half         float16/bfloat16 graph computed in float32: {} tensor(s), {} Cast(s) and {} declared type(s) widened at load",
            h.tensors, h.casts, h.types
        );
        for name in &h.left {
            println!("  left in half (stored outside the file): {name}");
        }
    }
    let q = &model.qop;
    if !q.rewritten.is_empty() {
        let ops: Vec<String> = q.rewritten.iter().map(|(op, n)| format!("{n} {op}")).collect();
        println!(
            "qoperator    {} written as DequantizeLinear -> op -> QuantizeLinear at load ({} QLinearMul(x, QLinearSigmoid(x)) as one SiLU chain), {} op(s) on codes framed the same way",
            ops.join(", "),
            q.silu,
            q.framed
        );
    }
    let r = &model.int8;
    if r.fused > 0 || !r.skipped.is_empty() {
        println!(
            "int8         {} convolution(s) run by edgeseg's int8 kernels ({}), {} with the output's re-quantization and {} with a Relu, {} with a HardSwish and {} with a SiLU fused",
            r.fused,
            crate::linalg::kernels().int8_gemm.name,
            r.requantize_fused,
            r.relu_fused,
            r.hardswish_fused,
            r.silu_fused
        );
        if r.code_edges > 0 {
            println!("  {} of them hand uint8 codes to the int8 convolutions that read them (no float tensor in between)", r.code_edges);
        }
        for (node, why) in &r.skipped {
            println!("  in float: {node}: {why}");
        }
    }
    let c = &model.f32conv;
    if c.fused > 0 {
        println!(
            "float conv   {} convolution(s) run by edgeseg's float kernels ({}; {} depthwise), {} with a Relu, {} with a HardSwish, {} with a SiLU and {} with their input Concat fused (EDGESEG_FCONV=off for tract's own)",
            c.fused, crate::linalg::kernels().name, c.depthwise, c.relu_fused, c.hardswish_fused, c.silu_fused, c.concat_fused
        );
        for (node, why) in &c.skipped {
            println!("  with tract: {node}: {why}");
        }
    }
    let f = &model.fastpath;
    if f.resize + f.softmax + f.quantize + f.avgpool + f.maxpool > 0 {
        println!(
            "fast ops     {} Resize, {} Softmax, {} QuantizeLinear, {} AveragePool and {} MaxPool run by edgeseg's equivalents (tract's values, the softmax within 4 ulp; EDGESEG_FASTPATH=off for tract's own)",
            f.resize, f.softmax, f.quantize, f.avgpool, f.maxpool
        );
    }
    Ok(ExitCode::SUCCESS)
}

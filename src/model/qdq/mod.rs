//! Int8 execution of QDQ-quantized models.
//!
//! tract 0.23 reads a QDQ model (QuantizeLinear/DequantizeLinear around each
//! Conv) as float convolutions between fake-quantization ops. This module makes
//! those convolutions compute in integers, inside tract's plan:
//! 1. `rewrite` replaces each `DQ(Q(x)) → Conv(DQ(w), DQ(b)) [→ Q → DQ] [→ Relu]`
//!    in the ONNX graph by one `EdgesegInt8Conv` node, before tract translates it;
//! 2. `register` teaches tract's ONNX front end that node: it becomes an
//!    [`op::Int8Conv`], a tract op with its own int8 kernels (`kernel`), packed
//!    weights (`pack`) and the layout of `geometry`, run on tract's executor.
//!
//! Everything else in the graph (the remaining Q/DQ pairs, activations, pooling)
//! stays with tract. Set `EDGESEG_INT8=off` to load a QDQ model the way plain
//! tract does (float compute), e.g. to compare the two.

pub mod channels;
pub mod code_edges;
pub mod geometry;
pub mod op;
#[cfg(test)]
pub(crate) mod op_tests;
pub mod pack;
pub mod rewrite;

pub use geometry::ConvAttrs;
pub use rewrite::{rewrite, RewriteReport};

use op::{Epilogue, Int8Conv, Int8ConvParts, Int8ConvSpec, QuantParams};
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// Whether the int8 rewrite is on (it is, unless `EDGESEG_INT8=off`).
pub fn enabled() -> bool {
    !matches!(std::env::var("EDGESEG_INT8").as_deref(), Ok("off") | Ok("0") | Ok("false"))
}

/// Add the `EdgesegInt8Conv` node type to an ONNX front end.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(rewrite::OP_TYPE, build);
}

fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let requantize = match node.get_attr_opt::<f32>("y_scale")? {
        Some(scale) => Some(QuantParams { scale, zero_point: node.get_attr::<i64>("y_zero_point")? as u8 }),
        None => None,
    };
    let spec = Int8ConvNode {
        inputs: node_inputs(node)?,
        attrs: node_conv_attrs(node)?,
        cout: node.get_attr("cout")?,
        transpose: node.get_attr::<i64>("transpose")? != 0,
        input: QuantParams { scale: node.get_attr("x_scale")?, zero_point: node.get_attr::<i64>("x_zero_point")? as u8 },
        epilogue: node_epilogue(node, requantize)?,
        codes: match node.get_attr_opt::<f32>("code_scale")? {
            Some(scale) => Some(QuantParams { scale, zero_point: node.get_attr::<i64>("code_zero_point")? as u8 }),
            None => None,
        },
    };
    Ok((expand(spec), vec![]))
}

/// The geometry attributes our rewrites write on their nodes (float and int8 alike).
pub(crate) fn node_conv_attrs(node: &NodeProto) -> TractResult<ConvAttrs> {
    let pair = |name: &str| -> TractResult<[usize; 2]> {
        let v = node.get_attr_vec::<usize>(name)?;
        ensure!(v.len() == 2, "{name} must have 2 values");
        Ok([v[0], v[1]])
    };
    let pads = node.get_attr_vec::<usize>("pads")?;
    ensure!(pads.len() == 4, "pads must have 4 values");
    Ok(ConvAttrs { group: node.get_attr("group")?, kernel: pair("kernel_shape")?, strides: pair("strides")?, dilations: pair("dilations")?, pads: [pads[0], pads[1], pads[2], pads[3]] })
}

/// How many inputs a rewritten node concatenates on the channel axis (attribute `inputs`, default 1).
pub(crate) fn node_inputs(node: &NodeProto) -> TractResult<usize> {
    let inputs = node.get_attr_opt::<i64>("inputs")?.unwrap_or(1);
    usize::try_from(inputs).ok().filter(|&n| n >= 1).context("inputs must be at least 1")
}

/// The fused activation attributes of a rewritten node.
pub(crate) fn node_epilogue(node: &NodeProto, requantize: Option<QuantParams>) -> TractResult<Epilogue> {
    Ok(Epilogue {
        requantize,
        relu: node.get_attr::<i64>("relu")? != 0,
        silu: node.get_attr_opt::<i64>("silu")?.unwrap_or(0) != 0,
        hardswish: match node.get_attr_opt::<f32>("hardswish_alpha")? {
            Some(alpha) => Some((alpha, node.get_attr::<f32>("hardswish_beta")?)),
            None => None,
        },
        sigmoid_codes: match node.get_attr_opt::<f32>("sigmoid_scale")? {
            Some(scale) => Some(QuantParams { scale, zero_point: u8::try_from(node.get_attr::<i64>("sigmoid_zero_point")?).context("sigmoid_zero_point")? }),
            None => None,
        },
    })
}

/// The input size `[h, w]` and total channels of a rewritten node's inputs, which a
/// fused Concat joins on the channel axis (so they must agree in batch and size).
pub(crate) fn concatenated_input(prefix: &str, model: &TypedModel, xs: &[OutletId]) -> TractResult<([usize; 2], usize)> {
    let shape = model.outlet_fact(xs[0])?.shape.to_tvec();
    ensure!(shape.len() == 4, "{prefix}: convolution input of rank {}", shape.len());
    let (h, w) = (shape[2].to_usize()?, shape[3].to_usize()?);
    let mut cin = 0;
    for x in xs {
        let s = model.outlet_fact(*x)?.shape.to_tvec();
        ensure!(s.len() == 4 && s[0] == shape[0] && s[2].to_usize()? == h && s[3].to_usize()? == w, "{prefix}: concatenated inputs {s:?} and {shape:?} differ in batch or size");
        cin += s[1].to_usize()?;
    }
    Ok(([h, w], cin))
}

/// The parsed node, before the input size is known.
#[derive(Clone, Debug)]
struct Int8ConvNode {
    /// Float inputs, concatenated on the channel axis (more than one: a fused Concat).
    inputs: usize,
    attrs: ConvAttrs,
    cout: usize,
    transpose: bool,
    input: QuantParams,
    epilogue: Epilogue,
    /// Store the output as uint8 codes of these parameters (see `channels`).
    codes: Option<QuantParams>,
}

impl Int8ConvNode {
    fn output_hw(&self, cin: usize, h: usize, w: usize) -> TractResult<[usize; 2]> {
        if self.transpose {
            let [kh, kw] = self.attrs.kernel;
            return Ok([h * kh, w * kw]);
        }
        Ok(geometry::ConvGeometry::new(self.attrs.clone(), cin, self.cout, [h, w])?.out_hw)
    }
}

impl Expansion for Int8ConvNode {
    fn name(&self) -> StaticName {
        "EdgesegInt8Conv".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, self.inputs + 3)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, if self.codes.is_some() { u8::datum_type() } else { f32::datum_type() })?;
        s.equals(&outputs[0].rank, 4)?;
        s.given(&inputs[0].shape, move |s, shape| {
            if let (Ok(c), Ok(h), Ok(w)) = (shape[1].to_usize(), shape[2].to_usize(), shape[3].to_usize()) {
                // The output size does not depend on the channels; with a fused
                // Concat this input holds only some of them, so plan as one group's worth.
                let c = if self.inputs > 1 { self.attrs.group } else { c };
                let [ho, wo] = self.output_hw(c, h, w)?;
                s.equals(&outputs[0].shape, ShapeFactoid::from(tvec![shape[0].clone(), self.cout.to_dim(), ho.to_dim(), wo.to_dim()]))?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let (xs, consts) = inputs.split_at(self.inputs);
        let ([h, w], cin) = concatenated_input(prefix, model, xs)?;
        let konst = |i: usize, what: &str| -> TractResult<Arc<Tensor>> {
            model.outlet_fact(consts[i - 1])?.konst.clone().with_context(|| format!("{prefix}: {what} must be constant"))
        };
        let weights = konst(1, "weights")?;
        let scales = konst(2, "weight scales")?;
        let bias = konst(3, "bias")?;
        let ws = weights.shape();
        ensure!(ws.len() == 4, "{prefix}: weights of rank {}", ws.len());
        let parts = Int8ConvParts {
            attrs: self.attrs.clone(),
            transpose: self.transpose,
            input: self.input,
            weights: weights.try_as_plain_ram()?.as_slice::<i8>()?,
            weight_shape: [ws[0], ws[1], ws[2], ws[3]],
            weight_scales: scales.try_as_plain_ram()?.as_slice::<f32>()?,
            bias: Some(bias.try_as_plain_ram()?.as_slice::<f32>()?),
            epilogue: self.epilogue,
        };
        let mut spec = Int8ConvSpec::new(&parts, cin, [h, w]).with_context(|| format!("{prefix}: preparing the int8 convolution"))?;
        if let Some(q) = self.codes {
            spec.emit_codes(q).with_context(|| format!("{prefix}: storing codes"))?;
        }
        model.wire_node(prefix, Int8Conv { spec: Arc::new(spec) }, xs)
    }
}

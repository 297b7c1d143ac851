//! The `EdgesegF32Conv` ONNX node: parsed by tract's front end, wired as an [`F32Conv`]
//! once the input size is known.

use super::op::{F32Conv, F32ConvParts, F32ConvSpec};
use crate::model::qdq::geometry::{ConvAttrs, ConvGeometry};
use crate::model::qdq::op::Epilogue;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

pub(super) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let pair = |name: &str| -> TractResult<[usize; 2]> {
        let v = node.get_attr_vec::<usize>(name)?;
        ensure!(v.len() == 2, "{name} must have 2 values");
        Ok([v[0], v[1]])
    };
    let pads = node.get_attr_vec::<usize>("pads")?;
    ensure!(pads.len() == 4, "pads must have 4 values");
    let inputs = usize::try_from(node.get_attr::<i64>("inputs")?).ok().filter(|&n| n >= 1).context("inputs must be at least 1")?;
    let spec = F32ConvNode {
        inputs,
        attrs: ConvAttrs { group: node.get_attr("group")?, kernel: pair("kernel_shape")?, strides: pair("strides")?, dilations: pair("dilations")?, pads: [pads[0], pads[1], pads[2], pads[3]] },
        cout: node.get_attr("cout")?,
        epilogue: Epilogue {
            requantize: None,
            relu: node.get_attr::<i64>("relu")? != 0,
            silu: node.get_attr_opt::<i64>("silu")?.unwrap_or(0) != 0,
            hardswish: match node.get_attr_opt::<f32>("hardswish_alpha")? {
                Some(alpha) => Some((alpha, node.get_attr::<f32>("hardswish_beta")?)),
                None => None,
            },
        },
    };
    Ok((expand(spec), vec![]))
}

/// The parsed node, before the input size is known.
#[derive(Clone, Debug)]
struct F32ConvNode {
    /// Inputs concatenated on the channel axis (more than one: a fused Concat).
    inputs: usize,
    attrs: ConvAttrs,
    cout: usize,
    epilogue: Epilogue,
}

impl Expansion for F32ConvNode {
    fn name(&self) -> StaticName {
        "EdgesegF32Conv".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, self.inputs + 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 4)?;
        s.given(&inputs[0].shape, move |s, shape| {
            if let (Ok(h), Ok(w)) = (shape[2].to_usize(), shape[3].to_usize()) {
                // The output size does not depend on the channels: plan as one group's worth.
                let [ho, wo] = ConvGeometry::new(self.attrs.clone(), self.attrs.group, self.cout, [h, w])?.out_hw;
                s.equals(&outputs[0].shape, ShapeFactoid::from(tvec![shape[0].clone(), self.cout.to_dim(), ho.to_dim(), wo.to_dim()]))?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let (xs, consts) = inputs.split_at(self.inputs);
        let shape = model.outlet_fact(xs[0])?.shape.to_tvec();
        ensure!(shape.len() == 4, "{prefix}: convolution input of rank {}", shape.len());
        let (h, w) = (shape[2].to_usize()?, shape[3].to_usize()?);
        let mut cin = 0;
        for x in xs {
            let s = model.outlet_fact(*x)?.shape.to_tvec();
            ensure!(s.len() == 4 && s[0] == shape[0] && s[2].to_usize()? == h && s[3].to_usize()? == w, "{prefix}: concatenated inputs {s:?} and {shape:?} differ in batch or size");
            cin += s[1].to_usize()?;
        }
        let konst = |i: usize, what: &str| -> TractResult<Arc<Tensor>> { model.outlet_fact(consts[i])?.konst.clone().with_context(|| format!("{prefix}: {what} must be constant")) };
        let weights = konst(0, "weights")?;
        let bias = konst(1, "bias")?;
        let ws = weights.shape();
        ensure!(ws.len() == 4, "{prefix}: weights of rank {}", ws.len());
        let parts = F32ConvParts {
            attrs: self.attrs.clone(),
            weights: weights.try_as_plain_ram()?.as_slice::<f32>()?,
            weight_shape: [ws[0], ws[1], ws[2], ws[3]],
            bias: bias.try_as_plain_ram()?.as_slice::<f32>()?,
            epilogue: self.epilogue,
        };
        let spec = F32ConvSpec::new(&parts, cin, [h, w]).with_context(|| format!("{prefix}: preparing the float convolution"))?;
        model.wire_node(prefix, F32Conv { spec: Arc::new(spec) }, xs)
    }
}

//! The `EdgesegF32Conv` ONNX node: parsed by tract's front end, wired as an [`F32Conv`]
//! once the input size is known.

use super::op::{F32Conv, F32ConvParts, F32ConvSpec};
use crate::model::qdq::geometry::{ConvAttrs, ConvGeometry};
use crate::model::qdq::op::Epilogue;
use crate::model::qdq::{concatenated_input, node_conv_attrs, node_epilogue, node_inputs};
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

pub(super) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = F32ConvNode { inputs: node_inputs(node)?, attrs: node_conv_attrs(node)?, cout: node.get_attr("cout")?, epilogue: node_epilogue(node, None)? };
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
        let ([h, w], cin) = concatenated_input(prefix, model, xs)?;
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

//! Float convolutions computed by edgeseg's own kernels (`crate::linalg::f32conv`).
//!
//! tract 0.23 runs a float convolution as im2col + its matrix-product kernels;
//! on this project's AVX-512 benchmark machine those reached about 60 % of
//! onnxruntime's speed on the same layers. This module takes over float `Conv`
//! nodes at load time, the way `qdq` takes over the quantized ones:
//! 1. `rewrite` replaces each `Conv(w, b) [→ Relu | HardSwish | SiLU]` with
//!    constant weights by one `EdgesegF32Conv` node, before tract translates it;
//! 2. `register` teaches tract's ONNX front end that node: it becomes an
//!    [`op::F32Conv`] with the int8 path's layout (`qdq::geometry`) and float kernels.
//!
//! It is on where the selected kernel set has float convolutions (AVX-512, NEON;
//! elsewhere tract's own kernels are kept). Set `EDGESEG_FCONV=off` to leave every
//! float convolution to tract, e.g. to compare the two.

mod node;
pub mod op;
#[cfg(test)]
mod op_tests;
pub mod rewrite;
mod winograd;

pub use rewrite::{rewrite, FloatRewriteReport};

/// Whether the float rewrite runs: the kernel set has the kernels, and `EDGESEG_FCONV` is not off.
pub fn enabled() -> bool {
    crate::linalg::kernels().f32conv.is_some() && !matches!(std::env::var("EDGESEG_FCONV").as_deref(), Ok("off") | Ok("0") | Ok("false"))
}

/// Add the `EdgesegF32Conv` node type to an ONNX front end.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(rewrite::OP_TYPE, node::build);
}

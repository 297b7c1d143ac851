//! Float convolutions computed by edgeseg's own AVX-512 kernels.
//!
//! tract 0.23 runs a float convolution as im2col + its matrix-product kernels;
//! on this project's benchmark machine those reached about 60 % of onnxruntime's
//! speed on the same layers. This module takes over float `Conv` nodes at load
//! time, the way `qdq` takes over the quantized ones:
//! 1. `rewrite` replaces each `Conv(w, b) [→ Relu | HardSwish | SiLU]` with
//!    constant weights by one `EdgesegF32Conv` node, before tract translates it;
//! 2. `register` teaches tract's ONNX front end that node: it becomes an
//!    [`op::F32Conv`] with the int8 path's layout (`qdq::geometry`) and float kernels.
//!
//! It is on only where the CPU has AVX-512 F (elsewhere, e.g. on the Pi's NEON,
//! tract's own kernels are kept). Set `EDGESEG_FCONV=off` to leave every float
//! convolution to tract, e.g. to compare the two.

#[cfg(target_arch = "x86_64")]
pub mod kernel_x86;
#[cfg(target_arch = "x86_64")]
mod node;
#[cfg(target_arch = "x86_64")]
pub mod op;
#[cfg(all(test, target_arch = "x86_64"))]
mod op_tests;
pub mod rewrite;

pub use rewrite::{rewrite, FloatRewriteReport};

/// Whether the float rewrite runs: the CPU has the kernels, and `EDGESEG_FCONV` is not off.
pub fn enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    if kernel_x86::available() {
        return !matches!(std::env::var("EDGESEG_FCONV").as_deref(), Ok("off") | Ok("0") | Ok("false"));
    }
    false
}

/// Add the `EdgesegF32Conv` node type to an ONNX front end (where the kernels exist).
pub fn register(onnx: &mut tract_onnx::Onnx) {
    #[cfg(target_arch = "x86_64")]
    onnx.op_register.insert(rewrite::OP_TYPE, node::build);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = onnx;
}

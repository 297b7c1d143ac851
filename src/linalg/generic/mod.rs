//! The portable definitions: plain Rust that the compiler vectorises for the
//! target's baseline, the reference every instruction set's kernels are tested
//! against, and what runs where no better kernel exists.

pub mod ew;
pub mod int8;

use super::Kernels;

/// The portable set.
pub fn set() -> Kernels {
    Kernels { isa: crate::linalg::Isa::Generic, name: "generic", int8_gemm: int8::GEMM, ew: ew::ELEMENTWISE, f32conv: None }
}

//! edgeseg's compute kernels, by instruction set, and the one place that picks them.
//!
//! Laid out as tract-linalg lays out its own: [`generic`] holds the portable
//! definitions (plain Rust) that every other kernel is tested against, `x86_64`
//! the AVX2 and AVX-512 kernels, `arm64` the NEON (Cortex-A72, Pi 4) and
//! dot-product (Cortex-A76, Pi 5) ones. [`kernels`] picks one [`Kernels`] set
//! for this CPU, once; everything else calls through it.
//!
//! `EDGESEG_ISA=NAME` picks a lower set than the best the CPU has (`generic`,
//! `avx2`, `avx512`, `neon`, `neon-dotprod`), to compare them or to test one on
//! a machine that has a better one.

pub mod epilogue;
pub mod f32conv;
#[cfg(test)]
mod ew_tests;
pub mod generic;
pub mod int8;
#[cfg(test)]
mod int8_tests;

#[cfg(target_arch = "aarch64")]
pub mod arm64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use std::sync::OnceLock;

/// The instruction sets edgeseg has kernels for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Generic,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512 F, BW, VL and VNNI.
    Avx512,
    /// aarch64 NEON (Cortex-A72, A57).
    Neon,
    /// aarch64 NEON with the dot-product extension (Cortex-A76, A78AE).
    NeonDotprod,
}

/// One instruction set's kernels.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub isa: Isa,
    /// The set's name (`EDGESEG_ISA`, logs, `inspect-model`).
    pub name: &'static str,
    /// The int8 convolutions' matrix-product tiles.
    pub int8_gemm: int8::Gemm,
    /// The element loops around them (quantizing, finishing, depthwise rows).
    pub ew: int8::Elementwise,
    /// The float convolutions, where the set has kernels that beat tract's
    /// (elsewhere `crate::model::fconv` leaves float convolutions to tract).
    pub f32conv: Option<f32conv::F32Conv>,
}

/// Every kernel set this CPU can run, best first; the last is [`generic`]'s.
pub fn available() -> Vec<Kernels> {
    let mut sets = Vec::new();
    #[cfg(target_arch = "x86_64")]
    sets.extend(x86_64::sets());
    #[cfg(target_arch = "aarch64")]
    sets.extend(arm64::sets());
    sets.push(generic::set());
    sets
}

/// The kernels edgeseg runs: the best set of [`available`], or the one
/// `EDGESEG_ISA` names.
pub fn kernels() -> &'static Kernels {
    static SELECTED: OnceLock<Kernels> = OnceLock::new();
    SELECTED.get_or_init(|| {
        let sets = available();
        match std::env::var("EDGESEG_ISA") {
            Ok(name) if !name.is_empty() => match sets.iter().find(|s| s.name == name) {
                Some(set) => *set,
                None => {
                    let names: Vec<&str> = sets.iter().map(|s| s.name).collect();
                    log::warn!("EDGESEG_ISA={name}: this CPU runs {}; using {}", names.join(", "), sets[0].name);
                    sets[0]
                }
            },
            _ => sets[0],
        }
    })
}

//! aarch64 kernels: NEON for every board (Cortex-A72 in the Pi 4, A57 in the
//! Jetson Nano), and the dot-product extension's `sdot` where the core has it
//! (Cortex-A76 in the Pi 5, A78AE in the Jetson Orin).

pub mod ew;
pub mod f32conv;
pub mod int8_sdot;
pub mod int8_smull;

use super::int8::{ActivationCode, Gemm, WeightLayout};
use super::Kernels;

/// The sets this CPU runs, best first.
pub fn sets() -> Vec<Kernels> {
    let mut sets = Vec::new();
    if std::arch::is_aarch64_feature_detected!("dotprod") {
        sets.push(Kernels {
            isa: super::Isa::NeonDotprod,
            name: "neon-dotprod",
            int8_gemm: Gemm { tile: int8_sdot::tile, tile_any: int8_sdot::tile, pair: None, code: ActivationCode::ShiftedSigned, weights: WeightLayout::I8x4, name: "neon-dotprod 8x32 (sdot by element)" },
            ew: ew::ELEMENTWISE,
            f32conv: Some(f32conv::F32CONV),
        });
    }
    sets.push(Kernels {
        isa: super::Isa::Neon,
        name: "neon",
        int8_gemm: Gemm { tile: int8_smull::tile, tile_any: int8_smull::tile_any, pair: None, code: ActivationCode::ShiftedSigned, weights: WeightLayout::I8x4, name: "neon 8x32 (smull+smlal, sadalp)" },
        ew: ew::ELEMENTWISE,
        f32conv: Some(f32conv::F32CONV),
    });
    sets
}

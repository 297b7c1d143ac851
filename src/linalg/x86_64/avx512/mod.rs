//! AVX-512 (F, BW, VL) with VNNI: the int8 tiles on `vpdpbusd`, the element loops
//! 16 lanes at a time; with VBMI also the code-table lookups (`vpermi2b`) and
//! the depthwise kernel's byte gathers (`vpermb`).

pub mod codes;
pub mod depthwise;
pub mod f32conv;
pub mod simd;
pub mod tile;

use crate::linalg::int8::{ActivationCode, Elementwise, Gemm, WeightLayout};
use crate::linalg::Kernels;

/// Whether this CPU runs this set.
pub fn available() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni")
}

/// Whether it also has VBMI (byte permutes).
pub fn has_vbmi() -> bool {
    std::arch::is_x86_feature_detected!("avx512vbmi")
}

pub fn set() -> Kernels {
    let vbmi = has_vbmi();
    Kernels {
        isa: crate::linalg::Isa::Avx512, name: "avx512",
        int8_gemm: Gemm { tile: tile::vnni_tile, tile_any: tile::vnni_tile, pair: Some(tile::vnni_pair), code: ActivationCode::Unsigned, weights: WeightLayout::I8x4, name: "avx512vnni 8x64 (two 4x64 passes), 8x32" },
        ew: Elementwise {
            quantize_u8: simd::quantize_u8,
            quantize_x4: simd::quantize_x4,
            interleave_x4: simd::interleave_x4,
            finish_rows: simd::finish_rows,
            finish_codes: if vbmi { codes::finish_rows_codes } else { codes::finish_rows_codes_scalar_lookup },
            finish_table: simd::requantized_table,
            depthwise_row: simd::depthwise_row,
            depthwise_vnni: vbmi,
            copy_short: Some(simd::copy_short),
        },
        f32conv: Some(f32conv::F32CONV),
    }
}

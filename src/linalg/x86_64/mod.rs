//! x86-64 kernels: AVX-512 (with VNNI's `vpdpbusd` for int8) and AVX2 + FMA,
//! what most line PCs have.

pub mod avx2;
pub mod avx2_ew;
pub mod avx2_f32conv;
pub mod avx512;

use super::Kernels;

/// The sets this CPU runs, best first.
pub fn sets() -> Vec<Kernels> {
    let mut sets = Vec::new();
    if avx512::available() {
        sets.push(avx512::set());
    }
    if avx2::available() {
        sets.push(avx2::set());
    }
    sets
}

//! What every kernel set computes around the dot products, defined once here in
//! plain Rust: quantizing a float to uint8 as ONNX's `QuantizeLinear` does, and a
//! convolution's epilogue (the output's requantization, then Relu, HardSwish or
//! SiLU). The vector kernels of each instruction set compute these same values,
//! bit for bit (the tests in `ew_tests` hold them to it), except AVX-512's SiLU,
//! whose reciprocal is `vrcp14ps` and one Newton step (within an ulp).

/// Per-tensor uint8 quantization parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: u8,
}

/// What happens to each output value after scale and bias.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Epilogue {
    /// The graph's `QuantizeLinear → DequantizeLinear` on the output, fused.
    pub requantize: Option<QuantParams>,
    pub relu: bool,
    /// The graph's `x · HardSigmoid(x)` (HardSwish), with HardSigmoid's
    /// `alpha` and `beta`, computed as tract does: `x · max(min(x·α + β, 1), 0)`.
    pub hardswish: Option<(f32, f32)>,
    /// The graph's `x · Sigmoid(x)` (SiLU), with [`exp`] below.
    pub silu: bool,
    /// With `silu`: the sigmoid is rounded to these uint8 codes before the product, as
    /// QOperator graphs compute it (`QLinearMul(x, QLinearSigmoid(x))`). Computed only
    /// through the [`FinishTable`], by the portable code, on every instruction set.
    pub sigmoid_codes: Option<QuantParams>,
}

impl Epilogue {
    #[inline(always)]
    pub fn apply(&self, v: f32) -> f32 {
        let v = match self.requantize {
            Some(q) => (f32::from(quantize(v, q.scale, f32::from(q.zero_point))) - f32::from(q.zero_point)) * q.scale,
            None => v,
        };
        self.activate(v)
    }

    /// Relu, HardSwish and SiLU, as set.
    #[inline(always)]
    pub fn activate(&self, v: f32) -> f32 {
        let v = if self.relu { v.max(0.0) } else { v };
        let v = match self.hardswish {
            // min then max, as tract's HardSigmoid chain (clamp would differ on NaN).
            #[allow(clippy::manual_clamp)]
            Some((alpha, beta)) => v * (v * alpha + beta).min(1.0).max(0.0),
            None => v,
        };
        match (self.silu, self.sigmoid_codes) {
            (true, None) => silu(v),
            (true, Some(q)) => {
                let zp = f32::from(q.zero_point);
                let sigmoid = 1.0 / (1.0 + exp(-v));
                v * ((f32::from(quantize(sigmoid, q.scale, zp)) - zp) * q.scale)
            }
            (false, _) => v,
        }
    }
}

/// The finished value of every requantized output code `q`: the epilogue's
/// activation of `(q − zp) · scale`, as one instruction set's lane code computes
/// it (`crate::linalg::int8::Elementwise::finish_table`), so that a lookup in it
/// equals finishing. Worth it for SiLU, whose exp costs more than a lookup.
#[derive(Clone, Debug)]
pub struct FinishTable(pub [f32; 256]);

/// Entry `q`: the code the next convolution reads for a sum that requantizes to
/// `q`. Built from one set's [`FinishTable`] and its quantizer, so a lookup gives
/// the codes that set's float path stores, bit for bit.
#[derive(Clone, Debug)]
pub struct CodeTable(pub [u8; 256]);

/// `x · 1 / (1 + exp(-x))`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x * (1.0 / (1.0 + exp(-x)))
}

/// ONNX QuantizeLinear to uint8: `saturate(round_half_to_even(x / scale) + zp)`.
#[inline(always)]
pub fn quantize(x: f32, scale: f32, zero_point: f32) -> u8 {
    // Clamping before rounding changes nothing (the result saturates anyway) and
    // keeps |v| < 2^22, where adding and removing 1.5 × 2^23 rounds half to even
    // in the default rounding mode: this vectorises on every SIMD level, where
    // `round_ties_even` is a libm call without SSE4.1. NaN ends as 0.
    let v = (x / scale).clamp(-1024.0, 1024.0);
    const MAGIC: f32 = 12_582_912.0;
    let r = (v + MAGIC) - MAGIC;
    (r + zero_point).clamp(0.0, 255.0) as u8
}

/// `exp(x)` as the vector kernels compute it, Cephes' expf: `2^n · p(r)` with
/// `x = n·ln 2 + r`, `n` rounded to nearest even, `r` reduced in two steps
/// (separate multiplies and subtractions), `p` a degree-7 polynomial evaluated
/// with fused multiply-adds; within about 2 ulps of libm over the range that
/// does not saturate. NaN gives `exp(88.37626)`, as min/max with NaN give the
/// other operand.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Not `clamp`: it keeps NaN, and the kernels' min/max give the bound for NaN.
    #[allow(clippy::manual_clamp)]
    let x = x.min(88.37626).max(-87.33654);
    let n = round_ties_even(x * std::f32::consts::LOG2_E);
    let r = x - n * 0.693_359_4;
    let r = r - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = p.mul_add(r, c);
    }
    let p = p.mul_add(r * r, r + 1.0);
    // |n| ≤ 127 after the clamp: 2^n is a normal float, and the product rounds once.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Round half to even for |v| < 2^22 (what `exp`'s argument reduction needs).
#[inline(always)]
fn round_ties_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    if v.abs() < 4_194_304.0 {
        (v + MAGIC) - MAGIC
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        assert_eq!(quantize(0.5, 1.0, 0.0), 0);
        assert_eq!(quantize(1.5, 1.0, 0.0), 2);
        assert_eq!(quantize(2.5, 1.0, 0.0), 2);
        assert_eq!(quantize(-3.0, 1.0, 10.0), 7);
        assert_eq!(quantize(-100.0, 0.1, 128.0), 0);
        assert_eq!(quantize(1e9, 0.1, 128.0), 255);
        assert_eq!(quantize(f32::NAN, 0.1, 3.0), 0);
        assert_eq!(quantize(-0.5, 1.0, 3.0), 3);
        assert_eq!(quantize(-1.5, 1.0, 3.0), 1);
        assert_eq!(quantize(1.4999999, 1.0, 0.0), 1);
        assert_eq!(quantize(252.5, 1.0, 0.0), 252);
    }

    #[test]
    fn exp_is_within_a_few_ulps_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 3, "exp({x}) = {got}, libm {want} ({ulps} ulps)");
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-200.0) > 0.0 && exp(-200.0) < 1e-37);
        assert!(exp(200.0) > 1e38);
    }
}

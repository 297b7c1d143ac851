//! What the convolutions read and write: float planes, or uint8 codes.
//!
//! Between two int8 convolutions the graph holds a float tensor that the second
//! one quantizes again at once: the first dequantized its integers to floats,
//! wrote 4 bytes per value, and the second reads them back and divides by its
//! scale. Where every reader of a convolution's output is an int8 convolution
//! with the same input quantization, the rewrite has the first one store the
//! second one's uint8 codes instead ([`Codes`]): the same integers (the codes
//! are the quantization of the very floats it would have stored), a quarter of
//! the memory traffic, and no quantization on the reading side. On DeepLabV3+
//! the decoder's 304-channel 128×128 tensors were most of the int8 time spent
//! outside the dot products.

use super::op::QuantParams;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// One input tensor's values.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    F32(&'a [f32]),
    /// uint8 codes of the reading convolution's input quantization.
    Codes(&'a [u8]),
}

impl<'a> Part<'a> {
    fn len(&self) -> usize {
        match self {
            Part::F32(x) => x.len(),
            Part::Codes(x) => x.len(),
        }
    }

    fn slice(&self, start: usize, end: usize) -> Part<'a> {
        match *self {
            Part::F32(x) => Part::F32(&x[start..end]),
            Part::Codes(x) => Part::Codes(&x[start..end]),
        }
    }
}

/// The input channels of one image: one tensor's, or several tensors' one
/// after the other (a `Concat` on the channel axis that the rewrite fused).
pub struct Channels<'a> {
    parts: TVec<(Part<'a>, usize)>,
    plane: usize,
}

impl<'a> Channels<'a> {
    /// `x` is `[c, h, w]` with `plane = h × w`.
    pub fn single(x: &'a [f32], plane: usize) -> Channels<'a> {
        Channels::of(&[Part::F32(x)], plane)
    }

    /// Tensors `[c_i, h, w]` concatenated on the channel axis.
    pub fn parts(xs: &[&'a [f32]], plane: usize) -> Channels<'a> {
        Channels::of(&xs.iter().map(|x| Part::F32(x)).collect::<TVec<_>>(), plane)
    }

    /// Float or code tensors `[c_i, h, w]` concatenated on the channel axis.
    pub fn of(xs: &[Part<'a>], plane: usize) -> Channels<'a> {
        Channels { parts: xs.iter().map(|x| (*x, x.len() / plane.max(1))).collect(), plane }
    }

    /// All channels as one `[c, h, w]` float slice, when they are one float tensor.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn as_single(&self) -> Option<&'a [f32]> {
        match self.parts.as_slice() {
            [(Part::F32(x), _)] => Some(x),
            _ => None,
        }
    }

    /// Channel `c`'s `h × w` plane.
    pub(crate) fn plane(&self, mut c: usize) -> Part<'a> {
        for &(x, n) in &self.parts {
            if c < n {
                return x.slice(c * self.plane, (c + 1) * self.plane);
            }
            c -= n;
        }
        // The spec was built for the sum of the parts' channels (checked in eval).
        unreachable!("channel past the concatenated inputs")
    }

    /// Channel `c`'s plane, for readers that take floats only.
    pub(crate) fn float_plane(&self, c: usize) -> &'a [f32] {
        match self.plane(c) {
            Part::F32(x) => x,
            // Their evals check that every input is f32 (`eval_per_image` with `codes_in` false).
            Part::Codes(_) => unreachable!("uint8 codes given to a float-only convolution"),
        }
    }
}

/// An element a convolution stores: a float, or a code of the next one's input.
pub trait Stored: Datum + Copy {
    /// One finished value (a transposed convolution's scattered store).
    fn finished(codes: Option<QuantParams>, v: f32) -> Self;

    /// Call `f` with finished values `done` as stored: themselves for floats,
    /// quantized with `codes` for `u8` (at most `MR × TILE` of them).
    fn with_values(codes: Option<QuantParams>, done: &[f32], f: impl FnOnce(&[Self]));

    /// Have `fill` write a row of finished floats, then store it into `dst`: in
    /// place for floats, through `scratch` for codes.
    fn fill_row(codes: Option<QuantParams>, dst: &mut [Self], scratch: &mut Vec<f32>, fill: impl FnOnce(&mut [f32]));

    /// `dst.copy_from_slice(src)` for the short runs of a tile (at most `TILE` values).
    fn copy_run(src: &[Self], dst: &mut [Self]);

    /// `dst` as codes, for the kernels that finish straight into codes; `None` for floats.
    fn as_codes(dst: &mut [Self]) -> Option<&mut [u8]>;
}

impl Stored for f32 {
    #[inline(always)]
    fn finished(_: Option<QuantParams>, v: f32) -> f32 {
        v
    }

    #[inline(always)]
    fn with_values(_: Option<QuantParams>, done: &[f32], f: impl FnOnce(&[f32])) {
        f(done)
    }

    #[inline(always)]
    fn fill_row(_: Option<QuantParams>, dst: &mut [f32], _: &mut Vec<f32>, fill: impl FnOnce(&mut [f32])) {
        fill(dst)
    }

    #[inline]
    fn copy_run(src: &[f32], dst: &mut [f32]) {
        if let Some(copy) = crate::linalg::kernels().ew.copy_short {
            if src.len() == dst.len() && src.len() <= super::geometry::TILE {
                // Safety: both slices hold `src.len() <= TILE` floats; the set is this CPU's.
                return unsafe { copy(src.as_ptr(), dst.as_mut_ptr(), src.len()) };
            }
        }
        dst.copy_from_slice(src);
    }
    #[inline(always)]
    fn as_codes(_: &mut [f32]) -> Option<&mut [u8]> {
        None
    }
}

impl Stored for u8 {
    #[inline]
    fn finished(codes: Option<QuantParams>, v: f32) -> u8 {
        let q = code_params(codes);
        super::pack::quantize(v, q.scale, f32::from(q.zero_point))
    }

    #[inline]
    fn with_values(codes: Option<QuantParams>, done: &[f32], f: impl FnOnce(&[u8])) {
        let mut buf = [0u8; super::pack::MR * super::geometry::TILE];
        let n = done.len().min(buf.len());
        quantize_codes(code_params(codes), &done[..n], &mut buf[..n]);
        f(&buf[..n])
    }

    #[inline]
    fn fill_row(codes: Option<QuantParams>, dst: &mut [u8], scratch: &mut Vec<f32>, fill: impl FnOnce(&mut [f32])) {
        scratch.resize(dst.len(), 0.0);
        fill(scratch);
        quantize_codes(code_params(codes), scratch, dst);
    }

    #[inline]
    fn copy_run(src: &[u8], dst: &mut [u8]) {
        dst.copy_from_slice(src);
    }

    #[inline(always)]
    fn as_codes(dst: &mut [u8]) -> Option<&mut [u8]> {
        Some(dst)
    }
}

/// The parameters of a spec that stores codes.
#[inline]
fn code_params(codes: Option<QuantParams>) -> QuantParams {
    // A spec stores u8 only with its codes' parameters (`Int8ConvSpec::emit_codes`).
    let Some(q) = codes else { unreachable!("uint8 output without code parameters") };
    q
}

/// Quantize finished floats into codes (as many).
#[inline]
fn quantize_codes(q: QuantParams, src: &[f32], dst: &mut [u8]) {
    let n = src.len().min(dst.len());
    super::pack::quantize_line(&src[..n], &mut dst[..n], q.scale, q.zero_point)
}

/// Run `run` on each image of `inputs` (`[n, c_i, h, w]` tensors, concatenated on
/// the channel axis to `cin` channels) into a new `out_shape` tensor of `T`.
/// `codes_in`: whether u8 inputs (codes) are accepted, or only f32 ones.
pub(crate) fn eval_per_image<T: Datum + Copy>(
    op: &str,
    in_hw: [usize; 2],
    cin: usize,
    inputs: &[TValue],
    out_shape: &[usize; 4],
    codes_in: bool,
    run: impl Fn(&Channels, &mut [T]),
) -> TractResult<TVec<TValue>> {
    let batch = inputs[0].shape()[0];
    let mut channels = 0;
    for input in inputs {
        let shape = input.shape();
        ensure!(shape.len() == 4 && shape[0] == batch && [shape[2], shape[3]] == in_hw, "{op} input {shape:?} is not the planned one");
        let dt = input.datum_type();
        ensure!(dt == f32::datum_type() || (codes_in && dt == u8::datum_type()), "{op} input of type {dt:?}");
        channels += shape[1];
    }
    ensure!(channels == cin, "{op} inputs have {channels} channels, planned for {cin}");
    // Safety: `run` writes every output element (each tile, or each depthwise row, stores its pixels).
    let mut output = unsafe { Tensor::uninitialized::<T>(out_shape)? };
    {
        let plains = inputs.iter().map(|i| i.try_as_plain_ram()).collect::<TractResult<TVec<_>>>()?;
        let xs = plains
            .iter()
            .zip(inputs)
            .map(|(p, input)| match input.datum_type() == u8::datum_type() {
                true => p.as_slice::<u8>().map(Part::Codes),
                false => p.as_slice::<f32>().map(Part::F32),
            })
            .collect::<TractResult<TVec<_>>>()?;
        let mut y = output.try_as_plain_ram_mut()?;
        let y = y.as_slice_mut::<T>()?;
        let plane = in_hw[0] * in_hw[1];
        let ys = y.len() / batch.max(1);
        for b in 0..batch {
            let parts: TVec<Part> = xs
                .iter()
                .map(|x| {
                    let per = x.len() / batch.max(1);
                    x.slice(b * per, (b + 1) * per)
                })
                .collect();
            run(&Channels::of(&parts, plane), &mut y[b * ys..(b + 1) * ys]);
        }
    }
    Ok(tvec!(output.into_tvalue()))
}

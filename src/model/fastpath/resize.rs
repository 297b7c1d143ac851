//! Resize over the two spatial axes of an NCHW float tensor: `FastResize`.
//!
//! The per-axis plans (source indices and weights) are tract's own
//! (`Resize::plan_axis`), computed once at load instead of every call. Each
//! channel plane is resampled along H first, row by row into a scratch line,
//! then along W, with the same accumulation as tract's `resample_axis`
//! (`0 + w0·s0 + w1·s1 …`), so the values are tract's (a zero weight is
//! added as +0.0 instead of skipped, which can only turn a -0.0 into +0.0).

use crate::model::parallel::{for_each, SyncPtr};
use std::cell::RefCell;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::resize::AxisPlan;
use tract_onnx::tract_core::ops::nn::Resize;

#[derive(Clone, Debug)]
pub struct FastResize {
    /// `[n, c, h, w]` in, `[h, w]` out.
    input: [usize; 4],
    out_hw: [usize; 2],
    rows: Arc<AxisPlan>,
    cols: Arc<AxisPlan>,
    /// `cols` as flat two-tap arrays, when its window is 2 (linear, nearest).
    pairs: Option<Arc<TwoTaps>>,
}

/// Per output column: the two source columns and their weights.
#[derive(Debug)]
struct TwoTaps {
    i0: Vec<u32>,
    i1: Vec<u32>,
    w0: Vec<f32>,
    w1: Vec<f32>,
    /// Per 16 output columns: where their sources start, when all of them lie
    /// in the 16 columns from there (an upsampling), so that one load and one
    /// permute per tap fetch them instead of 16 scalar reads (AVX-512 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    windows: Vec<Option<u32>>,
}

/// Floats the vector W pass may read past a line's end.
const LINE_SLACK: usize = 16;

impl TwoTaps {
    fn new(plan: &AxisPlan) -> Option<TwoTaps> {
        if plan.window != 2 || plan.extrapolated.contains(&true) {
            return None;
        }
        let col = |k: usize| plan.indices.iter().skip(k).step_by(2).map(|&i| i as u32).collect();
        let weight = |k: usize| plan.weights.iter().skip(k).step_by(2).copied().collect();
        let (i0, i1): (Vec<u32>, Vec<u32>) = (col(0), col(1));
        let windows = i0
            .chunks(16)
            .zip(i1.chunks(16))
            .map(|(a, b)| {
                let lo = *a.iter().chain(b).min()?;
                let hi = *a.iter().chain(b).max()?;
                (hi - lo < 16).then_some(lo)
            })
            .collect();
        Some(TwoTaps { i0, i1, w0: weight(0), w1: weight(1), windows })
    }
}

impl PartialEq for FastResize {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input && self.out_hw == other.out_hw && Arc::ptr_eq(&self.rows, &other.rows) && Arc::ptr_eq(&self.cols, &other.cols)
    }
}
impl Eq for FastResize {}

impl FastResize {
    /// The replacement for `op`, where it applies: a float32 rank-4 input of
    /// known shape, constant scales or sizes, and only H and W resampled.
    pub fn plan(op: &Resize, inputs: &[&TypedFact], output: &TypedFact) -> Option<FastResize> {
        let x = inputs.first()?;
        let shape = x.shape.as_concrete()?;
        let out = output.shape.as_concrete()?;
        if x.datum_type != f32::datum_type() || shape.len() != 4 || out.len() != 4 {
            return None;
        }
        // The scales as tract's eval reads them: the scales input when it has
        // one per axis, else output / input.
        let given = op.optional_scales_input.and_then(|i| inputs.get(i)).and_then(|f| f.konst.clone()).filter(|s| s.len() == 4);
        let scales: Vec<f32> = match given {
            Some(t) => t.cast_to::<f32>().ok()?.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec(),
            None => {
                if op.optional_scales_input.is_some_and(|i| inputs.get(i).is_some_and(|f| f.konst.is_none())) {
                    return None;
                }
                out.iter().zip(shape).map(|(o, i)| *o as f32 / *i as f32).collect()
            }
        };
        // N and C must be left alone (tract skips an axis only when both hold).
        if (0..2).any(|a| shape[a] != out[a] || scales[a] != 1.0) {
            return None;
        }
        let rows = op.plan_axis(scales[2], shape[2], out[2]);
        let cols = op.plan_axis(scales[3], shape[3], out[3]);
        // An axis tract skips (same length, scale 1) is the identity; so is this plan then.
        Some(FastResize { input: [shape[0], shape[1], shape[2], shape[3]], out_hw: [out[2], out[3]], pairs: TwoTaps::new(&cols).map(Arc::new), rows: Arc::new(rows), cols: Arc::new(cols) })
    }

    /// Resample one `h × w` plane into `ho × wo`.
    fn plane(&self, src: &[f32], dst: &mut [f32], line: &mut Vec<f32>) {
        let [_, _, h, w] = self.input;
        let [ho, wo] = self.out_hw;
        let skip_rows = h == ho && self.rows.weights.iter().all(|&w| w == 0.0 || w == 1.0);
        let skip_cols = w == wo && self.cols.weights.iter().all(|&w| w == 0.0 || w == 1.0);
        line.resize(w + LINE_SLACK, 0.0);
        for (y, out) in dst.chunks_exact_mut(wo).enumerate() {
            let line: &[f32] = if skip_rows && is_identity(&self.rows, y) {
                &src[y * w..(y + 1) * w]
            } else {
                blend_rows(&self.rows, y, src, w, &mut line[..w]);
                line
            };
            if skip_cols && (0..wo).all(|x| is_identity(&self.cols, x)) {
                out.copy_from_slice(line);
                continue;
            }
            match &self.pairs {
                #[cfg(target_arch = "x86_64")]
                // Safety: the selected set is AVX-512's (so the CPU has AVX-512 F); the line
                // holds every source column.
                Some(p) if crate::linalg::kernels().isa == crate::linalg::Isa::Avx512 => unsafe { two_taps_avx512(p, line, out) },
                Some(p) => {
                    // Two taps, no branch: a zero weight adds +0.0, which changes
                    // a -0.0 sum to +0.0 and nothing else (inputs are finite).
                    for ((((o, &i0), &i1), &w0), &w1) in out.iter_mut().zip(&p.i0).zip(&p.i1).zip(&p.w0).zip(&p.w1) {
                        *o = w0 * line[i0 as usize] + w1 * line[i1 as usize];
                    }
                }
                None => {
                    let win = self.cols.window;
                    for (x, o) in out.iter_mut().enumerate() {
                        let mut acc = 0f32;
                        for k in 0..win {
                            let wt = self.cols.weights[x * win + k];
                            if wt != 0.0 && !self.cols.extrapolated[x] {
                                acc += wt * line[self.cols.indices[x * win + k]];
                            }
                        }
                        *o = acc;
                    }
                }
            }
        }
    }
}

/// The two-tap W pass on 16 output columns at a time: `w0 · line[i0] + w1 · line[i1]`,
/// a multiply each and an add as the scalar loop (no FMA), so the same values.
///
/// Columns whose 16-float window would run past the line (a line read in
/// place has no slack; a blended one has `LINE_SLACK`) are read one by one.
///
/// # Safety
/// The CPU has AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn two_taps_avx512(p: &TwoTaps, line: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len().min(p.i0.len());
    for (b, window) in p.windows.iter().enumerate() {
        let x = 16 * b;
        let k = (n - x).min(16);
        match window {
            Some(base) if *base as usize + 16 <= line.len() => {
                let mask = crate::linalg::x86_64::avx512::simd::tail_mask(k);
                let base = *base as usize;
                // Safety: 16 floats from `base` lie in the line (checked above); the
                // column tables hold `n` entries and lanes past `k` are masked off.
                unsafe {
                    let v = _mm512_loadu_ps(line.as_ptr().add(base));
                    let rel = _mm512_set1_epi32(base as i32);
                    let i0 = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(mask, p.i0.as_ptr().add(x) as *const i32), rel);
                    let i1 = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(mask, p.i1.as_ptr().add(x) as *const i32), rel);
                    let a = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, p.w0.as_ptr().add(x)), _mm512_permutexvar_ps(i0, v));
                    let c = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, p.w1.as_ptr().add(x)), _mm512_permutexvar_ps(i1, v));
                    _mm512_mask_storeu_ps(out.as_mut_ptr().add(x), mask, _mm512_add_ps(a, c));
                }
            }
            _ => {
                for j in x..x + k {
                    out[j] = p.w0[j] * line[p.i0[j] as usize] + p.w1[j] * line[p.i1[j] as usize];
                }
            }
        }
    }
}

/// Whether output `x` of `plan` copies input `x` unchanged.
fn is_identity(plan: &AxisPlan, x: usize) -> bool {
    let win = plan.window;
    !plan.extrapolated[x]
        && (0..win).filter(|&k| plan.weights[x * win + k] != 0.0).map(|k| (plan.indices[x * win + k], plan.weights[x * win + k])).eq([(x, 1.0)])
}

/// Output row `y` of the H pass: `Σ weight × source row`, into `line`.
fn blend_rows(plan: &AxisPlan, y: usize, src: &[f32], w: usize, line: &mut [f32]) {
    line.fill(0.0);
    if plan.extrapolated[y] {
        return;
    }
    let win = plan.window;
    for k in 0..win {
        let wt = plan.weights[y * win + k];
        if wt == 0.0 {
            continue;
        }
        let row = &src[plan.indices[y * win + k] * w..][..w];
        for (d, s) in line.iter_mut().zip(row) {
            *d += wt * s;
        }
    }
}

thread_local! {
    /// One H-pass line per worker, kept so the frame loop does not allocate.
    static LINE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Op for FastResize {
    fn name(&self) -> StaticName {
        "FastResize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} -> {:?}, window {}x{}", self.input, self.out_hw, self.rows.window, self.cols.window)])
    }

    op_as_typed_op!();
}

impl EvalOp for FastResize {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let [n, c, h, w] = self.input;
        ensure!(x.shape() == [n, c, h, w], "FastResize input {:?} is not the planned {:?}", x.shape(), self.input);
        let [ho, wo] = self.out_hw;
        // Safety: every output plane is written in full below.
        let mut y = unsafe { Tensor::uninitialized::<f32>(&[n, c, ho, wo])? };
        {
            let src = x.try_as_plain_ram()?;
            let src = src.as_slice::<f32>()?;
            let mut dst = y.try_as_plain_ram_mut()?;
            let dst_ptr = SyncPtr(dst.as_slice_mut::<f32>()?.as_mut_ptr());
            for_each(n * c, ho * wo * 4, |p| {
                // Safety: plane p of the output belongs to this item alone.
                let out = unsafe { std::slice::from_raw_parts_mut(dst_ptr.get().add(p * ho * wo), ho * wo) };
                LINE.with_borrow_mut(|line| self.plane(&src[p * h * w..(p + 1) * h * w], out, line));
            });
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for FastResize {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let [n, c, _, _] = self.input;
        let [ho, wo] = self.out_hw;
        Ok(tvec!(f32::fact([n, c, ho, wo])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::{CoordTransformer, Interpolator, Nearest};

    #[test]
    fn same_values_as_tract_resize() {
        let cases = [
            (CoordTransformer::HalfPixel, Interpolator::Linear, [1, 3, 16, 16], [64, 64]),
            (CoordTransformer::AlignCorners, Interpolator::Linear, [1, 2, 7, 9], [20, 31]),
            (CoordTransformer::PytorchHalfPixel, Interpolator::Linear, [2, 2, 8, 8], [8, 24]),
            (CoordTransformer::HalfPixel, Interpolator::Cubic, [1, 2, 5, 6], [10, 12]),
            (CoordTransformer::Asymmetric, Interpolator::Nearest, [1, 1, 4, 5], [12, 10]),
        ];
        for (coord, interp, shape, [ho, wo]) in cases {
            let op = Resize { coord_transformer: coord.clone(), interpolator: interp.clone(), nearest: Nearest::Floor, optional_scales_input: None, optional_sizes_input: Some(1) };
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 10.0).collect();
            let x = Tensor::from_shape(&shape, &data).unwrap();
            let sizes = tensor1(&[shape[0] as i64, shape[1] as i64, ho as i64, wo as i64]);
            let x_fact = TypedFact::try_from(x.clone()).unwrap();
            let sizes_fact = TypedFact::try_from(sizes.clone()).unwrap();
            let out_fact = f32::fact([shape[0], shape[1], ho, wo]);
            let fast = FastResize::plan(&op, &[&x_fact, &sizes_fact], &out_fact).expect("plan");
            let theirs = op.eval_out_of_plan(tvec!(x.clone().into_tvalue(), sizes.into_tvalue())).unwrap().unwrap();
            let ours = fast.eval_out_of_plan(tvec!(x.into_tvalue())).unwrap().unwrap();
            assert_eq!(theirs[0].shape(), ours[0].shape());
            let (a, b) = (theirs[0].try_as_plain_ram().unwrap(), ours[0].try_as_plain_ram().unwrap());
            let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            assert!(a.iter().zip(b).all(|(x, y)| x == y), "{coord:?} {interp:?} {shape:?}");
        }
    }
}

//! Semantic output → class map at the source resolution.
//!
//! Accepts `[1, C, H, W]` (or `[1, H, W, C]` for NHWC models) scores, where
//! C > 1 is one channel per class (softmax/argmax) and C = 1 is a single
//! foreground logit or probability (foreground above `binary_threshold`,
//! 0.5 unless set). Scores are resampled bilinearly (half-pixel centres, as
//! torch's `align_corners=False`) to the source image before the argmax, so masks on large frames keep smooth edges.

use super::meta::{Activation, Layout, ModelMeta};
use super::preprocess::Geometry;
use crate::mask::SegMap;
use anyhow::{bail, Result};
use tract_onnx::prelude::*;

/// Per-class probability planes at the model's output resolution.
pub struct ScorePlanes {
    pub classes: usize,
    pub width: usize,
    pub height: usize,
    /// `classes` planes of `width*height`, row-major.
    pub data: Vec<f32>,
    /// A one-channel model's pixel is foreground where its probability is above this.
    pub binary_threshold: f32,
}

impl Default for ScorePlanes {
    fn default() -> Self {
        ScorePlanes { classes: 0, width: 0, height: 0, data: Vec::new(), binary_threshold: 0.5 }
    }
}

/// Turn the raw output into probability planes (class-major), as `meta` says
/// (layout, output activation, binary threshold).
pub fn score_planes(output: &Tensor, meta: &ModelMeta) -> Result<ScorePlanes> {
    let mut planes = ScorePlanes::default();
    score_planes_into(output, meta, &mut planes)?;
    Ok(planes)
}

/// `score_planes` into reused storage.
pub fn score_planes_into(output: &Tensor, meta: &ModelMeta, planes: &mut ScorePlanes) -> Result<()> {
    planes.binary_threshold = meta.binary_threshold;
    planes_from_scores(output, meta.layout, meta.activation, planes)
}

fn planes_from_scores(output: &Tensor, layout: Layout, activation: Activation, planes: &mut ScorePlanes) -> Result<()> {
    let shape = output.shape();
    let (c, h, w, nhwc) = match (shape, layout) {
        ([1, c, h, w], Layout::Nchw) => (*c, *h, *w, false),
        ([1, h, w, c], Layout::Nhwc) => (*c, *h, *w, true),
        ([1, h, w], _) => (1, *h, *w, false),
        _ => bail!("semantic output has shape {shape:?}; expected [1, classes, H, W] (or [1, H, W, classes] for NHWC)"),
    };
    if output.datum_type() != f32::datum_type() {
        bail!("semantic output is {:?}; edgeseg decodes float32 scores", output.datum_type());
    }
    let plain = output.try_as_plain_ram()?;
    let raw: &[f32] = plain.as_slice()?;
    let data = &mut planes.data;
    data.clear();
    data.resize(c * h * w, 0.0);
    let plane = h * w;
    for i in 0..plane {
        let at = |k: usize| if nhwc { raw[i * c + k] } else { raw[k * plane + i] };
        match (activation, c) {
            (Activation::Sigmoid, _) | (Activation::Softmax, 1) => {
                for k in 0..c {
                    data[k * plane + i] = 1.0 / (1.0 + (-at(k)).exp());
                }
            }
            (Activation::Softmax, _) => {
                let max = (0..c).map(at).fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = (0..c).map(|k| (at(k) - max).exp()).sum();
                for k in 0..c {
                    data[k * plane + i] = (at(k) - max).exp() / sum;
                }
            }
            (Activation::None, _) => {
                for k in 0..c {
                    data[k * plane + i] = at(k);
                }
            }
        }
    }
    (planes.classes, planes.width, planes.height) = (c, w, h);
    Ok(())
}

/// Pick the class per pixel. Ties go to the lower class index, as numpy's argmax.
/// For a single probability plane, class 1 where p > `threshold`.
fn argmax_into(scores: &[f32], classes: usize, plane: usize, i: usize, threshold: f32) -> (u8, f32) {
    if classes == 1 {
        let p = scores[i];
        return if p > threshold { (1, p) } else { (0, 1.0 - p) };
    }
    let mut best = (0u8, scores[i]);
    for k in 1..classes {
        let v = scores[k * plane + i];
        if v > best.1 {
            best = (k as u8, v);
        }
    }
    best
}

/// Argmax at the model resolution when the source has the same size, else on
/// scores resampled to the source through the preprocessing geometry.
pub fn segment(planes: &ScorePlanes, geo: &Geometry) -> SegMap {
    let mut map = SegMap::new(0, 0);
    segment_into(planes, geo, &mut map);
    map
}

/// `segment` into a reused map (resized to the source; no allocation when the size repeats).
pub fn segment_into(planes: &ScorePlanes, geo: &Geometry, map: &mut SegMap) {
    let (sw, sh) = (geo.src_width, geo.src_height);
    map.reset(sw, sh);
    let plane = planes.width * planes.height;
    let identity = sw == planes.width && sh == planes.height && geo.pad_x == 0.0 && geo.pad_y == 0.0;
    if identity {
        for i in 0..plane {
            let (c, p) = argmax_into(&planes.data, planes.classes, plane, i, planes.binary_threshold);
            map.classes[i] = c;
            map.confidence[i] = p;
        }
        return;
    }
    // Class ids are u8, so a stack array of MAX_CLASSES always suffices.
    let mut sample_buf = [0f32; crate::mask::MAX_CLASSES];
    let sample = &mut sample_buf[..planes.classes.min(crate::mask::MAX_CLASSES)];
    for y in 0..sh {
        // Source pixel centre → model-input coordinates.
        let fy = ((y as f32 + 0.5) * geo.scale_y + geo.pad_y - 0.5).clamp(0.0, (planes.height - 1) as f32);
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(planes.height - 1);
        let wy = fy - y0 as f32;
        for x in 0..sw {
            let fx = ((x as f32 + 0.5) * geo.scale_x + geo.pad_x - 0.5).clamp(0.0, (planes.width - 1) as f32);
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(planes.width - 1);
            let wx = fx - x0 as f32;
            for (k, s) in sample.iter_mut().enumerate() {
                let p = &planes.data[k * plane..(k + 1) * plane];
                let top = p[y0 * planes.width + x0] * (1.0 - wx) + p[y0 * planes.width + x1] * wx;
                let bottom = p[y1 * planes.width + x0] * (1.0 - wx) + p[y1 * planes.width + x1] * wx;
                *s = top * (1.0 - wy) + bottom * wy;
            }
            let (c, p) = argmax_into(sample, sample.len(), 1, 0, planes.binary_threshold);
            map.classes[y * sw + x] = c;
            map.confidence[y * sw + x] = p;
        }
    }
}

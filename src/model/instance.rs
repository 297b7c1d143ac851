//! Instance segmentation heads (YOLO-seg): detections + prototype masks →
//! instances with class, score, box, mask (COCO RLE), area and polygon.
//!
//! Two layouts, told apart by their shapes:
//! - YOLOv8/11-seg: `[1, 4 + nc + nm, N]`, class scores already sigmoid, no objectness;
//! - YOLOv5-seg:   `[1, N, 5 + nc + nm]`, objectness at 4, score = obj × class.
//!
//! plus prototypes `[1, nm, mh, mw]`. The steps follow ultralytics' predictor
//! (`non_max_suppression` + `process_mask(upsample=True)` + `scale_boxes` /
//! `scale_masks`) so that results match it on the same ONNX file: confidence
//! filter, class-wise NMS, mask logits = coeffs · protos upsampled bilinearly to
//! the input, thresholded at 0 and cropped to the box, then mapped through the
//! letterbox back to the source image. Candidates live in fixed-capacity
//! `heapless` buffers: decoding allocates only the output.

use super::preprocess::Geometry;
use crate::mask::rle::{compress_counts_into, run_lengths_by};
use crate::mask::{CocoRle, SegMap};
use anyhow::{bail, Result};
use serde::Serialize;
use tract_onnx::prelude::*;

/// Candidates kept before NMS (the best by score; ultralytics keeps 30000,
/// far more than a frame of parts ever has above the threshold).
pub const MAX_CANDIDATES: usize = 1024;
/// Detections kept after NMS (ultralytics' `max_det`).
pub const MAX_DETECTIONS: usize = 300;

/// Thresholds, with ultralytics' predictor defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceParams {
    pub conf: f32,
    pub iou: f32,
}

impl Default for InstanceParams {
    fn default() -> Self {
        InstanceParams { conf: 0.25, iou: 0.7 }
    }
}

/// One detected instance, in source-image pixels.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Instance {
    pub class_id: u16,
    pub class: String,
    pub score: f32,
    /// `[x, y, width, height]` (COCO order), floats as the network predicts them.
    pub bbox: [f32; 4],
    /// Mask pixels.
    pub area: u64,
    pub rle: CocoRle,
    /// Outer contour of the mask's first region, `[x, y]` vertices.
    pub polygon: Vec<[u32; 2]>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HeadLayout {
    V8,
    V5,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f32,
    class: u16,
    index: u32,
    /// xyxy in model-input pixels.
    b: [f32; 4],
}

impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.score.total_cmp(&o.score).is_eq()
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score)
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Buffers reused between frames.
#[derive(Default)]
pub struct InstanceDecoder {
    logits: Vec<f32>,
    input_mask: Vec<u8>,
    mask: Vec<u8>,
    runs: Vec<u32>,
}

/// Bilinear sample with torch's `align_corners=False` source mapping.
#[inline]
fn src_coord(dst: usize, scale: f32, len: usize) -> (usize, usize, f32) {
    let s = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(len - 1);
    let i1 = (i0 + 1).min(len - 1);
    (i0, i1, s - i0 as f32)
}

impl InstanceDecoder {
    /// Decode the network's outputs for one frame into `out` (cleared first).
    /// With `paint`, each instance is also drawn into that class map (class k
    /// as k + 1, earlier = higher-scored instances win), for overlays.
    #[allow(clippy::too_many_arguments)] // outputs, their meaning, and two reused outputs
    pub fn decode(
        &mut self,
        outputs: &[TValue],
        classes: &[String],
        geo: &Geometry,
        input: (usize, usize),
        params: &InstanceParams,
        out: &mut Vec<Instance>,
        mut paint: Option<&mut SegMap>,
    ) -> Result<()> {
        out.clear();
        if let Some(map) = paint.as_deref_mut() {
            map.reset(geo.src_width, geo.src_height);
        }
        let (preds, protos) = split_outputs(outputs)?;
        let pshape = protos.shape();
        let (nm, mh, mw) = (pshape[1], pshape[2], pshape[3]);
        if nm == 0 || mh == 0 || mw == 0 {
            bail!("prototype output {pshape:?} is empty; fix: export the model with its mask prototypes ([1, 32, H/4, W/4])");
        }
        let nc = classes.len();
        let shape = preds.shape();
        let layout = if shape[1] == 4 + nc + nm {
            HeadLayout::V8
        } else if shape[2] == 5 + nc + nm {
            HeadLayout::V5
        } else {
            bail!(
                "instance output {shape:?} with {nm} mask coefficients fits neither YOLOv8-seg [1, 4+{nc}+{nm}, N] nor YOLOv5-seg \
                 [1, N, 5+{nc}+{nm}]; fix: check the class list ({nc} names) against the model"
            );
        };
        let pv = preds.try_as_plain_ram()?;
        let p: &[f32] = pv.as_slice()?;
        let prv = protos.try_as_plain_ram()?;
        let proto: &[f32] = prv.as_slice()?;
        let (n, dim) = match layout {
            HeadLayout::V8 => (shape[2], shape[1]),
            HeadLayout::V5 => (shape[1], shape[2]),
        };
        let at = |i: usize, k: usize| match layout {
            HeadLayout::V8 => p[k * n + i],
            HeadLayout::V5 => p[i * dim + k],
        };
        let first_class = if layout == HeadLayout::V8 { 4 } else { 5 };

        // 1. Confidence filter into a fixed-capacity min-heap of the best candidates.
        let mut heap: heapless::BinaryHeap<std::cmp::Reverse<Candidate>, heapless::binary_heap::Max, MAX_CANDIDATES> = heapless::BinaryHeap::new();
        for i in 0..n {
            let obj = if layout == HeadLayout::V5 { at(i, 4) } else { 1.0 };
            if layout == HeadLayout::V5 && obj <= params.conf {
                continue;
            }
            let (mut best, mut class) = (f32::NEG_INFINITY, 0usize);
            for c in 0..nc {
                let s = at(i, first_class + c) * obj;
                if s > best {
                    (best, class) = (s, c);
                }
            }
            if best <= params.conf {
                continue;
            }
            let (cx, cy, w, h) = (at(i, 0), at(i, 1), at(i, 2), at(i, 3));
            let cand = Candidate { score: best, class: class as u16, index: i as u32, b: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0] };
            if heap.len() < MAX_CANDIDATES {
                // Capacity checked on the line above.
                let _ = heap.push(std::cmp::Reverse(cand));
            } else if heap.peek().is_some_and(|worst| cand.score > worst.0.score) {
                heap.pop();
                let _ = heap.push(std::cmp::Reverse(cand));
            }
        }
        let mut sorted: heapless::Vec<Candidate, MAX_CANDIDATES> = heap.into_iter().map(|r| r.0).collect();
        sorted.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));

        // 2. Class-wise NMS.
        let mut kept: heapless::Vec<Candidate, MAX_DETECTIONS> = heapless::Vec::new();
        for c in sorted.iter() {
            if kept.is_full() {
                break;
            }
            if kept.iter().all(|k| k.class != c.class || iou(&k.b, &c.b) <= params.iou) {
                let _ = kept.push(*c);
            }
        }

        // 3. Masks, 4. back to the source image.
        let (iw, ih) = input;
        let (sw, sh) = (geo.src_width, geo.src_height);
        self.logits.resize(mh * mw, 0.0);
        self.input_mask.clear();
        self.input_mask.resize(iw * ih, 0);
        let (sx, sy) = (mw as f32 / iw as f32, mh as f32 / ih as f32);
        // Letterbox content in the input (ultralytics scale_masks' crop).
        let (left, top) = (geo.pad_x as usize, geo.pad_y as usize);
        let cw = ((sw as f32 * geo.scale_x).round() as usize).clamp(1, iw - left);
        let ch = ((sh as f32 * geo.scale_y).round() as usize).clamp(1, ih - top);
        for det in kept.iter() {
            let i = det.index as usize;
            let coeff = |k: usize| at(i, first_class + nc + k);
            for (j, l) in self.logits.iter_mut().enumerate() {
                let mut acc = 0.0f32;
                for k in 0..nm {
                    acc += coeff(k) * proto[k * mh * mw + j];
                }
                *l = acc;
            }
            // Input-resolution mask inside the box only (everything else is cropped away).
            let [x1, y1, x2, y2] = det.b;
            let c0 = x1.max(0.0).ceil() as usize;
            let c1 = (x2.min(iw as f32).ceil() as usize).min(iw);
            let r0 = y1.max(0.0).ceil() as usize;
            let r1 = (y2.min(ih as f32).ceil() as usize).min(ih);
            let mut any = false;
            for r in r0..r1 {
                let (y0, y1i, wy) = src_coord(r, sy, mh);
                for c in c0..c1 {
                    if (c as f32) < x1 || (c as f32) >= x2 || (r as f32) < y1 || (r as f32) >= y2 {
                        continue;
                    }
                    let (x0, x1i, wx) = src_coord(c, sx, mw);
                    let l = &self.logits;
                    let top_v = l[y0 * mw + x0] * (1.0 - wx) + l[y0 * mw + x1i] * wx;
                    let bot_v = l[y1i * mw + x0] * (1.0 - wx) + l[y1i * mw + x1i] * wx;
                    let v = (top_v * (1.0 - wy) + bot_v * wy > 0.0) as u8;
                    self.input_mask[r * iw + c] = v;
                    any |= v != 0;
                }
            }
            if !any {
                continue; // ultralytics drops detections whose mask is empty
            }
            // Source-resolution mask: bilinear of the 0/1 content crop, > 0.5.
            self.mask.clear();
            self.mask.resize(sw * sh, 0);
            let (scx, scy) = (cw as f32 / sw as f32, ch as f32 / sh as f32);
            let mut area = 0u64;
            let xs = (((c0.saturating_sub(left)) as f32 / scx) as usize).saturating_sub(1);
            let xe = ((((c1.saturating_sub(left)) as f32 / scx).ceil() as usize) + 1).min(sw);
            let ys = (((r0.saturating_sub(top)) as f32 / scy) as usize).saturating_sub(1);
            let ye = ((((r1.saturating_sub(top)) as f32 / scy).ceil() as usize) + 1).min(sh);
            let m = &self.input_mask;
            for y in ys..ye {
                let (a0, a1, wy) = src_coord(y, scy, ch);
                for x in xs..xe {
                    let (b0, b1, wx) = src_coord(x, scx, cw);
                    let v = |r: usize, c: usize| m[(r + top) * iw + c + left] as f32;
                    let s = (v(a0, b0) * (1.0 - wx) + v(a0, b1) * wx) * (1.0 - wy) + (v(a1, b0) * (1.0 - wx) + v(a1, b1) * wx) * wy;
                    if s > 0.5 {
                        self.mask[y * sw + x] = 1;
                        area += 1;
                    }
                }
            }
            // Clear the input mask for the next detection (only where we wrote).
            for r in r0..r1 {
                self.input_mask[r * iw + c0..r * iw + c1.max(c0)].fill(0);
            }
            let bx = |v: f32, pad: f32, scale: f32, max: usize| ((v - pad) / scale).clamp(0.0, max as f32);
            let (bx1, by1) = (bx(x1, geo.pad_x, geo.scale_x, sw), bx(y1, geo.pad_y, geo.scale_y, sh));
            let (bx2, by2) = (bx(x2, geo.pad_x, geo.scale_x, sw), bx(y2, geo.pad_y, geo.scale_y, sh));
            if let Some(map) = paint.as_deref_mut() {
                let id = (det.class as usize + 1).min(crate::mask::MAX_CLASSES - 1) as u8;
                for (j, _) in self.mask.iter().enumerate().filter(|(_, m)| **m != 0) {
                    if map.classes[j] == 0 {
                        map.classes[j] = id;
                        map.confidence[j] = det.score;
                    }
                }
            }
            run_lengths_by(|j| self.mask[j] != 0, sw, sh, &mut self.runs);
            let mut counts = String::new();
            compress_counts_into(&self.runs, &mut counts);
            out.push(Instance {
                class_id: det.class,
                class: classes.get(det.class as usize).cloned().unwrap_or_else(|| format!("class{}", det.class)),
                score: det.score,
                bbox: [bx1, by1, bx2 - bx1, by2 - by1],
                area,
                rle: CocoRle { size: [sh, sw], counts },
                polygon: super::contour::outer_contour(&self.mask, sw, sh),
            });
        }
        Ok(())
    }
}

/// The 3-D predictions and the 4-D prototypes, in either order.
fn split_outputs(outputs: &[TValue]) -> Result<(&Tensor, &Tensor)> {
    let find = |rank: usize| outputs.iter().map(|t| &**t).find(|t| t.rank() == rank);
    match (find(3), find(4)) {
        (Some(p), Some(m)) if p.datum_type() == f32::datum_type() && m.datum_type() == f32::datum_type() && m.shape()[0] == 1 && p.shape()[0] == 1 => Ok((p, m)),
        _ => bail!(
            "an instance model needs a [1, ., .] detection output and a [1, nm, mh, mw] prototype output (float32); got {:?}",
            outputs.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>()
        ),
    }
}

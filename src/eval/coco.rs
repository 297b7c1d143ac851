//! COCO mask AP, computed as `pycocotools.cocoeval.COCOeval(iouType="segm")`
//! does for area "all" and 100 detections per image: greedy matching per IoU
//! threshold (0.50:0.05:0.95) in score order, precision made monotone, sampled
//! at 101 recall points, averaged over the categories that have ground truth.
//! `tests/python` checks the figures against pycocotools on the same predictions.

use anyhow::{bail, Result};
use serde::Serialize;

/// Ground truth or detection of one image, as a row-major boolean mask.
pub struct Object {
    pub category: u32,
    pub score: f32,
    pub mask: Vec<bool>,
}

/// One image: its ground truth and its detections.
pub struct ImageEval {
    pub gts: Vec<Object>,
    pub dts: Vec<Object>,
}

/// IoU thresholds 0.50:0.05:0.95, bit-for-bit as `np.linspace(.5, .95, 10)`
/// (a threshold is compared with ratios of pixel counts, which can hit it exactly).
pub fn iou_threshold(k: usize) -> f64 {
    linspace(0.5, 0.95, 10, k)
}

/// numpy's `linspace(start, stop, num)[k]`: `k * step + start`, the last exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize, k: usize) -> f64 {
    if k + 1 == num {
        stop
    } else {
        k as f64 * ((stop - start) / (num - 1) as f64) + start
    }
}

const THRESHOLDS: usize = 10;
const MAX_DETS: usize = 100;

#[derive(Clone, Debug, Serialize)]
pub struct CategoryAp {
    pub name: String,
    /// AP at IoU 0.5 and over 0.5:0.95; None without ground truth.
    pub ap50: Option<f64>,
    pub ap: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MaskApReport {
    pub images: usize,
    pub map50: f64,
    pub map50_95: f64,
    pub per_class: Vec<CategoryAp>,
}

fn mask_iou(a: &[bool], b: &[bool]) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        inter += (x && y) as u64;
        union += (x || y) as u64;
    }
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Per (image, category): detection scores and whether each matched, per threshold.
struct Matched {
    scores: Vec<f32>,
    /// [threshold][detection]
    tp: Vec<Vec<bool>>,
    gts: usize,
}

fn match_image(gts: &[&Object], dts: &[&Object]) -> Matched {
    let ious: Vec<Vec<f64>> = dts.iter().map(|d| gts.iter().map(|g| mask_iou(&d.mask, &g.mask)).collect()).collect();
    let tp = (0..THRESHOLDS)
        .map(|k| {
            let t = iou_threshold(k);
            let mut gt_used = vec![false; gts.len()];
            dts.iter()
                .enumerate()
                .map(|(di, _)| {
                    let mut best = t.min(1.0 - 1e-10);
                    let mut m = None;
                    for (gi, used) in gt_used.iter().enumerate() {
                        if *used || ious[di][gi] < best {
                            continue;
                        }
                        best = ious[di][gi];
                        m = Some(gi);
                    }
                    if let Some(gi) = m {
                        gt_used[gi] = true;
                    }
                    m.is_some()
                })
                .collect()
        })
        .collect();
    Matched { scores: dts.iter().map(|d| d.score).collect(), tp, gts: gts.len() }
}

/// Stable sort indices by score, highest first (numpy mergesort on -score).
fn order_by_score(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx
}

/// COCO's 101-point interpolated AP of one category at one threshold; None without ground truth.
fn average_precision(parts: &[Matched], t: usize) -> Option<f64> {
    let npig: usize = parts.iter().map(|m| m.gts).sum();
    if npig == 0 {
        return None;
    }
    let mut scores = Vec::new();
    let mut tps = Vec::new();
    for m in parts {
        scores.extend_from_slice(&m.scores);
        tps.extend_from_slice(&m.tp[t]);
    }
    let order = order_by_score(&scores);
    let (mut tp, mut fp) = (0f64, 0f64);
    let mut rc = Vec::with_capacity(order.len());
    let mut pr = Vec::with_capacity(order.len());
    for &i in &order {
        if tps[i] {
            tp += 1.0
        } else {
            fp += 1.0
        }
        rc.push(tp / npig as f64);
        pr.push(tp / (tp + fp + f64::EPSILON));
    }
    for i in (1..pr.len()).rev() {
        if pr[i] > pr[i - 1] {
            pr[i - 1] = pr[i];
        }
    }
    let mut sum = 0.0;
    for r in 0..=100 {
        let thr = linspace(0.0, 1.0, 101, r);
        // searchsorted(rc, thr, side="left")
        let pi = rc.partition_point(|&v| v < thr);
        if pi < pr.len() {
            sum += pr[pi];
        }
    }
    Some(sum / 101.0)
}

/// Mask AP over `images`; `categories` are (id, name) in report order. Every
/// mask of an image must have the same number of pixels (IoU of masks of
/// different shapes means nothing); the COCO reader checks sizes with names.
pub fn evaluate(images: &[ImageEval], categories: &[(u32, String)]) -> Result<MaskApReport> {
    for (i, img) in images.iter().enumerate() {
        let mut lens = img.gts.iter().chain(&img.dts).map(|o| o.mask.len());
        if let Some(first) = lens.next() {
            if let Some(other) = lens.find(|&l| l != first) {
                bail!("image {i} of the evaluation has masks of {first} and of {other} pixels; they must all have the image's size");
            }
        }
    }
    let mut per_class = Vec::new();
    let (mut sum50, mut n50, mut sum_all, mut n_all) = (0.0, 0usize, 0.0, 0usize);
    for (cat, name) in categories {
        let parts: Vec<Matched> = images
            .iter()
            .map(|img| {
                let gts: Vec<&Object> = img.gts.iter().filter(|g| g.category == *cat).collect();
                let mut dts: Vec<&Object> = img.dts.iter().filter(|d| d.category == *cat).collect();
                let order = order_by_score(&dts.iter().map(|d| d.score).collect::<Vec<_>>());
                dts = order.into_iter().take(MAX_DETS).map(|i| dts[i]).collect();
                match_image(&gts, &dts)
            })
            .collect();
        let aps: Vec<Option<f64>> = (0..THRESHOLDS).map(|t| average_precision(&parts, t)).collect();
        let ap50 = aps[0];
        let ap = if aps.iter().all(Option::is_some) { Some(aps.iter().flatten().sum::<f64>() / aps.len() as f64) } else { None };
        if let (Some(a50), Some(a)) = (ap50, ap) {
            (sum50, n50, sum_all, n_all) = (sum50 + a50, n50 + 1, sum_all + a, n_all + 1);
        }
        per_class.push(CategoryAp { name: name.clone(), ap50, ap });
    }
    let mean = |s: f64, n: usize| if n == 0 { 0.0 } else { s / n as f64 };
    Ok(MaskApReport { images: images.len(), map50: mean(sum50, n50), map50_95: mean(sum_all, n_all), per_class })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(category: u32, score: f32, pixels: &[usize]) -> Object {
        let mut mask = vec![false; 16];
        for &p in pixels {
            mask[p] = true;
        }
        Object { category, score, mask }
    }

    #[test]
    fn perfect_and_missing_detections() {
        let perfect = ImageEval { gts: vec![obj(1, 1.0, &[0, 1])], dts: vec![obj(1, 0.9, &[0, 1])] };
        let r = evaluate(&[perfect], &[(1, "a".into())]).unwrap();
        // 1 - 1e-16: precision is tp / (tp + fp + eps), as in pycocotools.
        assert!((r.map50 - 1.0).abs() < 1e-12 && (r.map50_95 - 1.0).abs() < 1e-12);
        // One of two objects found, plus a false positive scored higher: AP50 from the
        // PR curve (recall 0.5 reached at precision 0.5).
        let half = ImageEval {
            gts: vec![obj(1, 1.0, &[0, 1]), obj(1, 1.0, &[8, 9])],
            dts: vec![obj(1, 0.9, &[4, 5]), obj(1, 0.8, &[0, 1])],
        };
        let r = evaluate(&[half], &[(1, "a".into()), (2, "none".into())]).unwrap();
        assert!((r.map50 - 51.0 * 0.5 / 101.0).abs() < 1e-12, "{}", r.map50);
        assert_eq!(r.per_class[1].ap50, None, "a category without ground truth is left out");
    }

    #[test]
    fn masks_of_different_sizes_are_an_error() {
        let mut small = obj(1, 0.9, &[0]);
        small.mask.truncate(8);
        let img = ImageEval { gts: vec![obj(1, 1.0, &[0, 1])], dts: vec![small] };
        assert!(evaluate(&[img], &[(1, "a".into())]).unwrap_err().to_string().contains("16 and of 8 pixels"));
    }
}

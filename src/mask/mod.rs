//! Segmentation results: the class-index map and what is derived from it
//! (per-class area, box, components, COCO RLE, PNG).

pub mod components;
pub mod rle;

use anyhow::{Context, Result};
use serde::{Serialize, Serializer};
use std::path::Path;

pub use components::{label_components, Component};
pub use rle::CocoRle;

/// Class ids are `u8`: at most 256 classes.
pub const MAX_CLASSES: usize = 256;

/// Axis-aligned box in pixels; serialised as COCO's `[x, y, width, height]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Serialize for BBox {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.x, self.y, self.w, self.h].serialize(s)
    }
}

/// Per-pixel result of a semantic model at the source image's resolution.
#[derive(Clone, Debug)]
pub struct SegMap {
    pub width: usize,
    pub height: usize,
    /// Class index per pixel, row-major.
    pub classes: Vec<u8>,
    /// Score of the chosen class per pixel (softmax or sigmoid probability).
    pub confidence: Vec<f32>,
}

/// Everything the JSON report says about one class present in a frame.
#[derive(Clone, Debug, Serialize)]
pub struct ClassRegion {
    pub id: u8,
    pub name: String,
    /// Pixels of this class.
    pub area: u64,
    pub bbox: BBox,
    /// Mean score over the class's pixels.
    pub score: f32,
    pub components: Vec<Component>,
    pub rle: CocoRle,
}

impl SegMap {
    pub fn new(width: usize, height: usize) -> SegMap {
        SegMap { width, height, classes: vec![0; width * height], confidence: vec![0.0; width * height] }
    }

    pub fn class_mask(&self, id: u8) -> Vec<bool> {
        self.classes.iter().map(|&c| c == id).collect()
    }

    /// Regions of every class except background (index 0) that has pixels.
    pub fn regions(&self, class_names: &[String]) -> Vec<ClassRegion> {
        let mut labels = Vec::new();
        let components = label_components(&self.classes, self.width, self.height, &mut labels);
        let n = class_names.len().max(1 + self.classes.iter().copied().max().unwrap_or(0) as usize).min(MAX_CLASSES);
        // Per-class accumulators on the stack: class ids are u8, so 256 slots
        // always suffice and the per-frame path allocates nothing for them.
        let mut area: heapless::Vec<u64, MAX_CLASSES> = heapless::Vec::new();
        let mut score_sum: heapless::Vec<f64, MAX_CLASSES> = heapless::Vec::new();
        // n <= MAX_CLASSES (clamped above), so both resizes fit.
        area.resize(n, 0).expect("n <= MAX_CLASSES");
        score_sum.resize(n, 0.0).expect("n <= MAX_CLASSES");
        for (&c, &p) in self.classes.iter().zip(&self.confidence) {
            area[c as usize] += 1;
            score_sum[c as usize] += p as f64;
        }
        (1..n)
            .filter(|&id| area[id] > 0)
            .map(|id| {
                let id8 = id as u8;
                let parts: Vec<Component> = components.iter().filter(|c| c.class_id == id8).cloned().collect();
                ClassRegion {
                    id: id8,
                    name: class_names.get(id).cloned().unwrap_or_else(|| format!("class{id}")),
                    area: area[id],
                    bbox: union_box(&parts),
                    score: (score_sum[id] / area[id] as f64) as f32,
                    components: parts,
                    rle: CocoRle::encode(&self.class_mask(id8), self.width, self.height),
                }
            })
            .collect()
    }

    /// Class-index mask as an 8-bit gray PNG (pixel value = class id).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let img = image::GrayImage::from_raw(self.width as u32, self.height as u32, self.classes.clone())
            .context("mask buffer does not match its size")?;
        img.save(path).with_context(|| format!("cannot write mask PNG {}", path.display()))
    }
}

fn union_box(parts: &[Component]) -> BBox {
    let x0 = parts.iter().map(|c| c.bbox.x).min().unwrap_or(0);
    let y0 = parts.iter().map(|c| c.bbox.y).min().unwrap_or(0);
    let x1 = parts.iter().map(|c| c.bbox.x + c.bbox.w).max().unwrap_or(0);
    let y1 = parts.iter().map(|c| c.bbox.y + c.bbox.h).max().unwrap_or(0);
    BBox { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }
}

//! Segmentation results: the class-index map and what is derived from it
//! (per-class area, box, components, COCO RLE, PNG).

pub mod components;
pub mod rle;

use anyhow::{Context, Result};
use serde::{Serialize, Serializer};
use std::path::Path;

pub use components::{label_components, label_components_into, Component};
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

/// Buffers `SegMap::regions_into` reuses between frames.
#[derive(Default)]
pub struct RegionScratch {
    labels: Vec<u32>,
    stack: Vec<usize>,
    components: Vec<Component>,
    runs: Vec<u32>,
    spare: Vec<ClassRegion>,
}

impl ClassRegion {
    fn empty() -> ClassRegion {
        ClassRegion {
            id: 0,
            name: String::new(),
            area: 0,
            bbox: BBox { x: 0, y: 0, w: 0, h: 0 },
            score: 0.0,
            components: Vec::new(),
            rle: CocoRle { size: [0, 0], counts: String::new() },
        }
    }
}

impl SegMap {
    pub fn new(width: usize, height: usize) -> SegMap {
        SegMap { width, height, classes: vec![0; width * height], confidence: vec![0.0; width * height] }
    }

    /// Make this a `width`×`height` all-background map, keeping the buffers.
    pub fn reset(&mut self, width: usize, height: usize) {
        (self.width, self.height) = (width, height);
        self.classes.clear();
        self.classes.resize(width * height, 0);
        self.confidence.clear();
        self.confidence.resize(width * height, 0.0);
    }

    pub fn class_mask(&self, id: u8) -> Vec<bool> {
        self.classes.iter().map(|&c| c == id).collect()
    }

    /// Regions of every class except background (index 0) that has pixels.
    pub fn regions(&self, class_names: &[String]) -> Vec<ClassRegion> {
        let mut out = Vec::new();
        self.regions_into(class_names, &mut RegionScratch::default(), &mut out);
        out
    }

    /// `regions` into reused storage: once the buffers have grown to what a
    /// frame needs, later frames allocate nothing.
    pub fn regions_into(&self, class_names: &[String], s: &mut RegionScratch, out: &mut Vec<ClassRegion>) {
        // Keep the previous frame's regions (and their buffers) for reuse.
        s.spare.append(out);
        label_components_into(&self.classes, self.width, self.height, &mut s.labels, &mut s.stack, &mut s.components);
        let n = class_names.len().max(1 + self.classes.iter().copied().max().unwrap_or(0) as usize).min(MAX_CLASSES);
        // Per-class accumulators on the stack: class ids are u8, so 256 slots always suffice.
        let mut area = [0u64; MAX_CLASSES];
        let mut score_sum = [0f64; MAX_CLASSES];
        for (&c, &p) in self.classes.iter().zip(&self.confidence) {
            area[c as usize] += 1;
            score_sum[c as usize] += p as f64;
        }
        for id in (1..n).filter(|&id| area[id] > 0) {
            let id8 = id as u8;
            let mut region = s.spare.pop().unwrap_or_else(ClassRegion::empty);
            region.id = id8;
            region.name.clear();
            match class_names.get(id) {
                Some(name) => region.name.push_str(name),
                None => {
                    use std::fmt::Write;
                    // Writing to a String cannot fail.
                    let _ = write!(region.name, "class{id}");
                }
            }
            region.area = area[id];
            region.score = (score_sum[id] / area[id] as f64) as f32;
            region.components.clear();
            region.components.extend(s.components.iter().filter(|c| c.class_id == id8).cloned());
            region.bbox = union_box(&region.components);
            rle::run_lengths_by(|i| self.classes[i] == id8, self.width, self.height, &mut s.runs);
            region.rle.size = [self.height, self.width];
            region.rle.counts.clear();
            rle::compress_counts_into(&s.runs, &mut region.rle.counts);
            out.push(region);
        }
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

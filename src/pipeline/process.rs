//! One frame through the model: decode pixels, preprocess into the input
//! tensor, run the network, decode the class map, find regions, judge.
//!
//! Every buffer lives in `FrameProcessor` or `FrameResult` and is reused, so
//! after the first frames have sized them the path allocates nothing of its
//! own (the test `tests/no_alloc.rs` counts). The network behind the
//! `Network` trait is tract for real, or a test double.

use crate::decide::Decider;
use crate::frame::Frame;
use crate::mask::{ClassRegion, RegionScratch, SegMap};
use crate::model::decode::{score_planes_into, segment_into, ScorePlanes};
use crate::model::pixels::FrameDecoder;
use crate::model::preprocess::{new_input_tensor, preprocess_into, PreprocessScratch};
use crate::model::{Model, ModelMeta, Task};
use crate::report::{FrameReport, StageLatency};
use anyhow::{bail, Result};
use image::RgbImage;
use std::time::Instant;
use tract_onnx::prelude::*;

/// A semantic segmentation network: preprocessed input in, per-class probability planes out.
pub trait Network: Send {
    fn meta(&self) -> &ModelMeta;
    /// Run on `input` (shaped as `preprocess::input_shape`) and fill `planes`.
    fn run_into(&mut self, input: &Tensor, planes: &mut ScorePlanes) -> Result<()>;
}

impl Network for Model {
    fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    fn run_into(&mut self, input: &Tensor, planes: &mut ScorePlanes) -> Result<()> {
        if self.meta.task != Task::Semantic {
            bail!("{}: the daemon decodes semantic models; instance decoding is not wired into the pipeline yet", self.path.display());
        }
        // tract consumes its inputs, so it gets a copy; the copy and tract's own
        // intermediate tensors are the only per-frame allocations of a frame.
        let outputs = self.run(input.clone())?;
        score_planes_into(&outputs[0], self.meta.layout, self.meta.activation, planes)
    }
}

/// Why a frame produced no result.
#[derive(Debug)]
pub enum FrameError {
    /// The frame's bytes could not be decoded: count it and go on.
    Corrupt(anyhow::Error),
    /// The network failed: a model problem, not a frame problem.
    Model(anyhow::Error),
}

/// Everything one judged frame produced. Pooled and reused.
pub struct FrameResult {
    pub report: FrameReport,
    pub image: RgbImage,
    pub overlay: RgbImage,
    pub map: SegMap,
    /// When the frame entered inference (for end-to-end latency).
    pub started: Option<Instant>,
}

impl FrameResult {
    pub fn new() -> FrameResult {
        FrameResult {
            report: FrameReport::default(),
            image: RgbImage::new(1, 1),
            overlay: RgbImage::new(1, 1),
            map: SegMap::new(0, 0),
            started: None,
        }
    }
}

impl Default for FrameResult {
    fn default() -> Self {
        Self::new()
    }
}

/// The per-frame work of the inference thread.
pub struct FrameProcessor {
    network: Box<dyn Network>,
    decider: Decider,
    device: String,
    model_name: String,
    classes: Vec<String>,
    decoder: FrameDecoder,
    scratch: PreprocessScratch,
    input: Tensor,
    planes: ScorePlanes,
    regions: RegionScratch,
}

/// Milliseconds since `t`, rounded to microseconds (readable JSON).
fn ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

impl FrameProcessor {
    pub fn new(network: Box<dyn Network>, decider: Decider, device: &str) -> FrameProcessor {
        let meta = network.meta();
        let input = new_input_tensor(meta);
        let (model_name, classes) = (meta.name.clone(), meta.classes.clone());
        FrameProcessor {
            network,
            decider,
            device: device.to_string(),
            model_name,
            classes,
            decoder: FrameDecoder::default(),
            scratch: PreprocessScratch::default(),
            input,
            planes: ScorePlanes::default(),
            regions: RegionScratch::default(),
        }
    }

    pub fn meta(&self) -> &ModelMeta {
        self.network.meta()
    }

    /// Judge `frame` into `out`. `queue_ms` is how long the frame waited for us.
    pub fn process(&mut self, frame: &Frame, out: &mut FrameResult, capture_ms: f64, queue_ms: f64) -> Result<(), FrameError> {
        let started = Instant::now();
        out.started = Some(started);
        self.decoder.decode(frame, &mut out.image).map_err(FrameError::Corrupt)?;
        let meta = self.network.meta();
        let geo = preprocess_into(&out.image, meta, &mut self.input, &mut self.scratch).map_err(FrameError::Model)?;
        let preprocess_ms = ms(started);

        let t = Instant::now();
        self.network.run_into(&self.input, &mut self.planes).map_err(FrameError::Model)?;
        let infer_ms = ms(t);

        let t = Instant::now();
        segment_into(&self.planes, &geo, &mut out.map);
        let r = &mut out.report;
        out.map.regions_into(&self.classes, &mut self.regions, &mut r.classes);
        let decode_ms = ms(t);

        r.verdict = self.decider.judge(&r.classes, &mut r.findings);
        set(&mut r.device, &self.device);
        set(&mut r.model, &self.model_name);
        set(&mut r.source, &frame.origin);
        r.task = Task::Semantic;
        r.frame = frame.seq;
        r.captured_unix_us = frame.captured_unix_us;
        r.kernel_ts_us = frame.kernel_ts_us;
        (r.width, r.height) = (out.map.width, out.map.height);
        r.latency = StageLatency { capture_ms, queue_ms, preprocess_ms, infer_ms, decode_ms, emit_ms: 0.0 };
        Ok(())
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn class_names(&self) -> &[String] {
        &self.classes
    }
}

/// Overwrite a String keeping its buffer.
fn set(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

/// Draw `result`'s overlay (on the output thread, off the inference path).
pub fn draw_overlay(result: &mut FrameResult, class_names: &[String]) {
    let regions: &[ClassRegion] = &result.report.classes;
    crate::overlay::render_into(&result.image, &result.map, regions, class_names, &mut result.overlay);
}

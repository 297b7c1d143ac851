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
use crate::model::instance::{Instance, InstanceDecoder, InstanceParams};
use crate::model::preprocess::{new_input_tensor, preprocess_into, Geometry, PreprocessScratch};
use crate::model::{ms_since, Model, ModelMeta, Task};
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
    /// Instance models: run and decode into `out`, painting `map` for overlays.
    fn run_instances(&mut self, _input: &Tensor, _geo: &Geometry, _decoder: &mut InstanceDecoder, _out: &mut Vec<Instance>, _map: &mut SegMap) -> Result<()> {
        bail!("this network is not an instance segmentation model")
    }
}

impl Network for Model {
    fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    fn run_instances(&mut self, input: &Tensor, geo: &Geometry, decoder: &mut InstanceDecoder, out: &mut Vec<Instance>, map: &mut SegMap) -> Result<()> {
        let outputs = self.run(input.clone())?;
        let size = (self.meta.width, self.meta.height);
        decoder.decode(&outputs, &self.meta.classes, geo, size, &InstanceParams::default(), out, Some(map))
    }

    fn run_into(&mut self, input: &Tensor, planes: &mut ScorePlanes) -> Result<()> {
        if self.meta.task != Task::Semantic {
            bail!("{} is an instance model: run_instances decodes it", self.path.display());
        }
        // tract consumes its inputs, so it gets a copy; the copy and tract's own
        // intermediate tensors are the only per-frame allocations of a frame.
        let outputs = self.run(input.clone())?;
        score_planes_into(&outputs[0], &self.meta, planes)
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
    instances: InstanceDecoder,
}

impl FrameProcessor {
    pub fn new(network: Box<dyn Network>, decider: Decider, device: &str) -> FrameProcessor {
        let meta = network.meta();
        let input = new_input_tensor(meta);
        let classes = meta.map_class_names();
        let model_name = meta.name.clone();
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
            instances: InstanceDecoder::default(),
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
        let preprocess_ms = ms_since(started);

        let task = meta.task;
        let r = &mut out.report;
        let (infer_ms, decode_ms) = if task == Task::Instance {
            // Network and decoding are one step here (the decoder reads tract's outputs in place).
            let t = Instant::now();
            self.network
                .run_instances(&self.input, &geo, &mut self.instances, &mut r.instances, &mut out.map)
                .map_err(FrameError::Model)?;
            let total = ms_since(t);
            let t = Instant::now();
            out.map.regions_into(&self.classes, &mut self.regions, &mut r.classes);
            (total, ms_since(t))
        } else {
            let t = Instant::now();
            self.network.run_into(&self.input, &mut self.planes).map_err(FrameError::Model)?;
            let infer_ms = ms_since(t);
            let t = Instant::now();
            segment_into(&self.planes, &geo, &mut out.map);
            out.map.regions_into(&self.classes, &mut self.regions, &mut r.classes);
            r.instances.clear();
            (infer_ms, ms_since(t))
        };

        r.verdict = if task == Task::Instance {
            self.decider.judge_instances(&r.instances, &mut r.findings)
        } else {
            self.decider.judge(&r.classes, &mut r.findings)
        };
        set(&mut r.device, &self.device);
        set(&mut r.model, &self.model_name);
        set(&mut r.source, &frame.origin);
        r.task = task;
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

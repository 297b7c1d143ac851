//! A segmentation model: load (ONNX → tract plan), preprocess, run, decode.

pub mod decode;
pub mod graph_stats;
pub mod half;
pub mod heap;
pub mod load;
pub mod meta;
pub mod parallel;
pub mod fastpath;
pub mod fconv;
pub mod pixels;
pub mod preprocess;
pub mod profile;
pub mod qdq;
pub mod qop;
pub mod resample;
pub mod resample_cv;
pub mod ultralytics;
pub mod contour;
pub mod instance;

use crate::mask::SegMap;
use anyhow::{bail, Context, Result};
use image::DynamicImage;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tract_onnx::prelude::*;

pub use meta::{MetaOverrides, ModelMeta, Task};

pub struct Model {
    pub path: PathBuf,
    pub meta: ModelMeta,
    /// The file's `metadata_props`, all of them.
    pub props: HashMap<String, String>,
    pub input_shape: [usize; 4],
    pub output_shapes: Vec<Vec<usize>>,
    pub opset: i64,
    /// Threads the matrix products run on.
    pub threads: usize,
    /// QOperator nodes written in the QDQ form at load.
    pub qop: qop::QopReport,
    /// Convolutions the int8 rewrite took over, and those it left in float.
    pub int8: qdq::RewriteReport,
    /// Half-precision tensors and types widened to float32 at load.
    pub half: half::HalfReport,
    /// Float convolutions edgeseg's own kernels took over.
    pub f32conv: fconv::FloatRewriteReport,
    /// Which slow tract ops run as edgeseg's bit-identical equivalents.
    pub fastpath: fastpath::FastpathReport,
    plan: Arc<TypedRunnableModel>,
}

/// Milliseconds spent in each stage of one frame.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StageTimes {
    pub preprocess_ms: f64,
    pub infer_ms: f64,
    pub decode_ms: f64,
}

/// Milliseconds in `d`, rounded to microseconds: plenty of resolution, and
/// reports stay readable.
pub fn round_ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub(crate) fn ms_since(t: Instant) -> f64 {
    round_ms(t.elapsed())
}

impl Model {
    /// Load a model that runs on one thread.
    pub fn load(path: &Path, flags: &MetaOverrides) -> Result<Model> {
        Self::load_with_threads(path, flags, 1)
    }

    /// Load a model whose matrix products run on `threads` threads.
    pub fn load_with_threads(path: &Path, flags: &MetaOverrides, threads: usize) -> Result<Model> {
        let threads = threads.max(1);
        heap::retain_freed_tensors();
        let l = load::load(path, flags, threads)?;
        let model = Model {
            path: path.to_path_buf(),
            meta: l.meta,
            props: l.props,
            input_shape: l.input_shape,
            output_shapes: l.output_shapes,
            opset: l.opset,
            threads,
            half: l.half,
            qop: l.qop,
            int8: l.int8,
            f32conv: l.f32conv,
            fastpath: l.fastpath,
            plan: l.plan,
        };
        model.check_output()?;
        Ok(model)
    }

    /// The class count in the metadata must match what the graph really outputs.
    fn check_output(&self) -> Result<()> {
        if self.meta.task != Task::Semantic {
            return Ok(());
        }
        let shape = self.output_shapes.first().context("model has no output")?;
        let channels = match (shape.as_slice(), self.meta.layout) {
            ([1, c, _, _], meta::Layout::Nchw) | ([1, _, _, c], meta::Layout::Nhwc) => *c,
            ([1, _, _], _) => 1,
            _ => bail!(
                "{}: output shape {shape:?} is not a semantic map [1, classes, H, W]; fix: for instance models \
                 set edgeseg.task=instance in the metadata",
                self.path.display()
            ),
        };
        let expected = if channels == 1 { 2 } else { channels };
        if self.meta.classes.len() != expected {
            bail!(
                "{}: {} class names but the model outputs {channels} channel(s) ({expected} classes); fix: pass \
                 --classes with {expected} names, background first",
                self.path.display(),
                self.meta.classes.len()
            );
        }
        Ok(())
    }

    /// The optimised graph, for inspection.
    pub fn graph(&self) -> &TypedModel {
        self.plan.model()
    }

    /// Run the network on an already preprocessed input tensor.
    pub fn run(&self, input: Tensor) -> Result<TVec<TValue>> {
        self.plan.run(tvec!(input.into())).with_context(|| format!("running {}", self.path.display()))
    }

    /// Preprocess one image and run the network; the outputs, the geometry and
    /// the milliseconds of both steps.
    fn preprocess_and_run(&self, img: &DynamicImage) -> Result<(TVec<TValue>, preprocess::Geometry, f64, f64)> {
        let t = Instant::now();
        let (input, geo) = preprocess::preprocess(img, &self.meta);
        let preprocess_ms = ms_since(t);
        let t = Instant::now();
        let outputs = self.run(input)?;
        Ok((outputs, geo, preprocess_ms, ms_since(t)))
    }

    /// Instance segmentation of one image (YOLO-seg models), in source pixels.
    /// With `paint`, the instances are also drawn into that class map (see
    /// `ModelMeta::map_class_names`).
    pub fn instances(
        &self,
        img: &DynamicImage,
        params: &instance::InstanceParams,
        paint: Option<&mut SegMap>,
    ) -> Result<(Vec<instance::Instance>, StageTimes)> {
        if self.meta.task != Task::Instance {
            bail!("{} is a semantic model; instance decoding does not apply", self.path.display());
        }
        let (outputs, geo, preprocess_ms, infer_ms) = self.preprocess_and_run(img)?;
        let t = Instant::now();
        let mut found = Vec::new();
        instance::InstanceDecoder::default()
            .decode(&outputs, &self.meta.classes, &geo, (self.meta.width, self.meta.height), params, &mut found, paint)
            .with_context(|| format!("decoding the outputs of {}", self.path.display()))?;
        let decode_ms = ms_since(t);
        Ok((found, StageTimes { preprocess_ms, infer_ms, decode_ms }))
    }

    /// Semantic segmentation of one image at its own resolution.
    pub fn segment(&self, img: &DynamicImage) -> Result<(SegMap, StageTimes)> {
        if self.meta.task != Task::Semantic {
            bail!("{} is an instance model; semantic decoding does not apply", self.path.display());
        }
        let (outputs, geo, preprocess_ms, infer_ms) = self.preprocess_and_run(img)?;
        let t = Instant::now();
        let planes = decode::score_planes(&outputs[0], &self.meta)?;
        let map = decode::segment(&planes, &geo);
        let decode_ms = ms_since(t);
        Ok((map, StageTimes { preprocess_ms, infer_ms, decode_ms }))
    }
}

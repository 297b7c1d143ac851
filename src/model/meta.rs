//! What a model needs to be run: task, classes, input geometry, normalisation.
//!
//! Read from the ONNX `metadata_props` that `scripts/` writes (keys `edgeseg.*`,
//! documented in `scripts/onnx_meta.py`), completed from the graph's input and
//! output shapes, and overridable from the command line so that models exported
//! by other tools work too.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Semantic,
    Instance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// One channel, ITU-R BT.601 luma (as PIL's `convert("L")`).
    Gray,
    Rgb,
    Bgr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Scale each axis to the input size (aspect ratio not kept).
    Stretch,
    /// Keep aspect ratio, pad with gray 114 (as ultralytics does).
    Letterbox,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Softmax,
    Sigmoid,
    /// Outputs are already probabilities.
    None,
}

/// Where a metadata field came from, for `inspect-model` and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Metadata,
    Flag,
    Graph,
    Default,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelMeta {
    pub name: String,
    pub task: Task,
    pub classes: Vec<String>,
    pub layout: Layout,
    pub width: usize,
    pub height: usize,
    pub color: ColorMode,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub resize: ResizeMode,
    pub activation: Activation,
    /// Why `activation` was chosen (flag, metadata, the graph's last op, or the default), for `inspect-model`.
    pub activation_reason: String,
    /// Probability above which a one-channel (binary) model's pixel is foreground.
    pub binary_threshold: f32,
    /// Origin of each field above, by field name.
    pub origins: Vec<(&'static str, Origin)>,
}

impl ModelMeta {
    /// Names by class-map value (0 = background). Semantic models' classes
    /// already start with background; instance classes start at 0, so their
    /// maps paint class k as k + 1.
    pub fn map_class_names(&self) -> Vec<String> {
        match self.task {
            Task::Semantic => self.classes.clone(),
            Task::Instance => std::iter::once("background".to_string()).chain(self.classes.iter().cloned()).collect(),
        }
    }

    pub fn channels(&self) -> usize {
        match self.color {
            ColorMode::Gray => 1,
            ColorMode::Rgb | ColorMode::Bgr => 3,
        }
    }
}

/// Largest input side a model may declare: planning a graph for a larger
/// input allocates tensors of that size (8192 x 8192 x 3 float32 is 768 MiB).
pub const MAX_INPUT_SIDE: usize = 8192;

/// Command-line overrides for models without (or with wrong) metadata.
#[derive(Clone, Debug, Default)]
pub struct MetaOverrides {
    pub classes: Option<Vec<String>>,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    pub size: Option<(usize, usize)>,
    pub color: Option<ColorMode>,
    pub activation: Option<Activation>,
    pub binary_threshold: Option<f32>,
}

/// A binary model's foreground threshold must be a probability strictly between 0 and 1
/// (the one check behind the flag, the metadata key and the config key).
pub fn check_threshold(t: f32) -> Result<f32> {
    if t > 0.0 && t < 1.0 {
        Ok(t)
    } else {
        bail!("binary threshold {t} is not a probability strictly between 0 and 1 (e.g. 0.5)")
    }
}

/// Parse a binary model's foreground threshold (see [`check_threshold`]).
pub fn parse_threshold(s: &str) -> Result<f32> {
    let t = s.trim().parse::<f32>().map_err(|_| anyhow::anyhow!("threshold {s:?} is not a number (e.g. 0.5)"))?;
    check_threshold(t)
}

/// Parse a size written `WIDTHxHEIGHT` or a single number for a square.
pub fn parse_size(s: &str) -> Result<(usize, usize)> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    let parsed = match s.split_once(['x', 'X']) {
        Some((w, h)) => parse(w).zip(parse(h)),
        None => parse(s).map(|n| (n, n)),
    };
    parsed.with_context(|| format!("size {s:?} is not WIDTHxHEIGHT (e.g. 256x256) or a single positive number"))
}

/// Parse a list of floats written as JSON (`[0.5, 0.5]`) or comma separated.
pub fn parse_floats(s: &str) -> Result<Vec<f32>> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    let values: Result<Vec<f32>, _> = inner.split(',').map(|v| v.trim().parse::<f32>()).collect();
    match values {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => bail!("{s:?} is not a list of numbers (write 0.5 or 0.485,0.456,0.406)"),
    }
}

/// Parse a class list written as JSON (`["a","b"]`) or comma separated.
pub fn parse_classes(s: &str) -> Result<Vec<String>> {
    let trimmed = s.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).with_context(|| format!("{s:?} is not a JSON list of class names"));
    }
    let v: Vec<String> = trimmed.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
    if v.is_empty() {
        bail!("empty class list (write background,scratch,spot)");
    }
    Ok(v)
}

macro_rules! from_str_enum {
    ($ty:ty, $what:literal, { $($text:literal => $value:expr),+ $(,)? }) => {
        impl FromStr for $ty {
            type Err = anyhow::Error;
            fn from_str(s: &str) -> Result<Self> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($value),)+
                    other => bail!("unknown {} {other:?}; expected one of: {}", $what, [$($text),+].join(", ")),
                }
            }
        }
    };
}

from_str_enum!(Task, "task", { "semantic" => Task::Semantic, "segment" => Task::Instance, "instance" => Task::Instance });
from_str_enum!(ColorMode, "colour mode", { "gray" => ColorMode::Gray, "grey" => ColorMode::Gray, "rgb" => ColorMode::Rgb, "bgr" => ColorMode::Bgr });
from_str_enum!(Layout, "input layout", { "nchw" => Layout::Nchw, "nhwc" => Layout::Nhwc });
from_str_enum!(ResizeMode, "resize mode", { "stretch" => ResizeMode::Stretch, "letterbox" => ResizeMode::Letterbox });
from_str_enum!(Activation, "output activation", { "softmax" => Activation::Softmax, "sigmoid" => Activation::Sigmoid, "none" => Activation::None });

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        })
    }
}

/// Shape facts read off the graph: the input dims where they are fixed, and
/// the output's channel count.
#[derive(Clone, Debug, Default)]
pub struct GraphShapes {
    /// Input dims; `None` for a symbolic (dynamic) dim.
    pub input: Vec<Option<usize>>,
    /// Output dims; `None` for a symbolic dim.
    pub output: Vec<Option<usize>>,
    /// The last value-changing op before the first output (shape-only ops such as
    /// Reshape, Transpose, Resize or a QDQ pair skipped): its op type and node name.
    pub output_op: Option<(String, String)>,
}

/// Combine metadata properties, graph shapes and flags into one `ModelMeta`.
/// `props` holds the model's `metadata_props` without the `onnx.metadata_props.` prefix.
pub fn resolve(props: &HashMap<String, String>, shapes: &GraphShapes, flags: &MetaOverrides) -> Result<ModelMeta> {
    let mut origins = Vec::new();
    let get = |key: &str| props.get(&format!("edgeseg.{key}")).map(String::as_str);
    let field = |key: &str| format!("metadata field edgeseg.{key}");

    let task = match get("task") {
        Some(t) => t.parse().with_context(|| field("task"))?,
        None => Task::Semantic,
    };
    origins.push(("task", if get("task").is_some() { Origin::Metadata } else { Origin::Default }));

    // Layout: metadata, else where the channel dim sits (1 or 3 channels).
    let layout = match get("input_layout") {
        Some(l) => {
            origins.push(("layout", Origin::Metadata));
            l.parse().with_context(|| field("input_layout"))?
        }
        None => {
            origins.push(("layout", Origin::Graph));
            match shapes.input.as_slice() {
                [_, _, _, Some(1 | 3)] if !matches!(shapes.input[1], Some(1 | 3)) => Layout::Nhwc,
                _ => Layout::Nchw,
            }
        }
    };
    if shapes.input.len() != 4 {
        bail!(
            "the model's input has rank {} ({:?}); edgeseg runs image models with a 4-D input (NCHW or NHWC)",
            shapes.input.len(),
            shapes.input
        );
    }
    let (c_dim, h_dim, w_dim) = match layout {
        Layout::Nchw => (shapes.input[1], shapes.input[2], shapes.input[3]),
        Layout::Nhwc => (shapes.input[3], shapes.input[1], shapes.input[2]),
    };

    let color = match (flags.color, get("color")) {
        (Some(c), _) => {
            origins.push(("color", Origin::Flag));
            c
        }
        (None, Some(c)) => {
            origins.push(("color", Origin::Metadata));
            c.parse().with_context(|| field("color"))?
        }
        (None, None) => {
            origins.push(("color", Origin::Graph));
            match c_dim {
                Some(1) => ColorMode::Gray,
                _ => ColorMode::Rgb,
            }
        }
    };
    let channels = if color == ColorMode::Gray { 1 } else { 3 };
    if let Some(c) = c_dim {
        if c != channels {
            bail!(
                "the model's input has {c} channel(s) but the colour mode {color:?} gives {channels}; \
                 fix: pass --color {} (or correct edgeseg.color in the model's metadata)",
                if c == 1 { "gray" } else { "rgb" }
            );
        }
    }

    let graph_size = h_dim.zip(w_dim).map(|(h, w)| (w, h));
    let meta_size = get("input_size").map(|s| parse_size(s).with_context(|| field("input_size"))).transpose()?;
    let (width, height) = match (flags.size, meta_size, graph_size) {
        (Some(flag), _, Some(graph)) if flag != graph => bail!(
            "wrong input size: the model takes {}x{} (fixed in the graph) but --size asks for {}x{}; \
             fix: drop --size, or re-export the model with a dynamic or {}x{} input",
            graph.0, graph.1, flag.0, flag.1, flag.0, flag.1
        ),
        (Some(flag), _, _) => {
            origins.push(("size", Origin::Flag));
            flag
        }
        (None, Some(m), Some(graph)) if m != graph => bail!(
            "the model's metadata says edgeseg.input_size {}x{} but its graph input is fixed at {}x{}; \
             fix: re-export the model, or pass --size {}x{}",
            m.0, m.1, graph.0, graph.1, graph.0, graph.1
        ),
        (None, Some(m), _) => {
            origins.push(("size", Origin::Metadata));
            m
        }
        (None, None, Some(graph)) => {
            origins.push(("size", Origin::Graph));
            graph
        }
        (None, None, None) => bail!(
            "the model has a dynamic input size and no edgeseg.input_size metadata; fix: pass --size WIDTHxHEIGHT \
             (the size it was trained at, e.g. --size 256x256)"
        ),
    };

    if width > MAX_INPUT_SIDE || height > MAX_INPUT_SIDE {
        bail!(
            "the model's input size {width}x{height} is larger than the {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE} edgeseg plans for; \
             fix: check the model's input shape or edgeseg.input_size (or pass --size)"
        );
    }

    let pick_floats = |key: &'static str, flag: &Option<Vec<f32>>, default: f32, origins: &mut Vec<_>| -> Result<Vec<f32>> {
        let (v, origin) = match (flag, get(key)) {
            (Some(v), _) => (v.clone(), Origin::Flag),
            (None, Some(s)) => (parse_floats(s).with_context(|| field(key))?, Origin::Metadata),
            (None, None) => (vec![default], Origin::Default),
        };
        origins.push((key, origin));
        match v.len() {
            1 => Ok(vec![v[0]; channels]),
            n if n == channels => Ok(v),
            n => bail!("{key} has {n} values but the model takes {channels} channel(s); fix: give 1 or {channels} values"),
        }
    };
    let mean = pick_floats("mean", &flags.mean, 0.0, &mut origins)?;
    let std = pick_floats("std", &flags.std, 1.0, &mut origins)?;
    if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        bail!("std value {bad} is not a positive number; fix: pass --std with positive values");
    }

    let out_channels = match shapes.output.as_slice() {
        [_, Some(c), _, _] => Some(*c),
        _ => None,
    };
    let classes = match (&flags.classes, get("classes")) {
        (Some(c), _) => {
            origins.push(("classes", Origin::Flag));
            c.clone()
        }
        (None, Some(s)) => {
            origins.push(("classes", Origin::Metadata));
            parse_classes(s).with_context(|| field("classes"))?
        }
        (None, None) => {
            origins.push(("classes", Origin::Graph));
            match out_channels {
                Some(1) => vec!["background".into(), "foreground".into()],
                // Checked before naming them: a file declaring 2^40 channels must not allocate 2^40 names.
                Some(n) if n > crate::mask::MAX_CLASSES => bail!(
                    "the model's output declares {n} channels (classes); edgeseg stores class ids in 8 bits (at most {}); \
                     fix: check the model, or pass --classes",
                    crate::mask::MAX_CLASSES
                ),
                Some(n) => (0..n).map(|i| if i == 0 { "background".into() } else { format!("class{i}") }).collect(),
                None => bail!("cannot tell the number of classes from the output shape {:?}; fix: pass --classes", shapes.output),
            }
        }
    };
    if classes.len() > crate::mask::MAX_CLASSES {
        bail!(
            "{} classes; edgeseg stores class ids in 8 bits (at most {}); fix: merge classes or pass fewer --classes",
            classes.len(),
            crate::mask::MAX_CLASSES
        );
    }
    if task == Task::Semantic {
        if let Some(n) = out_channels {
            let expected = if n == 1 { 2 } else { n };
            if classes.len() != expected {
                bail!(
                    "{} class names given but the model outputs {n} channel(s) ({expected} classes); \
                     fix: give {expected} names to --classes, background first",
                    classes.len()
                );
            }
        }
    }

    let metadata_activation = get("output_activation").map(|a| a.parse::<Activation>().with_context(|| field("output_activation"))).transpose()?;
    let (activation, activation_reason, origin) =
        pick_activation(flags.activation, metadata_activation, shapes.output_op.as_ref(), out_channels);
    origins.push(("activation", origin));
    let (binary_threshold, origin) = match (flags.binary_threshold, get("binary_threshold")) {
        (Some(t), _) => (check_threshold(t)?, Origin::Flag),
        (None, Some(t)) => (parse_threshold(t).with_context(|| field("binary_threshold"))?, Origin::Metadata),
        (None, None) => (0.5, Origin::Default),
    };
    // Listed where it matters: for one-channel models, or when something set it.
    if out_channels == Some(1) || origin != Origin::Default {
        origins.push(("binary_threshold", origin));
    }
    let resize = match get("resize") {
        Some(r) => r.parse().with_context(|| field("resize"))?,
        None => ResizeMode::Stretch,
    };
    let name = get("name").map(str::to_string).unwrap_or_else(|| "model".into());

    Ok(ModelMeta {
        name,
        task,
        classes,
        layout,
        width,
        height,
        color,
        mean,
        std,
        resize,
        activation,
        activation_reason,
        binary_threshold,
        origins,
    })
}

/// The activation edgeseg applies to a semantic output, and why.
///
/// A flag wins. Then the graph: an output computed by a final `Sigmoid` or
/// `Softmax` is a probability already, and applying the activation again would
/// make every pixel of a binary model foreground (sigmoid(p) > 0.5 for any
/// p > 0), whatever metadata written by another tool says. Then metadata, then
/// the default for the channel count (one channel: sigmoid; more: softmax).
fn pick_activation(
    flag: Option<Activation>,
    metadata: Option<Activation>,
    output_op: Option<&(String, String)>,
    out_channels: Option<usize>,
) -> (Activation, String, Origin) {
    if let Some(a) = flag {
        return (a, "--activation".into(), Origin::Flag);
    }
    if let Some((op, node)) = output_op.filter(|(op, _)| op == "Sigmoid" || op == "Softmax") {
        let mut why = format!("the graph ends in {op} (node {node:?}): its outputs are probabilities already");
        if let Some(m) = metadata.filter(|m| *m != Activation::None) {
            why.push_str(&format!("; metadata's output_activation {m:?} not applied twice"));
            log::warn!("model metadata says output_activation {m:?} but the graph ends in {op} (node {node:?}); not applying it twice (--activation overrides)");
        }
        return (Activation::None, why, Origin::Graph);
    }
    if let Some(m) = metadata {
        return (m, "edgeseg.output_activation".into(), Origin::Metadata);
    }
    match out_channels {
        Some(1) => (Activation::Sigmoid, "one output channel, no final Sigmoid in the graph: logits".into(), Origin::Default),
        _ => (Activation::Softmax, "several output channels, no final Softmax in the graph: logits".into(), Origin::Default),
    }
}

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;

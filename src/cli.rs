//! Command-line interface: what each subcommand takes, with help that teaches.

use crate::model::meta::{self, Activation, ColorMode, MetaOverrides};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "edgeseg",
    version,
    about = "Edge inference runtime for industrial image segmentation",
    long_about = "edgeseg runs ONNX segmentation models (semantic like U-Net, instance like YOLO-seg) \
                  with tract on Raspberry Pi, Jetson and PCs: as a daemon (`run`: camera → model → \
                  pass/fail → MQTT, GPIO reject line, archive, dashboard) or on files (`infer`, `eval`).\n\n\
                  Models exported by scripts/ and ultralytics -seg exports carry their own metadata \
                  (classes, input size, normalisation); other ONNX models work with --classes, --size, \
                  --mean and --std.",
    after_help = "Examples:\n  edgeseg run                                   # the demo: bundled frames, dashboard on :8080\n  \
                  edgeseg run --config boards/rpi5.toml\n  \
                  edgeseg infer samples/ --model models/unet_defects.onnx --out out/\n  \
                  edgeseg inspect-model models/unet_defects.onnx\n  \
                  edgeseg eval --model models/unet_defects.onnx --data data/defects/test\n  \
                  edgeseg bench --model models/unet_defects.onnx --threads 2\n  \
                  edgeseg probe\n  edgeseg dashboard --mqtt mqtt://broker:1883\n\n\
                  Log detail: RUST_LOG=debug edgeseg ..."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Segment images: mask PNG, overlay PNG and a JSON report per image.
    Infer(InferArgs),
    /// Show a model's inputs, outputs, metadata, optimised ops and compute precision.
    InspectModel(InspectArgs),
    /// Score a model on a labelled split: IoU/mIoU (semantic) or COCO mask mAP (instance).
    Eval(EvalArgs),
    /// Time the network: warm-up, then N runs; median/p90/p99 latency, FPS, peak RSS.
    Bench(BenchArgs),
    /// Run the daemon: camera (or replay) → model → pass/fail → MQTT, GPIO, archive, stdout.
    Run(RunArgs),
    /// List cameras (V4L2: card, formats, sizes, frame rates) and GPIO chips with their lines.
    Probe(ProbeArgs),
    /// Fleet dashboard: every device publishing to an MQTT broker, in a web page.
    Dashboard(DashboardArgs),
}

/// How the network runs.
#[derive(Args, Debug, Clone)]
pub struct RunFlags {
    /// Threads for the matrix products (tract's executor).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub threads: u16,
}

/// Flags that describe a model lacking edgeseg metadata (or override it).
#[derive(Args, Debug, Clone, Default)]
pub struct ModelFlags {
    /// Class names, background first: "background,scratch,spot" or a JSON list.
    #[arg(long, value_name = "NAMES")]
    pub classes: Option<String>,
    /// Per-channel mean on the 0..1 scale, e.g. 0.485,0.456,0.406.
    #[arg(long, value_name = "VALUES")]
    pub mean: Option<String>,
    /// Per-channel std on the 0..1 scale, e.g. 0.229,0.224,0.225.
    #[arg(long, value_name = "VALUES")]
    pub std: Option<String>,
    /// Model input size WIDTHxHEIGHT (needed only for models with a dynamic input).
    #[arg(long, value_name = "WxH")]
    pub size: Option<String>,
    /// Colour mode of the model input: gray, rgb or bgr.
    #[arg(long, value_name = "MODE")]
    pub color: Option<String>,
    /// Activation edgeseg applies to a semantic model's output: softmax, sigmoid or none
    /// (the output is probabilities already). Default: none when the graph ends in
    /// Sigmoid or Softmax, else the model's metadata, else sigmoid for one channel and
    /// softmax for several. `inspect-model` says which it found and why.
    #[arg(long, value_name = "ACTIVATION")]
    pub activation: Option<String>,
    /// A one-channel (binary) model's foreground threshold on the probability, 0..1
    /// exclusive (default: the model's edgeseg.binary_threshold, else 0.5).
    #[arg(long, value_name = "P")]
    pub binary_threshold: Option<String>,
}

impl ModelFlags {
    pub fn overrides(&self) -> Result<MetaOverrides> {
        use anyhow::Context;
        Ok(MetaOverrides {
            classes: self.classes.as_deref().map(meta::parse_classes).transpose().context("--classes")?,
            mean: self.mean.as_deref().map(meta::parse_floats).transpose().context("--mean")?,
            std: self.std.as_deref().map(meta::parse_floats).transpose().context("--std")?,
            size: self.size.as_deref().map(meta::parse_size).transpose().context("--size")?,
            color: self.color.as_deref().map(str::parse::<ColorMode>).transpose().context("--color")?,
            activation: self.activation.as_deref().map(str::parse::<Activation>).transpose().context("--activation")?,
            binary_threshold: self.binary_threshold.as_deref().map(meta::parse_threshold).transpose().context("--binary-threshold")?,
        })
    }
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// Image files (PNG, JPEG) or directories of them.
    #[arg(required = true, value_name = "IMAGE|DIR")]
    pub inputs: Vec<PathBuf>,
    /// ONNX model file.
    #[arg(long, short, value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// Write NAME.mask.png, NAME.overlay.png and NAME.json here. Without it,
    /// one JSON report per image goes to stdout.
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not draw overlay images.
    #[arg(long)]
    pub no_overlay: bool,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub model_flags: ModelFlags,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// ONNX model file.
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model_flags: ModelFlags,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// ONNX model file.
    #[arg(long, short, value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// A split folder with images/ and masks/ (class-index PNGs), or a dataset
    /// root holding such splits (then --split picks one).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Split to use when --data is a dataset root.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Evaluate only the first N images (sorted by name).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Instance models: COCO ground truth (default DATA/annotations/instances_SPLIT.json).
    #[arg(long, value_name = "FILE.json")]
    pub annotations: Option<PathBuf>,
    /// Instance models: also write the detections as COCO results JSON (for pycocotools).
    #[arg(long, value_name = "FILE.json")]
    pub predictions: Option<PathBuf>,
    /// Instance models: confidence threshold (COCO evaluation usually uses a low one).
    #[arg(long, default_value_t = 0.001, value_name = "SCORE")]
    pub conf: f32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub model_flags: ModelFlags,
}

#[derive(Args, Debug, Clone)]
#[command(after_help = "Without --config, runs the embedded demo: the bundled sample frames at 5 FPS \
through models/unet_defects.onnx, one JSON line per frame on stdout.\n\n\
Signals: SIGTERM/SIGINT drain and stop (MQTT status goes offline); SIGHUP reloads \
the config and the model without restarting; a bad reload (config, model, or a source or \
sink that cannot be opened) is logged and ignored: the running pipeline goes on.\n\n\
Under systemd (Type=notify, boards/edgeseg.service) it reports readiness and feeds the \
watchdog while frames are judged.\n\n\
Examples:\n  edgeseg run\n  edgeseg run --config boards/rpi5.toml\n  \
rpicam-vid -t 0 --codec mjpeg -o - | edgeseg run --config boards/rpi5-stdin.toml\n  \
edgeseg run --config boards/desktop.toml --check")]
pub struct RunArgs {
    /// Board config (TOML). See boards/README.md for every key.
    #[arg(long, short, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Stop after N judged frames (overrides pipeline.max_frames).
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
    /// Threads for the model (overrides model.threads).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub threads: Option<u16>,
    /// Load and check the config and the model, then exit.
    #[arg(long)]
    pub check: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// ONNX model file.
    #[arg(long, short, value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// Image to feed (preprocessed once, outside the timing). Default: a mid-gray frame.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Timed runs.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Untimed runs first (caches, thread pool start-up).
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time the whole daemon pipeline instead of the network alone: the bundled
    /// frames as fast as possible through capture, decode, preprocess, infer,
    /// decode, decision and a JSON sink; prints the overhead beside inference
    /// and the throughput against 1/infer latency.
    #[arg(long)]
    pub pipeline: bool,
    /// Also time every node of the network and print where the time goes, by
    /// operator (share of the total, ms per run, node count), slowest first.
    #[arg(long, conflicts_with = "pipeline")]
    pub profile: bool,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub model_flags: ModelFlags,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(after_help = "Subscribes to <prefix>/+/detections, <prefix>/+/status and <prefix>/+/stats \
(see docs/mqtt.md) and serves a page listing every device: online/offline (retained status and \
last will), rates, counters, latency and recent defects; also /api/status, /api/stats, /api/events \
and /metrics.\n\nExamples:\n  edgeseg dashboard --mqtt mqtt://127.0.0.1:1883\n  \
edgeseg dashboard --mqtt mqtts://broker:8883 --listen 0.0.0.0:8090 --token \"$(cat /etc/edgeseg/token)\"")]
pub struct DashboardArgs {
    /// Broker: mqtt://host[:port] or mqtts://host[:port] (system CA bundle).
    #[arg(long, value_name = "URL")]
    pub mqtt: String,
    /// Address and port of the page.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Required when --listen is not loopback: bearer token, or basic-auth password (any user).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Topic prefix the daemons publish under (sinks.mqtt.topic_prefix).
    #[arg(long, default_value = "edgeseg", value_name = "PREFIX")]
    pub topic_prefix: String,
}

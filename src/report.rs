//! What the pipeline says about one frame (`FrameReport`) and about a run so
//! far (`Stats`). Both serialise to the JSON documented in `docs/mqtt.md`; the
//! same documents go to MQTT, stdout, the archive and the dashboard.

use crate::mask::{BBox, ClassRegion};
use crate::model::Task;
use serde::Serialize;

/// Pass or fail for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Pass,
    Fail,
}

/// Milliseconds per pipeline stage for one frame.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct StageLatency {
    /// Driver timestamp (or read start) to the frame being handed to inference.
    pub capture_ms: f64,
    /// Time the frame waited for the inference thread.
    pub queue_ms: f64,
    /// Decode (JPEG/YUYV) + resize + normalise into the input tensor.
    pub preprocess_ms: f64,
    pub infer_ms: f64,
    /// Output tensor → class map / instances → regions.
    pub decode_ms: f64,
    /// Decision + every sink's emit.
    pub emit_ms: f64,
}

impl StageLatency {
    /// Everything but the network itself: the runtime's overhead.
    pub fn overhead_ms(&self) -> f64 {
        self.preprocess_ms + self.decode_ms + self.emit_ms
    }
}

/// One defect that made the frame fail (or would have, outside the ROI).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Finding {
    pub class_id: u8,
    pub class: std::sync::Arc<str>,
    pub score: f32,
    pub area: u64,
    pub bbox: BBox,
}

/// The per-frame document (MQTT `edgeseg/<device>/detections`).
#[derive(Clone, Debug, Serialize, Default)]
pub struct FrameReport {
    pub device: String,
    /// Frame sequence number from the source.
    pub frame: u64,
    /// Capture time, microseconds since the Unix epoch.
    pub captured_unix_us: u64,
    /// Driver timestamp (CLOCK_MONOTONIC µs) when the source has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_ts_us: Option<u64>,
    /// Emission time, microseconds since the Unix epoch.
    pub emitted_unix_us: u64,
    /// File name or device the frame came from.
    pub source: String,
    pub width: usize,
    pub height: usize,
    pub model: String,
    pub task: Task,
    pub verdict: Verdict,
    /// The defects that decided `fail` (empty on pass).
    pub findings: Vec<Finding>,
    /// Every non-background class present in the frame, with components and COCO RLE
    /// (instance models: the union of each class's instances).
    pub classes: Vec<ClassRegion>,
    /// Instance models: each instance with class, score, box, area, COCO RLE, polygon.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<crate::model::instance::Instance>,
    pub latency: StageLatency,
}

/// Running totals (MQTT `edgeseg/<device>/stats`, dashboard counters).
#[derive(Clone, Debug, Serialize, Default, PartialEq)]
pub struct Stats {
    pub device: String,
    pub uptime_s: f64,
    /// Frames judged.
    pub frames: u64,
    pub pass: u64,
    pub fail: u64,
    /// Frames the capture thread replaced because inference was busy (newest wins).
    pub dropped: u64,
    /// Frames that could not be decoded (corrupt JPEG, truncated file), skipped.
    pub corrupt: u64,
    /// Frames judged per second over the last stats interval.
    pub fps: f64,
    /// Defect findings per class name since start.
    pub defects: std::collections::BTreeMap<String, u64>,
    /// Median latency per stage over the last stats interval.
    pub latency_median: StageLatency,
    /// Messages a sink could not deliver and had to discard (e.g. MQTT offline queue full).
    pub sink_overflow: u64,
}

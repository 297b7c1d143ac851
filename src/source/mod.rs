//! Frame sources: where frames come from. One trait, several implementations
//! chosen by the `[source]` table of the config.
//!
//! A source fills a recycled `Frame` (see `crate::frame`) and never decodes
//! compressed data itself: decoding happens on the inference thread, where a
//! corrupt JPEG is counted and skipped without stopping capture.

pub mod await_device;
pub mod dir;
pub mod jpeg_split;
pub mod mjpeg_stream;
pub mod v4l2;

use crate::frame::Frame;
use anyhow::Result;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// What `FrameSource::next_frame` produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// `frame` holds a new frame.
    Frame,
    /// The source is exhausted (a replay without `loop`, stdin closed).
    End,
    /// No frame: the camera is not there and is being retried with backoff
    /// (`await_device`); call again. The pipeline reports `camera missing` meanwhile.
    Missing,
}

pub trait FrameSource: Send {
    /// Human-readable description for logs: "v4l2 /dev/video0 MJPG 640x480@30".
    fn describe(&self) -> String;
    /// Block until the next frame is in `frame`. Transient trouble (a camera
    /// unplugged) is handled inside with retries and backoff; an `Err` here is
    /// fatal for the source.
    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next>;
    /// A replay that is not paced to a clock: every frame should be judged, so
    /// capture waits for inference instead of replacing a waiting frame.
    fn lossless(&self) -> bool {
        false
    }
}

/// `[source]` in a board config.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// The sample frames compiled into the binary (the demo).
    Sample(dir::SampleConfig),
    /// Replay image files from a directory or glob.
    Dir(dir::DirConfig),
    /// A V4L2 camera.
    V4l2(v4l2::V4l2Config),
    /// An MJPEG byte stream on standard input (`rpicam-vid --codec mjpeg -o -`).
    Stdin(mjpeg_stream::StdinConfig),
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Sample(dir::SampleConfig::default())
    }
}

impl SourceConfig {
    /// Open the configured source. `base` resolves relative paths (the config file's directory).
    pub fn open(&self, base: &std::path::Path) -> Result<Box<dyn FrameSource>> {
        Ok(match self {
            SourceConfig::Sample(c) => Box::new(dir::DirSource::samples(c)?),
            SourceConfig::Dir(c) => Box::new(dir::DirSource::open(c, base)?),
            SourceConfig::V4l2(c) => match v4l2::V4l2Source::open(c) {
                Ok(s) => Box::new(s),
                Err(e) if await_device::is_missing(&e) => {
                    let (config, max) = (c.clone(), Duration::from_secs(c.reconnect_max_s.max(1)));
                    let open = Box::new(move || v4l2::V4l2Source::open(&config));
                    Box::new(await_device::AwaitDevice::new(&format!("v4l2 {}", c.device), &e, max, open))
                }
                Err(e) => return Err(e),
            },
            SourceConfig::Stdin(c) => Box::new(mjpeg_stream::MjpegStream::stdin(c)),
        })
    }
}

/// Sleeps so that frames leave at `fps` on average (0 = as fast as possible).
pub struct Pacer {
    period: Option<Duration>,
    next: Option<std::time::Instant>,
}

impl Pacer {
    pub fn new(fps: f64) -> Pacer {
        // The config bounds fps (config::bounds); a period beyond a day anyway
        // saturates there instead of panicking in the conversion or in `next + period`.
        let period = (fps > 0.0 && fps.is_finite()).then(|| crate::config::bounds::duration_s(1.0 / fps));
        Pacer { period, next: None }
    }

    /// Whether frames are paced to a clock (fps > 0).
    pub fn is_paced(&self) -> bool {
        self.period.is_some()
    }

    pub fn wait(&mut self) {
        let Some(period) = self.period else { return };
        let now = std::time::Instant::now();
        let due = self.next.unwrap_or(now);
        if due > now {
            std::thread::sleep(due - now);
        }
        // If we fell behind by more than a period, restart the schedule rather
        // than bursting to catch up.
        let base = if now > due + period { now } else { due };
        self.next = Some(base + period);
    }
}

/// Exponential backoff for reconnecting: 0.5 s, 1 s, 2 s ... capped.
pub struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Backoff {
        Backoff { current: Duration::from_millis(500), max }
    }
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        d
    }
    pub fn reset(&mut self) {
        self.current = Duration::from_millis(500);
    }
}

/// Paths in configs are relative to the config file.
pub fn resolve_path(base: &std::path::Path, p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

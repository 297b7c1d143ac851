//! What the device dashboard knows, shared between the `DashboardSink` (on
//! the pipeline's output thread) and the HTTP connection threads. Created
//! once per process, so it survives SIGHUP reloads. Every collection is
//! bounded; the sink never waits for a viewer.

use crate::report::{FrameReport, StageLatency, Stats};
use image::RgbImage;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Events queued per SSE client; a client this far behind is dropped.
pub const EVENT_QUEUE: usize = 64;
/// Latency samples kept for the chart.
pub const LATENCY_HISTORY: usize = 240;

/// Lock, taking over a lock whose holder panicked (the data are counters and rings: still usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Server-Sent Events fan-out over bounded per-client queues.
#[derive(Default)]
pub struct Broadcast {
    clients: Mutex<Vec<SyncSender<Arc<str>>>>,
    count: AtomicUsize,
}

impl Broadcast {
    pub fn subscribe(&self) -> Receiver<Arc<str>> {
        let (tx, rx) = sync_channel(EVENT_QUEUE);
        let mut c = lock(&self.clients);
        c.push(tx);
        self.count.store(c.len(), Ordering::Relaxed);
        rx
    }

    pub fn has_clients(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Queue `event` (a whole SSE message) for every client; a full or closed queue drops its client.
    pub fn send(&self, event: Arc<str>) {
        let mut c = lock(&self.clients);
        c.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        });
        self.count.store(c.len(), Ordering::Relaxed);
    }
}

/// One SSE message: `event: NAME` and the JSON on one `data:` line.
pub fn sse_event(name: &str, json: &str) -> Arc<str> {
    Arc::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// A failing frame kept for the page.
pub struct Failure {
    pub id: u64,
    pub frame: u64,
    pub source: String,
    pub captured_unix_us: u64,
    pub findings: Vec<crate::report::Finding>,
    /// The overlay (or the frame) as drawn; encoded to JPEG when first asked for.
    pub pixels: Option<Arc<RgbImage>>,
    pub jpeg: Option<Arc<Vec<u8>>>,
}

/// What `/api/failures` lists.
#[derive(Serialize)]
pub struct FailureInfo<'a> {
    pub id: u64,
    pub frame: u64,
    pub source: &'a str,
    pub captured_unix_us: u64,
    pub findings: &'a [crate::report::Finding],
    pub image: String,
}

#[derive(Serialize, Clone, Copy)]
pub struct LatencyPoint {
    pub frame: u64,
    pub unix_ms: u64,
    #[serde(flatten)]
    pub latency: StageLatency,
}

#[derive(Default)]
pub struct Live {
    pub frames: u64,
    pub pass: u64,
    pub fail: u64,
    pub defects: BTreeMap<String, u64>,
    /// The pipeline's own latest stats (dropped, corrupt, sink overflow).
    pub pipeline: Stats,
    /// dropped/corrupt/overflow of pipelines before the last reload.
    pub base: (u64, u64, u64),
    pub latency: VecDeque<LatencyPoint>,
    /// When the last frames were judged (for fps).
    pub times: VecDeque<Instant>,
    pub failures: VecDeque<Failure>,
    pub next_failure_id: u64,
}

/// The newest stream frame.
#[derive(Default)]
pub struct StreamFrame {
    pub seq: u64,
    pub jpeg: Option<Arc<Vec<u8>>>,
}

pub struct DeviceState {
    pub device: Mutex<String>,
    pub failures_kept: usize,
    pub stream_interval: Duration,
    /// `/api/status` document (model, board); replaced on reload.
    pub info: Mutex<serde_json::Value>,
    pub live: Mutex<Live>,
    pub stream: Mutex<StreamFrame>,
    pub stream_cv: Condvar,
    /// Connected MJPEG viewers: frames are JPEG-encoded only while there is one.
    pub viewers: AtomicUsize,
    pub events: Broadcast,
    pub started: Instant,
}

impl DeviceState {
    pub fn new(config: &super::DashboardConfig) -> DeviceState {
        DeviceState {
            device: Mutex::new(String::new()),
            failures_kept: config.failures_kept,
            stream_interval: crate::config::bounds::duration_s(1.0 / config.stream_fps),
            info: Mutex::new(serde_json::Value::Null),
            live: Mutex::new(Live::default()),
            stream: Mutex::new(StreamFrame::default()),
            stream_cv: Condvar::new(),
            viewers: AtomicUsize::new(0),
            events: Broadcast::default(),
            started: Instant::now(),
        }
    }

    /// A new pipeline starts (first run or reload): its counters restart at zero.
    pub fn attach(&self, device: &str, info: serde_json::Value) {
        *lock(&self.device) = device.to_string();
        *lock(&self.info) = info;
        let mut l = lock(&self.live);
        let p = std::mem::take(&mut l.pipeline);
        l.base = (l.base.0 + p.dropped, l.base.1 + p.corrupt, l.base.2 + p.sink_overflow);
    }

    /// Count a judged frame; keep its latency; keep it (pixels shared) when it failed.
    pub fn record(&self, report: &FrameReport, failing_pixels: Option<Arc<RgbImage>>) {
        let mut l = lock(&self.live);
        l.frames += 1;
        match report.verdict {
            crate::report::Verdict::Pass => l.pass += 1,
            crate::report::Verdict::Fail => l.fail += 1,
        }
        for f in &report.findings {
            *l.defects.entry(f.class.to_string()).or_default() += 1;
        }
        if l.latency.len() >= LATENCY_HISTORY {
            l.latency.pop_front();
        }
        l.latency.push_back(LatencyPoint { frame: report.frame, unix_ms: report.emitted_unix_us / 1000, latency: report.latency });
        let now = Instant::now();
        l.times.push_back(now);
        while l.times.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(5)) {
            l.times.pop_front();
        }
        if report.verdict == crate::report::Verdict::Fail {
            let id = l.next_failure_id;
            l.next_failure_id += 1;
            if l.failures.len() >= self.failures_kept {
                l.failures.pop_front();
            }
            l.failures.push_back(Failure {
                id,
                frame: report.frame,
                source: report.source.clone(),
                captured_unix_us: report.captured_unix_us,
                findings: report.findings.clone(),
                pixels: failing_pixels,
                jpeg: None,
            });
        }
    }

    pub fn set_pipeline_stats(&self, stats: &Stats) {
        lock(&self.live).pipeline = stats.clone();
    }

    /// Running totals in the MQTT `stats` shape (the same page component draws both).
    pub fn stats(&self) -> Stats {
        let l = lock(&self.live);
        let fps = match (l.times.front(), l.times.back()) {
            (Some(a), Some(b)) if l.times.len() > 1 && *b > *a => (l.times.len() - 1) as f64 / b.duration_since(*a).as_secs_f64(),
            _ => 0.0,
        };
        let recent: Vec<StageLatency> = l.latency.iter().rev().take(50).map(|p| p.latency).collect();
        Stats {
            device: lock(&self.device).clone(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            frames: l.frames,
            pass: l.pass,
            fail: l.fail,
            dropped: l.base.0 + l.pipeline.dropped,
            corrupt: l.base.1 + l.pipeline.corrupt,
            fps: (fps * 100.0).round() / 100.0,
            defects: l.defects.clone(),
            latency_median: median_latency(&recent),
            sink_overflow: l.base.2 + l.pipeline.sink_overflow,
        }
    }

    /// A new stream frame for the viewers.
    pub fn publish_frame(&self, jpeg: Arc<Vec<u8>>) {
        let mut s = lock(&self.stream);
        s.seq += 1;
        s.jpeg = Some(jpeg);
        self.stream_cv.notify_all();
    }

    /// Wait up to `timeout` for a frame newer than `seq`.
    pub fn next_frame(&self, seq: u64, timeout: Duration) -> Option<(u64, Arc<Vec<u8>>)> {
        let s = lock(&self.stream);
        let (s, _) = self.stream_cv.wait_timeout_while(s, timeout, |s| s.seq <= seq || s.jpeg.is_none()).unwrap_or_else(|e| e.into_inner());
        match &s.jpeg {
            Some(j) if s.seq > seq => Some((s.seq, j.clone())),
            _ => None,
        }
    }

    /// The JPEG of failure `id`, encoded on first request and kept.
    pub fn failure_jpeg(&self, id: u64) -> Option<Arc<Vec<u8>>> {
        let pixels = {
            let l = lock(&self.live);
            let f = l.failures.iter().find(|f| f.id == id)?;
            if let Some(j) = &f.jpeg {
                return Some(j.clone());
            }
            f.pixels.clone()?
        };
        // Encode outside the lock: the sink must not wait for it.
        let jpeg = Arc::new(encode_jpeg(&pixels, 80).ok()?);
        let mut l = lock(&self.live);
        if let Some(f) = l.failures.iter_mut().find(|f| f.id == id) {
            f.jpeg = Some(jpeg.clone());
            f.pixels = None;
        }
        Some(jpeg)
    }
}

/// Per-stage medians (the same definition as the pipeline's stats).
pub fn median_latency(samples: &[StageLatency]) -> StageLatency {
    crate::pipeline::stats::median_latency(samples, &mut Vec::with_capacity(samples.len()))
}

pub fn encode_jpeg(img: &RgbImage, quality: u8) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(img.len() / 8);
    encode_jpeg_into(img, quality, &mut buf)?;
    Ok(buf)
}

/// JPEG for the stream and the failing-frame thumbnails. `jpeg-encoder` (with
/// its AVX2/NEON paths) rather than `image`'s encoder: the stream encodes every
/// frame while someone watches, and the dashboard's CPU budget is 2 % of the pipeline.
pub fn encode_jpeg_into(img: &RgbImage, quality: u8, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.clear();
    let (w, h) = (u16::try_from(img.width())?, u16::try_from(img.height())?);
    jpeg_encoder::Encoder::new(&mut *buf, quality).encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)?;
    Ok(())
}

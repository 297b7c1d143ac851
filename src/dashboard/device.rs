//! The device view: the server `edgeseg run` starts once, and the sink each
//! pipeline (first run, every SIGHUP reload) feeds it through.

use super::api::Segmenter;
use super::http::{self, HttpError, Request, Server};
use super::state::{encode_jpeg_into, lock, sse_event, DeviceState, FailureInfo};
use super::DashboardConfig;
use crate::commands::run::Loaded;
use crate::decide::Decider;
use crate::model::Model;
use crate::report::{FrameReport, Stats, Verdict};
use crate::sink::{FramePixels, Sink};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// JPEG quality of the stream and of kept failing frames.
const STREAM_QUALITY: u8 = 75;

/// The running device dashboard (server + shared state).
pub struct DeviceDashboard {
    pub state: Arc<DeviceState>,
    segmenter: Arc<Mutex<Option<Arc<Segmenter>>>>,
    server: Server,
}

/// Routes and the methods they take (for 404/405 answers).
const ROUTES: &[(&str, &str)] = &[
    ("/", "GET"),
    ("/api/status", "GET"),
    ("/api/stats", "GET"),
    ("/api/latency", "GET"),
    ("/api/failures", "GET"),
    ("/api/stream.mjpeg", "GET"),
    ("/api/frame.jpg", "GET"),
    ("/api/events", "GET"),
    ("/api/segment", "POST"),
    ("/metrics", "GET"),
];

impl DeviceDashboard {
    /// Bind `config.listen`, load the upload model and serve. The pipeline is
    /// attached afterwards with `sink` (and again after every reload).
    pub fn start(config: &DashboardConfig, loaded: &Loaded) -> Result<DeviceDashboard> {
        config.check()?;
        let addr = config.addr()?;
        let listener = super::bind(addr, "dashboard.listen")?;
        let state = Arc::new(DeviceState::new(config));
        let segmenter = Arc::new(Mutex::new(Some(Arc::new(load_segmenter(loaded)?))));
        let handler = Arc::new(DeviceHandler { state: state.clone(), segmenter: segmenter.clone() });
        let server = Server::start(listener, config.token.clone(), handler).context("starting the dashboard server")?;
        Ok(DeviceDashboard { state, segmenter, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn url(&self) -> String {
        super::url_of(self.server.addr)
    }

    /// The sink for a (new) pipeline built from `loaded`; on a reload the
    /// upload model is loaded again, so uploads are judged by the new model.
    pub fn sink(&self, loaded: &Loaded, reload: bool) -> Result<DashboardSink> {
        let mut view = self.prepare(loaded, reload)?;
        Ok(self.attach(&mut view))
    }

    /// What a reload needs, made while the running pipeline still works: the
    /// new upload model (when `reload`) and the page's model and board info.
    pub fn prepare(&self, loaded: &Loaded, reload: bool) -> Result<PreparedView> {
        let segmenter = if reload { Some(Arc::new(load_segmenter(loaded)?)) } else { None };
        Ok(PreparedView { device: loaded.config.device.name.clone(), info: info(loaded, self.server.addr), segmenter })
    }

    /// Switch the page over to a prepared pipeline; the sink feeds it.
    pub fn attach(&self, view: &mut PreparedView) -> DashboardSink {
        if let Some(s) = view.segmenter.take() {
            *lock(&self.segmenter) = Some(s);
        }
        self.state.attach(&view.device, view.info.clone());
        DashboardSink { state: self.state.clone(), buf: Vec::new(), last_stream: None }
    }
}

/// A pipeline's view of the page before it is attached (`DeviceDashboard::prepare`).
pub struct PreparedView {
    device: String,
    info: serde_json::Value,
    segmenter: Option<Arc<Segmenter>>,
}

/// The second network instance for `POST /api/segment` (see `api.rs` for why).
fn load_segmenter(loaded: &Loaded) -> Result<Segmenter> {
    let c = &loaded.config;
    let overrides = c.model.overrides()?;
    let model = Model::load_with_threads(&loaded.model.path, &overrides, 1).context("loading the model a second time for POST /api/segment")?;
    let decider = Decider::new(c.decide.clone(), &model.meta.classes);
    Ok(Segmenter::new(model, decider, &c.device.name))
}

fn info(loaded: &Loaded, addr: SocketAddr) -> serde_json::Value {
    let (c, m) = (&loaded.config, &loaded.model);
    let source = match &c.source {
        crate::source::SourceConfig::Sample(s) => format!("sample frames at {} FPS", s.fps),
        crate::source::SourceConfig::Dir(d) => format!("files {} at {} FPS", d.path.display(), d.fps),
        crate::source::SourceConfig::V4l2(v) => format!("V4L2 {} {}x{}@{}", v.device, v.width, v.height, v.fps),
        crate::source::SourceConfig::Stdin(_) => "MJPEG on stdin".to_string(),
    };
    let sinks: Vec<&str> = [
        c.sinks.stdout.as_ref().map(|_| "stdout"),
        c.sinks.mqtt.as_ref().map(|_| "mqtt"),
        c.sinks.gpio.as_ref().map(|_| "gpio"),
        c.sinks.archive.as_ref().map(|_| "archive"),
        Some("dashboard"),
    ]
    .into_iter()
    .flatten()
    .collect();
    json!({
        "mode": "device",
        "device": c.device.name,
        "version": env!("CARGO_PKG_VERSION"),
        "listen": addr.to_string(),
        "model": {
            "name": m.meta.name,
            "path": m.path.display().to_string(),
            "classes": m.meta.classes,
            "input": [m.meta.width, m.meta.height],
            "threads": m.threads,
        },
        "board": {
            "config": c.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "embedded demo".to_string()),
            "source": source,
            "mode": format!("{:?}", c.pipeline.mode).to_lowercase(),
            "sinks": sinks,
        },
    })
}

/// Feeds the dashboard from the output thread: counters, latency, failing
/// frames; JPEG for the stream only while someone watches, at most at
/// `stream_fps`; SSE only while someone listens.
pub struct DashboardSink {
    state: Arc<DeviceState>,
    buf: Vec<u8>,
    last_stream: Option<Instant>,
}

impl Sink for DashboardSink {
    fn name(&self) -> &str {
        "dashboard"
    }

    fn emit(&mut self, report: &FrameReport, pixels: &FramePixels<'_>) -> Result<()> {
        let img = pixels.overlay.unwrap_or(pixels.image);
        let failing = (report.verdict == Verdict::Fail).then(|| Arc::new(img.clone()));
        self.state.record(report, failing);
        let st = &self.state;
        // 0.8: a source at exactly stream_fps is not halved by jitter.
        let due = self.last_stream.is_none_or(|t| t.elapsed().as_secs_f64() >= st.stream_interval.as_secs_f64() * 0.8);
        if st.viewers.load(Ordering::Relaxed) > 0 && due {
            self.last_stream = Some(Instant::now());
            encode_jpeg_into(img, STREAM_QUALITY, &mut self.buf).context("encoding the stream frame")?;
            st.publish_frame(Arc::new(self.buf.clone()));
        }
        if st.events.has_clients() {
            let doc = serde_json::to_string(report)?;
            st.events.send(sse_event("frame", &doc));
        }
        Ok(())
    }

    fn stats(&mut self, stats: &Stats) -> Result<()> {
        self.state.set_pipeline_stats(stats);
        Ok(())
    }

    /// `/api/status` says `health`: `ok`, or `camera missing` while the camera is waited for.
    fn health(&mut self, health: crate::pipeline::monitor::Health) -> Result<()> {
        lock(&self.state.info)["health"] = json!(health.as_str());
        Ok(())
    }
}

struct DeviceHandler {
    state: Arc<DeviceState>,
    segmenter: Arc<Mutex<Option<Arc<Segmenter>>>>,
}

/// Decrements the viewer count when a stream ends, however it ends.
struct Viewer<'a>(&'a DeviceState);
impl Drop for Viewer<'_> {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl http::Handler for DeviceHandler {
    fn admit(&self, req: &Request) -> Result<http::Route, HttpError> {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/api/segment") => {
                super::api::upload_type(req.header("content-type"))?;
                Ok(http::Route { max_body: super::MAX_UPLOAD, long_lived: false })
            }
            ("GET", "/api/stream.mjpeg" | "/api/events") => Ok(http::Route { max_body: 0, long_lived: true }),
            _ => Ok(http::Route::default()),
        }
    }

    fn handle(&self, req: &Request, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
        let st = &self.state;
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", p) if super::serve_asset(p, out)? => Ok(()),
            ("GET", "/api/status") => {
                let mut doc = lock(&st.info).clone();
                doc["uptime_s"] = json!(st.started.elapsed().as_secs_f64());
                doc["viewers"] = json!(st.viewers.load(Ordering::Relaxed));
                http::respond_json(out, 200, &doc)
            }
            ("GET", "/api/stats") => http::respond_json(out, 200, &st.stats()),
            ("GET", "/api/latency") => {
                let l = lock(&st.live);
                let points: Vec<_> = l.latency.iter().copied().collect();
                drop(l);
                http::respond_json(out, 200, &points)
            }
            ("GET", "/api/failures") => {
                let l = lock(&st.live);
                let list: Vec<FailureInfo<'_>> = l
                    .failures
                    .iter()
                    .rev()
                    .map(|f| FailureInfo {
                        id: f.id,
                        frame: f.frame,
                        source: &f.source,
                        captured_unix_us: f.captured_unix_us,
                        findings: &f.findings,
                        image: format!("/api/failures/{}.jpg", f.id),
                    })
                    .collect();
                let body = serde_json::to_vec(&list).unwrap_or_default();
                drop(l);
                http::respond(out, 200, "application/json", &[], &body)
            }
            ("GET", p) if p.starts_with("/api/failures/") => {
                let id = p.trim_start_matches("/api/failures/").trim_end_matches(".jpg").parse::<u64>().ok();
                match id.and_then(|id| st.failure_jpeg(id)) {
                    Some(j) => http::respond(out, 200, "image/jpeg", &[("Cache-Control", "max-age=3600")], &j),
                    None => http::respond_error(out, &HttpError::new(404, format!("no kept failing frame at {p}"), "list the kept ones with GET /api/failures")),
                }
            }
            ("GET", "/api/frame.jpg") => {
                st.viewers.fetch_add(1, Ordering::Relaxed);
                let _v = Viewer(st);
                match st.next_frame(0, Duration::from_secs(3)) {
                    Some((_, j)) => http::respond(out, 200, "image/jpeg", &[], &j),
                    None => http::respond_error(out, &HttpError::new(503, "no frame judged in the last 3 s", "check that the source delivers frames (see the log)")),
                }
            }
            ("GET", "/api/stream.mjpeg") => self.stream(out, stop),
            ("GET", "/api/events") => events(&st.events, out, stop),
            ("POST", "/api/segment") => {
                let seg = lock(&self.segmenter).clone();
                let Some(seg) = seg else {
                    return http::respond_error(out, &HttpError::new(503, "no model loaded", "wait for the daemon to start"));
                };
                match seg.segment(req.header("content-type"), &req.body, req.query_param("mask") == Some("png")) {
                    Ok(doc) => http::respond_json(out, 200, &doc),
                    Err(e) => http::respond_error(out, &e),
                }
            }
            ("GET", "/metrics") => {
                let stats = st.stats();
                let text = super::metrics::render(&[super::metrics::Row { device: &stats.device, up: true, stats: &stats }]);
                http::respond(out, 200, "text/plain; version=0.0.4; charset=utf-8", &[], text.as_bytes())
            }
            _ if req.path.starts_with("/api/failures/") => super::not_found(req, out, &[(req.path.as_str(), "GET")]),
            _ => super::not_found(req, out, ROUTES),
        }
    }
}

impl DeviceHandler {
    /// `multipart/x-mixed-replace` MJPEG: one part per stream frame until the viewer leaves.
    fn stream(&self, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
        let st = &self.state;
        st.viewers.fetch_add(1, Ordering::Relaxed);
        let _v = Viewer(st);
        http::start_stream(out, "multipart/x-mixed-replace; boundary=edgesegframe")?;
        let mut seq = 0;
        while !stop.load(Ordering::Relaxed) {
            let Some((s, jpeg)) = st.next_frame(seq, Duration::from_secs(1)) else { continue };
            seq = s;
            write!(out, "--edgesegframe\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len())?;
            out.write_all(&jpeg)?;
            out.write_all(b"\r\n")?;
            out.flush()?;
        }
        Ok(())
    }
}

/// Server-Sent Events: every queued event, a comment every 15 s to keep proxies open.
pub fn events(hub: &super::state::Broadcast, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    let rx = hub.subscribe();
    http::start_stream(out, "text/event-stream")?;
    out.write_all(b"retry: 2000\n: edgeseg events\n\n")?;
    out.flush()?;
    let mut last_write = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(ev) => {
                out.write_all(ev.as_bytes())?;
                out.flush()?;
                last_write = Instant::now();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if last_write.elapsed() >= Duration::from_secs(15) {
                    out.write_all(b": keep-alive\n\n")?;
                    out.flush()?;
                    last_write = Instant::now();
                }
            }
            // Dropped for falling behind: end the response; EventSource reconnects.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

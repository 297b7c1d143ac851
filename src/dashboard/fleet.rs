//! The fleet view: `edgeseg dashboard --mqtt URL` subscribes to
//! `<prefix>/+/detections|status|stats` (documents in `docs/mqtt.md`) and
//! serves the same page in fleet mode. A device is online or offline as its
//! retained `status` says (a dead daemon's last will says `offline`).

use super::http::{self, HttpError, Request, Server};
use super::state::{lock, median_latency, sse_event, Broadcast, LatencyPoint};
use crate::report::{StageLatency, Stats};
use anyhow::{Context, Result};
use log::{info, warn};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failing detections kept per device.
const RECENT_DEFECTS: usize = 10;
/// Latency samples kept per device.
const LATENCY_KEPT: usize = 120;

#[derive(Default)]
struct Device {
    online: bool,
    status: Value,
    stats: Option<Stats>,
    detections: u64,
    fails: u64,
    last_seen: Option<Instant>,
    last_seen_unix_us: u64,
    arrivals: VecDeque<Instant>,
    recent: VecDeque<Value>,
    latency: VecDeque<LatencyPoint>,
}

/// The fleet as the broker tells it.
pub struct FleetState {
    pub broker: String,
    pub prefix: String,
    pub connected: AtomicBool,
    devices: Mutex<BTreeMap<String, Device>>,
    pub events: Broadcast,
    started: Instant,
}

/// The parts of a stats document the fleet needs (unknown fields ignored: newer daemons may add some).
#[derive(Deserialize, Default)]
#[serde(default)]
struct StatsDoc {
    uptime_s: f64,
    frames: u64,
    pass: u64,
    fail: u64,
    dropped: u64,
    corrupt: u64,
    fps: f64,
    defects: BTreeMap<String, u64>,
    latency_median: LatencyDoc,
    sink_overflow: u64,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(default)]
struct LatencyDoc {
    capture_ms: f64,
    queue_ms: f64,
    preprocess_ms: f64,
    infer_ms: f64,
    decode_ms: f64,
    emit_ms: f64,
}

impl From<LatencyDoc> for StageLatency {
    fn from(l: LatencyDoc) -> StageLatency {
        StageLatency { capture_ms: l.capture_ms, queue_ms: l.queue_ms, preprocess_ms: l.preprocess_ms, infer_ms: l.infer_ms, decode_ms: l.decode_ms, emit_ms: l.emit_ms }
    }
}

impl FleetState {
    pub fn new(broker: &str, prefix: &str) -> FleetState {
        FleetState {
            broker: broker.to_string(),
            prefix: prefix.to_string(),
            connected: AtomicBool::new(false),
            devices: Mutex::new(BTreeMap::new()),
            events: Broadcast::default(),
            started: Instant::now(),
        }
    }

    /// Take one MQTT message; anything malformed is ignored (with a warning), never fatal.
    pub fn ingest(&self, topic: &str, payload: &[u8]) {
        let Some(rest) = topic.strip_prefix(&self.prefix).and_then(|r| r.strip_prefix('/')) else { return };
        let Some((device, kind)) = rest.split_once('/') else { return };
        let doc: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => return warn!("fleet: {topic}: payload is not JSON ({e}); ignored"),
        };
        let mut devices = lock(&self.devices);
        let d = devices.entry(device.to_string()).or_default();
        let now = Instant::now();
        match kind {
            "status" => {
                d.online = doc["state"] == "online";
                d.status = doc;
                let ev = json!({"device": device, "online": d.online, "status": d.status});
                self.events.send(sse_event("status", &ev.to_string()));
                return;
            }
            "stats" => {
                let s: StatsDoc = serde_json::from_value(doc).unwrap_or_default();
                d.stats = Some(Stats {
                    device: device.to_string(),
                    uptime_s: s.uptime_s,
                    frames: s.frames,
                    pass: s.pass,
                    fail: s.fail,
                    dropped: s.dropped,
                    corrupt: s.corrupt,
                    fps: s.fps,
                    defects: s.defects,
                    latency_median: s.latency_median.into(),
                    sink_overflow: s.sink_overflow,
                });
            }
            "detections" => {
                d.detections += 1;
                d.arrivals.push_back(now);
                while d.arrivals.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(10)) {
                    d.arrivals.pop_front();
                }
                let latency: StageLatency = serde_json::from_value::<LatencyDoc>(doc["latency"].clone()).unwrap_or_default().into();
                if d.latency.len() >= LATENCY_KEPT {
                    d.latency.pop_front();
                }
                let frame = doc["frame"].as_u64().unwrap_or(0);
                d.latency.push_back(LatencyPoint { frame, unix_ms: doc["emitted_unix_us"].as_u64().unwrap_or(0) / 1000, latency });
                if doc["verdict"] == "fail" {
                    d.fails += 1;
                    if d.recent.len() >= RECENT_DEFECTS {
                        d.recent.pop_front();
                    }
                    d.recent.push_back(json!({
                        "frame": frame,
                        "source": doc["source"],
                        "captured_unix_us": doc["captured_unix_us"],
                        "findings": doc["findings"],
                    }));
                }
                if self.events.has_clients() {
                    let ev = json!({"device": device, "frame": frame, "verdict": doc["verdict"], "findings": doc["findings"], "latency": doc["latency"]});
                    self.events.send(sse_event("frame", &ev.to_string()));
                }
            }
            _ => return,
        }
        d.last_seen = Some(now);
        d.last_seen_unix_us = crate::frame::unix_us_now();
    }

    /// A device's running totals: its last stats document, or what its detections say so far.
    fn stats_of(name: &str, d: &Device) -> Stats {
        let mut s = d.stats.clone().unwrap_or_else(|| Stats { device: name.to_string(), ..Stats::default() });
        // Detections arrive per frame, stats every interval: show the fresher count.
        if s.frames < d.detections && d.stats.is_none() {
            s.frames = d.detections;
            s.fail = d.fails;
            s.pass = d.detections - d.fails;
        }
        if d.arrivals.len() > 1 {
            if let (Some(a), Some(b)) = (d.arrivals.front(), d.arrivals.back()) {
                let span = b.duration_since(*a).as_secs_f64();
                if span > 0.0 {
                    s.fps = (((d.arrivals.len() - 1) as f64 / span) * 100.0).round() / 100.0;
                }
            }
        }
        if s.latency_median == StageLatency::default() && !d.latency.is_empty() {
            let l: Vec<StageLatency> = d.latency.iter().rev().take(50).map(|p| p.latency).collect();
            s.latency_median = median_latency(&l);
        }
        s
    }

    /// `/api/status` in fleet mode: every device with its state, totals and recent defects.
    pub fn status(&self) -> Value {
        let devices = lock(&self.devices);
        let list: Vec<Value> = devices
            .iter()
            .map(|(name, d)| {
                json!({
                    "device": name,
                    "online": d.online,
                    "status": d.status,
                    "stats": Self::stats_of(name, d),
                    "detections": d.detections,
                    "last_seen_unix_us": d.last_seen_unix_us,
                    "recent_defects": d.recent.iter().rev().collect::<Vec<_>>(),
                    "latency": d.latency.iter().collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "mode": "fleet",
            "version": env!("CARGO_PKG_VERSION"),
            "broker": self.broker,
            "topic_prefix": self.prefix,
            "connected": self.connected.load(Ordering::Relaxed),
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "devices": list,
        })
    }

    pub fn metrics(&self) -> String {
        let devices = lock(&self.devices);
        let stats: Vec<(String, bool, Stats)> = devices.iter().map(|(n, d)| (n.clone(), d.online, Self::stats_of(n, d))).collect();
        drop(devices);
        let rows: Vec<super::metrics::Row<'_>> = stats.iter().map(|(n, up, s)| super::metrics::Row { device: n, up: *up, stats: s }).collect();
        super::metrics::render(&rows)
    }
}

/// Connect to the broker (reconnecting forever) and feed `state`.
pub fn subscribe(state: Arc<FleetState>, url: &str) -> Result<()> {
    let cfg = crate::sink::mqtt::MqttConfig::new(url);
    let broker = cfg.broker().context("--mqtt")?;
    let mut o = MqttOptions::new(format!("edgeseg-dashboard-{}", std::process::id()), broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(15));
    o.set_clean_session(true);
    o.set_max_packet_size(16 << 20, 64 << 10);
    if broker.tls {
        let tls = cfg.tls_config().context("--mqtt (TLS)")?;
        o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls))));
    }
    let (client, mut conn) = Client::new(o, 64);
    let topics: Vec<String> = ["detections", "status", "stats"].iter().map(|k| format!("{}/+/{k}", state.prefix)).collect();
    let url = url.to_string();
    std::thread::Builder::new().name("fleet-mqtt".into()).spawn(move || {
        let mut last_warn: Option<Instant> = None;
        for event in conn.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!("fleet: connected to {url}, subscribing to {}", topics.join(", "));
                    state.connected.store(true, Ordering::Relaxed);
                    for t in &topics {
                        if let Err(e) = client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                            warn!("fleet: subscribe {t}: {e}");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => state.ingest(&p.topic, &p.payload),
                Ok(_) => {}
                Err(e) => {
                    state.connected.store(false, Ordering::Relaxed);
                    if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                        warn!("fleet: broker {url}: {e}; retrying every second");
                        last_warn = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    })?;
    Ok(())
}

const ROUTES: &[(&str, &str)] = &[("/", "GET"), ("/api/status", "GET"), ("/api/stats", "GET"), ("/api/events", "GET"), ("/metrics", "GET")];

struct FleetHandler {
    state: Arc<FleetState>,
}

impl http::Handler for FleetHandler {
    fn handle(&self, req: &Request, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", p) if super::serve_asset(p, out)? => Ok(()),
            ("GET", "/api/status") => http::respond_json(out, 200, &self.state.status()),
            ("GET", "/api/stats") => {
                let devices = lock(&self.state.devices);
                let map: BTreeMap<&String, Stats> = devices.iter().map(|(n, d)| (n, FleetState::stats_of(n, d))).collect();
                let body = serde_json::to_vec(&map).unwrap_or_default();
                drop(devices);
                http::respond(out, 200, "application/json", &[], &body)
            }
            ("GET", "/api/events") => super::device::events(&self.state.events, out, stop),
            ("GET", "/metrics") => http::respond(out, 200, "text/plain; version=0.0.4; charset=utf-8", &[], self.state.metrics().as_bytes()),
            ("GET", "/api/stream.mjpeg" | "/api/frame.jpg" | "/api/failures" | "/api/latency") | ("POST", "/api/segment") => {
                let e = HttpError::new(404, format!("{} is served by each device, not by the fleet view", req.path), "open the device's own dashboard (edgeseg run with [dashboard])");
                http::respond_error(out, &e)
            }
            _ => super::not_found(req, out, ROUTES),
        }
    }
}

/// `edgeseg dashboard --mqtt URL`: subscribe and serve until the process ends.
pub fn serve(url: &str, prefix: &str, listen: &str, token: Option<String>) -> Result<(Server, Arc<FleetState>)> {
    let addr = super::check_listen(listen, token.as_deref(), "--listen", "--token")?;
    let listener = super::bind(addr, "--listen")?;
    let state = Arc::new(FleetState::new(url, prefix));
    subscribe(state.clone(), url)?;
    let server = Server::start(listener, token, 0, Arc::new(FleetHandler { state: state.clone() })).context("starting the dashboard server")?;
    Ok((server, state))
}

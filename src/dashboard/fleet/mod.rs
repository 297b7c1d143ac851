//! The fleet view: `edgeseg dashboard --mqtt URL` subscribes to
//! `<prefix>/+/detections|status|stats` (documents in `docs/mqtt.md`) and
//! serves the same page in fleet mode. A device is online or offline as its
//! retained `status` says (a dead daemon's last will says `offline`).
//!
//! Whatever devices publish, memory stays bounded: messages are decoded into
//! typed, capped documents (`payload.rs`; oversize or wrong-typed ones are
//! refused and counted), the device table holds at most `max_devices` (the
//! longest-silent offline device makes room), and `/api/status` answers in
//! pages of `STATUS_PAGE` devices. `mqtt.rs` keeps the broker connection.

pub mod mqtt;
pub mod payload;
mod table;

use super::http::{self, HttpError, Request, Server};
use super::state::{lock, sse_event, Broadcast};
use crate::report::Stats;
use anyhow::{Context, Result};
use log::warn;
use payload::{Doc, Refusal};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use table::Table;

/// Devices kept by default.
pub const MAX_DEVICES: usize = 1000;
/// Devices per `/api/status` answer (`?offset=N` for the next page).
pub const STATUS_PAGE: usize = 100;

/// The fleet as the broker tells it.
pub struct FleetState {
    pub broker: String,
    pub prefix: String,
    pub connected: AtomicBool,
    table: Mutex<Table>,
    pub events: Broadcast,
    started: Instant,
    last_warning: Mutex<Option<Instant>>,
}

impl FleetState {
    pub fn new(broker: &str, prefix: &str) -> FleetState {
        FleetState::with_max_devices(broker, prefix, MAX_DEVICES)
    }

    pub fn with_max_devices(broker: &str, prefix: &str, max_devices: usize) -> FleetState {
        FleetState {
            broker: broker.to_string(),
            prefix: prefix.to_string(),
            connected: AtomicBool::new(false),
            table: Mutex::new(Table::new(max_devices)),
            events: Broadcast::default(),
            started: Instant::now(),
            last_warning: Mutex::new(None),
        }
    }

    /// A warning at most every 10 s (a flood of bad messages must not flood the log); counted either way.
    fn warn_sometimes(&self, what: impl FnOnce() -> String) {
        let mut last = lock(&self.last_warning);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            warn!("fleet: {} (further ones within 10 s are only counted: see /api/status \"refused\")", what());
        }
    }

    /// Take one MQTT message; anything oversize or malformed is refused with a counted, logged reason, never fatal.
    pub fn ingest(&self, topic: &str, payload: &[u8]) {
        let message = match payload::decode(&self.prefix, topic, payload) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(r) => return self.refuse(topic, &r),
        };
        let mut t = lock(&self.table);
        let device = message.device.clone();
        let outcome = t.take(message, self.events.has_clients());
        drop(t);
        match outcome {
            table::Outcome::Taken(Some((name, doc))) => self.events.send(sse_event(name, &doc.to_string())),
            table::Outcome::Taken(_) => {}
            table::Outcome::Evicted(old) => self.warn_sometimes(|| format!("{} devices: forgot {old:?} (offline longest) to make room for {device:?}", self.max_devices())),
            table::Outcome::Refused => self.warn_sometimes(|| format!("{} devices, none offline: {device:?} is not shown", self.max_devices())),
        }
    }

    fn max_devices(&self) -> usize {
        lock(&self.table).max_devices
    }

    fn refuse(&self, topic: &str, r: &Refusal) {
        lock(&self.table).refused(&self.prefix, topic, r);
        let shown: String = topic.chars().take(200).collect();
        self.warn_sometimes(|| format!("{shown}: message refused: {r}"));
    }

    /// A message above the MQTT client's own limit cost the broker connection.
    pub fn count_disconnect_for_size(&self) {
        lock(&self.table).counters.oversize_disconnects += 1;
    }

    /// `/api/status` in fleet mode: up to STATUS_PAGE devices from `offset`, with counts and limits.
    pub fn status(&self, offset: usize) -> Value {
        let t = lock(&self.table);
        json!({
            "mode": "fleet",
            "version": env!("CARGO_PKG_VERSION"),
            "broker": self.broker,
            "topic_prefix": self.prefix,
            "connected": self.connected.load(Ordering::Relaxed),
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "devices_total": t.len(),
            "offset": offset,
            "page": STATUS_PAGE,
            "devices": t.page(offset, STATUS_PAGE),
            "refused": t.counters,
            "limits": {
                "max_devices": t.max_devices,
                "max_message_bytes": payload::MAX_PAYLOAD,
                "max_findings": payload::MAX_FINDINGS,
                "max_text_bytes": payload::MAX_TEXT,
            },
        })
    }

    /// Every device's running totals.
    pub fn stats(&self) -> BTreeMap<String, Stats> {
        lock(&self.table).stats()
    }

    pub fn metrics(&self) -> String {
        let rows_owned = lock(&self.table).rows();
        let rows: Vec<super::metrics::Row<'_>> = rows_owned.iter().map(|(n, up, s)| super::metrics::Row { device: n, up: *up, stats: s }).collect();
        super::metrics::render(&rows)
    }
}

/// The SSE event for a taken document (name, JSON).
pub(crate) fn event_of(device: &str, doc: &Doc, online: bool) -> Option<(&'static str, Value)> {
    match doc {
        Doc::Status(s) => Some(("status", json!({"device": device, "online": online, "status": s}))),
        Doc::Detection(d) => Some(("frame", json!({"device": device, "frame": d.frame, "verdict": d.verdict, "findings": d.findings, "latency": d.latency}))),
        Doc::Stats(_) => None,
    }
}

const ROUTES: &[(&str, &str)] = &[("/", "GET"), ("/api/status", "GET"), ("/api/stats", "GET"), ("/api/events", "GET"), ("/metrics", "GET")];

struct FleetHandler {
    state: Arc<FleetState>,
}

impl http::Handler for FleetHandler {
    fn admit(&self, req: &Request) -> Result<http::Route, HttpError> {
        Ok(http::Route { max_body: 0, long_lived: req.method == "GET" && req.path == "/api/events" })
    }

    fn handle(&self, req: &Request, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", p) if super::serve_asset(p, out)? => Ok(()),
            ("GET", "/api/status") => {
                let offset = req.query_param("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
                http::respond_json(out, 200, &self.state.status(offset))
            }
            ("GET", "/api/stats") => http::respond_json(out, 200, &self.state.stats()),
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
    mqtt::subscribe(state.clone(), url)?;
    let server = Server::start(listener, token, Arc::new(FleetHandler { state: state.clone() })).context("starting the dashboard server")?;
    Ok((server, state))
}

#[cfg(test)]
mod tests;

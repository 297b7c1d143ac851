//! MQTT sink (rumqttc): detections per frame, retained status with last will,
//! periodic stats. Topic layout and documents: `docs/mqtt.md`.
//!
//! `emit` only serialises into a reused buffer and appends to the sink's own
//! bounded queue; a connection thread hands queued messages to rumqttc,
//! follows acknowledgements, reconnects with backoff (0.5 s doubling to 10 s)
//! and re-sends whatever the broker had not acknowledged when the link broke.

mod config;
mod driver;
mod handover;
mod queue;

pub use config::{parse_url, BrokerUrl, MqttConfig};
pub use handover::Backlog;

use super::{FramePixels, Sink};
use crate::report::{FrameReport, Stats};
use anyhow::{bail, Result};
use driver::{Shared, State};
use queue::{Msg, Queue};
use rumqttc::{Client, LastWill, QoS};
use serde::Serialize;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long `connect` waits for the first connection outcome (login refused
/// is an error; an unreachable broker only a warning: messages queue up).
const CONNECT_WAIT: Duration = Duration::from_secs(3);
/// How long `shutdown` waits for the queue to drain.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);
/// Seconds between two "queue full" warnings.
const OVERFLOW_WARN_EVERY: Duration = Duration::from_secs(5);

/// The retained document on `<prefix>/<device>/status`.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub state: &'static str,
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub version: &'static str,
    /// online: when this connection came up; offline: when the sink shut down
    /// (`reason: "shutdown"`) or, in the last will (`reason: "lost"`), when it started.
    pub since_unix_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// online only: `ok`, or `camera missing` while the camera is waited for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<&'static str>,
}

impl Status {
    fn payload(&self, state: &'static str, reason: Option<&'static str>, since_unix_us: u64) -> Vec<u8> {
        let health = if state == "online" { self.health } else { None };
        let doc = Status { state, reason, since_unix_us, health, ..self.clone() };
        // A struct of strings and integers always serialises.
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    fn message(&self, topic: &Arc<str>, state: &'static str, reason: Option<&'static str>, since: u64, superseded: bool) -> Msg {
        Msg {
            topic: topic.clone(),
            payload: self.payload(state, reason, since),
            qos: QoS::AtLeastOnce,
            retain: true,
            superseded_on_reconnect: superseded,
        }
    }
}

pub struct MqttSink {
    shared: Arc<Shared>,
    client: Client,
    detections_topic: Arc<str>,
    stats_topic: Arc<str>,
    qos: QoS,
    stats_enabled: bool,
    max_message: usize,
    queue_limit: usize,
    url: String,
    /// Reused serialisation buffer.
    buf: Vec<u8>,
    thread: Option<JoinHandle<()>>,
    last_overflow_warn: Option<Instant>,
    shut_down: bool,
}

impl MqttSink {
    /// Check the config, start the connection thread and wait up to 3 s for
    /// the first connection. A refused login or client id is an error; an
    /// unreachable broker is not (messages queue until it is back).
    pub fn connect(config: &MqttConfig, device: &str) -> Result<MqttSink> {
        MqttSink::connect_with_model(config, device, None)
    }

    /// As `connect`, with the model name in the status document.
    pub fn connect_with_model(config: &MqttConfig, device: &str, model: Option<&str>) -> Result<MqttSink> {
        MqttSink::start(config, device, model, Backlog::default(), false).map_err(|(e, _)| e)
    }

    /// Start with `backlog` (messages a previous sink could not deliver) first in
    /// line. `quiet`: publish nothing, not even `online`, until `activate` (a
    /// reload connects the next sink while the running one still works). On
    /// error the backlog comes back with it.
    fn start(config: &MqttConfig, device: &str, model: Option<&str>, backlog: Backlog, quiet: bool) -> Result<MqttSink, (anyhow::Error, Backlog)> {
        match MqttSink::start_inner(config, device, model, quiet) {
            Ok(sink) => {
                let mut st = sink.shared.lock();
                st.queue.prepend(backlog.0);
                driver::pump(&mut st, &sink.client);
                drop(st);
                Ok(sink)
            }
            Err(e) => Err((e, backlog)),
        }
    }

    fn start_inner(config: &MqttConfig, device: &str, model: Option<&str>, quiet: bool) -> Result<MqttSink> {
        config.check(device)?;
        let prefix = &config.topic_prefix;
        let topic = |leaf: &str| -> Arc<str> { format!("{prefix}/{device}/{leaf}").into() };
        let status_topic = topic("status");
        let status = Status {
            state: "online",
            device: device.to_string(),
            model: model.map(str::to_string),
            version: env!("CARGO_PKG_VERSION"),
            since_unix_us: 0,
            reason: None,
            health: Some(crate::pipeline::monitor::Health::Ok.as_str()),
        };
        let started = crate::frame::unix_us_now();
        let will = LastWill::new(&*status_topic, status.payload("offline", Some("lost"), started), QoS::AtLeastOnce, true);
        let mut options = config.mqtt_options(device, will)?;
        options.set_inflight(driver::RUMQTT_INFLIGHT);
        let (client, connection) = Client::new(options, 2 * driver::WINDOW + 8);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue::new(config.queue_limit, driver::WINDOW),
                connected: false,
                quiet,
                disconnecting: false,
                abandon: false,
                exited: false,
                first: None,
                last_error: None,
                connects: 0,
                status,
                status_topic,
            }),
            cond: Condvar::new(),
        });
        let url = config.url.clone();
        let thread = {
            let (shared, client, url) = (shared.clone(), client.clone(), url.clone());
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || driver::run(connection, client, shared, url))
                .map_err(|e| anyhow::anyhow!("mqtt sink: cannot start its connection thread: {e}"))?
        };
        let mut sink = MqttSink {
            shared,
            client,
            detections_topic: topic("detections"),
            stats_topic: topic("stats"),
            qos: config.qos_level()?,
            stats_enabled: config.stats,
            max_message: config.max_message_kib * 1024,
            queue_limit: config.queue_limit,
            url,
            buf: Vec::with_capacity(64 << 10),
            thread: Some(thread),
            last_overflow_warn: None,
            shut_down: false,
        };
        let first = {
            let deadline = Instant::now() + CONNECT_WAIT;
            let mut st = sink.shared.lock();
            while st.first.is_none() && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                st = sink.shared.cond.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
            }
            st.first.clone()
        };
        match first {
            Some(Err(f)) if f.refused => {
                sink.stop_thread(Duration::from_millis(200));
                sink.shut_down = true;
                bail!("mqtt sink: {}", f.message)
            }
            // Already logged by the thread; the queue holds messages meanwhile.
            Some(Err(_)) => {}
            None => log::warn!("mqtt: no answer from {} within {} s yet; queueing messages", sink.url, CONNECT_WAIT.as_secs()),
            Some(Ok(())) => {}
        }
        Ok(sink)
    }

    /// Connected to the broker right now.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Messages the broker acknowledged so far (status and stats included).
    pub fn delivered(&self) -> u64 {
        self.shared.lock().queue.delivered
    }

    /// Messages waiting or unacknowledged.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Successful connections so far (1 + reconnects).
    pub fn connects(&self) -> u64 {
        self.shared.lock().connects
    }

    /// The last connection error, as logged (names the key to fix when one applies).
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Wait until the queue is empty (everything acknowledged) or `timeout`
    /// passed; true when empty.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while !st.queue.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.shared.cond.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Queue `self.buf` for `topic`.
    fn enqueue(&mut self, topic: Arc<str>, what: &str) -> Result<()> {
        if self.buf.len() + topic.len() > self.max_message {
            self.shared.lock().queue.overflow += 1;
            bail!(
                "mqtt: {what} of {} KiB exceeds sinks.mqtt.max_message_kib = {}; dropped; fix: raise max_message_kib (and the broker's message_size_limit)",
                self.buf.len().div_ceil(1024),
                self.max_message / 1024
            );
        }
        let msg = Msg { topic, payload: self.buf.clone(), qos: self.qos, retain: false, superseded_on_reconnect: false };
        let mut st = self.shared.lock();
        let dropped = st.queue.push(msg);
        driver::pump(&mut st, &self.client);
        if dropped > 0 && self.last_overflow_warn.is_none_or(|t| t.elapsed() >= OVERFLOW_WARN_EVERY) {
            self.last_overflow_warn = Some(Instant::now());
            log::warn!(
                "mqtt: broker {} unreachable and queue full (sinks.mqtt.queue_limit = {}): {} oldest messages dropped so far",
                self.url,
                self.queue_limit,
                st.queue.overflow
            );
        }
        Ok(())
    }

    /// Ask the thread to end and wait for it up to `grace`; a thread stuck in
    /// a connection attempt is left to end on its own.
    fn stop_thread(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut st = self.shared.lock();
        st.abandon = true;
        self.shared.cond.notify_all();
        while !st.exited {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self.shared.cond.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        let exited = st.exited;
        drop(st);
        if let Some(t) = self.thread.take() {
            if exited {
                let _ = t.join();
            }
        }
    }

    /// Publish the retained `offline`, wait for the queue to drain up to
    /// `flush`, disconnect cleanly (so no last will fires), end the thread.
    fn finish(&mut self, flush: Duration) -> Result<()> {
        if self.shut_down {
            return Ok(());
        }
        if self.shared.lock().quiet {
            // Connected for a reload that never switched over: it published nothing, says nothing.
            self.leave();
            return Ok(());
        }
        self.shut_down = true;
        {
            let mut st = self.shared.lock();
            let offline = st.status.message(&st.status_topic, "offline", Some("shutdown"), crate::frame::unix_us_now(), false);
            st.queue.push(offline);
            driver::pump(&mut st, &self.client);
        }
        let flushed = self.flush(flush);
        let left = {
            let mut st = self.shared.lock();
            if st.connected {
                st.disconnecting = true;
                // The DISCONNECT goes after everything already handed over.
                let _ = self.client.try_disconnect();
            }
            st.queue.len()
        };
        self.stop_thread(Duration::from_secs(1));
        if !flushed {
            bail!(
                "mqtt: {left} messages not delivered at shutdown (broker {} unreachable for {} s); the broker's last will marks the device offline",
                self.url,
                flush.as_secs()
            );
        }
        Ok(())
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn emit(&mut self, report: &FrameReport, _pixels: &FramePixels<'_>) -> Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, report)?;
        self.enqueue(self.detections_topic.clone(), "frame report")
    }

    fn stats(&mut self, stats: &Stats) -> Result<()> {
        if !self.stats_enabled {
            return Ok(());
        }
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, stats)?;
        self.enqueue(self.stats_topic.clone(), "stats document")
    }

    fn overflow(&self) -> u64 {
        self.shared.lock().queue.overflow
    }

    fn health(&mut self, health: crate::pipeline::monitor::Health) -> Result<()> {
        let mut st = self.shared.lock();
        if st.status.health == Some(health.as_str()) {
            return Ok(());
        }
        st.status.health = Some(health.as_str());
        if st.connected && !st.quiet {
            // The retained status again, with the new health (a reconnect publishes a fresh one).
            let online = st.status.message(&st.status_topic, "online", None, crate::frame::unix_us_now(), true);
            st.queue.push(online);
            driver::pump(&mut st, &self.client);
        }
        Ok(())
    }

    fn shutdown(&mut self) -> Result<()> {
        self.finish(SHUTDOWN_FLUSH)
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        if let Err(e) = self.finish(Duration::from_millis(500)) {
            log::warn!("{e}");
        }
    }
}

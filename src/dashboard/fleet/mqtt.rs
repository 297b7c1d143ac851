//! The fleet view's broker connection: subscribe, feed `FleetState`, reconnect
//! with backoff.
//!
//! rumqttc drops the whole connection on a packet above its incoming limit
//! (checked from the fixed header, before the payload is read), and a retained
//! one comes back on every resubscribe: a reconnect storm that takes in
//! nothing. So the client's limit sits far above any document (CLIENT_MAX_PACKET),
//! and `payload::decode` drops what is over MAX_PAYLOAD, counted, keeping the
//! connection. A packet beyond even the client's limit still costs the
//! connection: it is counted, logged with the fix, and retried with backoff.

use super::FleetState;
use anyhow::{Context, Result};
use log::{info, warn};
use rumqttc::{Client, ConnectionError, Event, MqttOptions, Packet, QoS, StateError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The MQTT client's own packet limit (incoming). Such a packet is held in memory once, then dropped.
pub const CLIENT_MAX_PACKET: usize = 64 << 20;
/// Reconnect delays: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_LAST: Duration = Duration::from_secs(30);
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The size of a packet over the client's limit, when that is what ended the connection.
fn oversize(e: &ConnectionError) -> Option<usize> {
    match e {
        ConnectionError::MqttState(StateError::Deserialization(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(n))) => Some(*n),
        _ => None,
    }
}

/// Connect to the broker (reconnecting forever) and feed `state`.
pub fn subscribe(state: Arc<FleetState>, url: &str) -> Result<()> {
    let cfg = crate::sink::mqtt::MqttConfig::new(url);
    let broker = cfg.broker().context("--mqtt")?;
    let mut o = MqttOptions::new(format!("edgeseg-dashboard-{}", std::process::id()), broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(15));
    o.set_clean_session(true);
    o.set_max_packet_size(CLIENT_MAX_PACKET, 64 << 10);
    if broker.tls {
        let tls = cfg.tls_config().context("--mqtt (TLS)")?;
        o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls))));
    }
    let (client, mut conn) = Client::new(o, 64);
    let topics: Vec<String> = ["detections", "status", "stats"].iter().map(|k| format!("{}/+/{k}", state.prefix)).collect();
    let url = url.to_string();
    std::thread::Builder::new().name("fleet-mqtt".into()).spawn(move || {
        let mut last_warn: Option<Instant> = None;
        let mut up_since: Option<Instant> = None;
        let mut backoff = BACKOFF_FIRST;
        for event in conn.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!("fleet: connected to {url}, subscribing to {}", topics.join(", "));
                    state.connected.store(true, Ordering::Relaxed);
                    up_since = Some(Instant::now());
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
                    if up_since.take().is_some_and(|t| t.elapsed() >= STABLE_AFTER) {
                        backoff = BACKOFF_FIRST;
                    }
                    if let Some(n) = oversize(&e) {
                        state.count_disconnect_for_size();
                        warn!(
                            "fleet: broker {url} sent a message of {n} bytes, over this client's limit of {CLIENT_MAX_PACKET}; the connection is lost and retried in {} s; \
                             fix: delete it if it is retained (mosquitto_pub -r -n -t TOPIC) and set the broker's message_size_limit",
                            backoff.as_secs()
                        );
                    } else if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                        warn!("fleet: broker {url}: {e}; retrying in {} s", backoff.as_secs());
                        last_warn = Some(Instant::now());
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_LAST);
                }
            }
        }
    })?;
    Ok(())
}

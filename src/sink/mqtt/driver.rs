//! The connection thread: drives rumqttc's event loop with blocking `recv`,
//! pairs its events with the sink's queue, reconnects with backoff and
//! re-sends what the broker never acknowledged.

use super::queue::Queue;
use rumqttc::{Client, ConnectReturnCode, Connection, ConnectionError, Event, MqttState, Outgoing, Packet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// rumqttc's own in-flight limit (its packet ids cycle through 1..=this).
pub const RUMQTT_INFLIGHT: u16 = 100;
/// The sink's window: well below rumqttc's limit, so ids never collide.
pub const WINDOW: usize = 64;

/// State shared by the output thread (emit) and the connection thread.
pub struct Shared {
    pub state: Mutex<State>,
    pub cond: Condvar,
}

pub struct State {
    pub queue: Queue,
    pub connected: bool,
    /// Connected for a reload that has not switched over yet: nothing is published (`MqttSink::activate`).
    pub quiet: bool,
    /// Shutdown sent DISCONNECT: nothing more is handed to rumqttc.
    pub disconnecting: bool,
    /// The thread is to end (shutdown done or gave up, or the sink was dropped).
    pub abandon: bool,
    pub exited: bool,
    /// Outcome of the first connection attempt, for `MqttSink::connect`.
    pub first: Option<Result<(), Failure>>,
    pub last_error: Option<String>,
    /// Successful connections so far (1 + reconnects).
    pub connects: u64,
    /// The status document (its `state`/`since` are set per publish).
    pub status: super::Status,
    pub status_topic: Arc<str>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub message: String,
    /// The broker refused the login or client id: retrying will not help.
    pub refused: bool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data
        // (every update is a single queue operation): keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hand waiting messages to rumqttc while connected and the window has room.
pub fn pump(st: &mut State, client: &Client) {
    if !st.connected || st.disconnecting || st.quiet {
        return;
    }
    while let Some(m) = st.queue.start_next() {
        if client.try_publish(&*m.topic, m.qos, m.retain, m.payload.clone()).is_err() {
            // Channel full (cannot happen with the window below its capacity) or
            // closed (the thread is gone): keep the message for later.
            st.queue.unstart_last();
            break;
        }
    }
}

/// What a connection error means for the operator.
pub fn describe(e: &ConnectionError, url: &str) -> Failure {
    let (message, refused) = match e {
        ConnectionError::ConnectionRefused(code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized)) => (
            format!("broker {url} refused the login ({code:?}); fix: check sinks.mqtt.username and sinks.mqtt.password / password_file"),
            true,
        ),
        ConnectionError::ConnectionRefused(code @ ConnectReturnCode::BadClientId) => {
            (format!("broker {url} rejected the client id ({code:?}); fix: set sinks.mqtt.client_id to a unique id the broker accepts"), true)
        }
        ConnectionError::ConnectionRefused(code) => (format!("broker {url} refused the connection ({code:?}); retrying"), false),
        ConnectionError::Tls(e) => (
            format!("TLS with broker {url} failed: {e}; fix: check sinks.mqtt.ca_file (the CA that signed the broker's certificate), the host name in the url, and client_cert/client_key"),
            false,
        ),
        ConnectionError::Io(e) => (format!("broker {url} unreachable: {e}; messages wait in the queue (sinks.mqtt.queue_limit)"), false),
        ConnectionError::NetworkTimeout => (format!("broker {url} did not answer in time; messages wait in the queue (sinks.mqtt.queue_limit)"), false),
        e => (format!("connection to broker {url} lost: {e}; reconnecting"), false),
    };
    Failure { message, refused }
}

/// The thread body. Ends when the sink says `abandon` (after shutdown or drop)
/// or after DISCONNECT went out.
pub fn run(mut conn: Connection, client: Client, shared: Arc<Shared>, url: String) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let event = conn.recv();
        let mut st = shared.lock();
        match event {
            // Only when every request sender is gone; the event loop holds one, so never.
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                if st.abandon {
                    // Shut down while connecting: leave without DISCONNECT so the
                    // broker publishes the last will (`offline`).
                    break;
                }
                st.connected = true;
                st.connects += 1;
                st.first.get_or_insert(Ok(()));
                backoff = BACKOFF_MIN;
                if st.connects > 1 {
                    log::info!("mqtt: reconnected to {url}; {} queued messages to deliver", st.queue.len());
                } else {
                    log::info!("mqtt: connected to {url}");
                }
                if !st.quiet {
                    let online = st.status.message(&st.status_topic, "online", None, crate::frame::unix_us_now(), true);
                    st.queue.push_front(online);
                }
                pump(&mut st, &client);
            }
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                st.queue.on_outgoing_publish(pkid);
                pump(&mut st, &client);
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                st.queue.on_ack(ack.pkid);
                pump(&mut st, &client);
            }
            Ok(Ok(Event::Incoming(Packet::PubComp(comp)))) => {
                st.queue.on_ack(comp.pkid);
                pump(&mut st, &client);
            }
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => {
                st.connected = false;
                break;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let was_connected = st.connected;
                st.connected = false;
                // Forget everything rumqttc still holds (its channel, pending
                // list, packet ids, buffered events): the queue re-sends it all.
                conn.eventloop.clean();
                conn.eventloop.pending.clear();
                conn.eventloop.state = MqttState::new(RUMQTT_INFLIGHT, false);
                st.queue.requeue_unacked();
                let failure = describe(&e, &url);
                if was_connected || st.last_error.as_deref() != Some(failure.message.as_str()) {
                    if failure.refused {
                        log::error!("mqtt: {}", failure.message);
                    } else {
                        log::warn!("mqtt: {} (retry in {:.1} s)", failure.message, backoff.as_secs_f64());
                    }
                }
                st.last_error = Some(failure.message.clone());
                st.first.get_or_insert(Err(failure));
                shared.cond.notify_all();
                let until = Instant::now() + backoff;
                while !st.abandon {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    st = shared.cond.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        shared.cond.notify_all();
        if st.abandon && !st.connected {
            break;
        }
    }
    let mut st = shared.lock();
    st.connected = false;
    st.exited = true;
    shared.cond.notify_all();
}

//! Reloads (`commands::run`): a sink whose config did not change is kept as it
//! is, connection and queue; one that is replaced hands the messages it could
//! not deliver to the next sink, so a reload while the broker is down loses
//! nothing within `queue_limit`. A next sink that can connect beside the
//! running one (another broker or client id) is connected first, quietly, and
//! switched over with `activate`.

use super::queue::Msg;
use super::{driver, MqttConfig, MqttSink};
use std::time::Duration;

/// Messages a sink could not deliver, oldest first (statuses left out: each
/// sink publishes its own).
#[derive(Default)]
pub struct Backlog(pub(super) Vec<Msg>);

impl Backlog {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl MqttSink {
    /// Connect for a reload without publishing anything, not even `online`, until `activate`.
    pub fn connect_quiet(config: &MqttConfig, device: &str, model: Option<&str>) -> anyhow::Result<MqttSink> {
        MqttSink::start(config, device, model, Backlog::default(), true).map_err(|(e, _)| e)
    }

    /// Connect with `backlog` first in line. A refused login gives the backlog back with the error.
    pub fn connect_with_backlog(config: &MqttConfig, device: &str, model: Option<&str>, backlog: Backlog) -> Result<MqttSink, (anyhow::Error, Backlog)> {
        MqttSink::start(config, device, model, backlog, false)
    }

    /// Switch a quiet sink over: `online`, then `backlog`, then what it is given from now on.
    pub fn activate(&mut self, backlog: Backlog) {
        let mut st = self.shared.lock();
        st.queue.prepend(backlog.0);
        st.quiet = false;
        if st.connected {
            let online = st.status.message(&st.status_topic, "online", None, crate::frame::unix_us_now(), true);
            st.queue.push_front(online);
        }
        driver::pump(&mut st, &self.client);
    }

    /// A reload kept this sink for a new model: say so in the retained status.
    pub fn set_model(&mut self, model: &str) {
        let mut st = self.shared.lock();
        if st.status.model.as_deref() == Some(model) {
            return;
        }
        st.status.model = Some(model.to_string());
        if st.connected && !st.quiet {
            let online = st.status.message(&st.status_topic, "online", None, crate::frame::unix_us_now(), true);
            st.queue.push(online);
            driver::pump(&mut st, &self.client);
        }
    }

    /// End this sink for a reload that replaces it: when connected, deliver what
    /// the broker takes within `flush` (after the retained `offline` when
    /// `offline`: the next sink publishes another status), disconnect cleanly
    /// (no last will), and hand back what is left.
    pub fn hand_over(mut self, offline: bool, flush: Duration) -> Backlog {
        let connected = {
            let mut st = self.shared.lock();
            if offline {
                let msg = st.status.message(&st.status_topic, "offline", Some("shutdown"), crate::frame::unix_us_now(), false);
                st.queue.push(msg);
                driver::pump(&mut st, &self.client);
            }
            st.connected
        };
        if connected {
            self.flush(flush);
        }
        self.leave();
        let msgs = self.shared.lock().queue.take_all();
        Backlog(msgs.into_iter().filter(|m| !m.retain).collect())
    }

    /// A sink a failed reload connected but never used: leave without publishing anything.
    pub fn discard(mut self) {
        self.leave();
    }

    /// Disconnect cleanly and end the thread; `Drop` then does nothing more.
    pub(super) fn leave(&mut self) {
        self.shut_down = true;
        {
            let mut st = self.shared.lock();
            if st.connected {
                st.disconnecting = true;
                let _ = self.client.try_disconnect();
            }
        }
        self.stop_thread(Duration::from_secs(1));
    }
}

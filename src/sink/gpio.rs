//! GPIO sink: a reject pulse for every failing part, a ready/heartbeat line,
//! and the trigger input the pipeline waits on in trigger mode.
//!
//! The pulse is timed by a dedicated thread, not the output thread: a part
//! judged now reaches the ejector `reject_delay_ms` later, and the output
//! thread must keep emitting meanwhile. Consecutive failing parts each get
//! their own pulse; when a pulse is due while the line is still active (parts
//! closer together than the pulse width) the running pulse is extended, so
//! the ejector stays on for both parts instead of flickering.

use super::{FramePixels, Sink};
use crate::gpio::chardev::{ChardevInput, ChardevOutput};
use crate::gpio::sim::SimChip;
use crate::gpio::{Edge, InputPin, LineId, OutputPin};
use crate::report::{FrameReport, Verdict};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pulses that may wait for their due time at once; more are counted as overflow.
pub const MAX_PENDING_PULSES: usize = 64;

/// Which trigger edges start a capture.
#[derive(Clone, Copy, Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TriggerEdge {
    #[default]
    Rising,
    Falling,
    Both,
}

impl TriggerEdge {
    fn accepts(self, edge: Edge) -> bool {
        matches!((self, edge), (TriggerEdge::Both, _) | (TriggerEdge::Rising, Edge::Rising) | (TriggerEdge::Falling, Edge::Falling))
    }
}

/// `[sinks.gpio]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// Chip: path (`/dev/gpiochip0`), name (`gpiochip0`) or label (`pinctrl-bcm2711`); `sim` for the simulator.
    pub chip: String,
    /// The ejector line: a name ("GPIO17") or an offset (17).
    pub reject_line: LineId,
    /// From the verdict to the pulse start: the conveyor's travel time from camera to ejector.
    #[serde(default)]
    pub reject_delay_ms: u64,
    #[serde(default = "default_width")]
    pub reject_width_ms: u64,
    /// Output lines (reject, ready) are active low (e.g. a relay board switching on a low input).
    #[serde(default)]
    pub active_low: bool,
    /// Active while the daemon runs, inactive at shutdown (a PLC's "inspection ready" input).
    #[serde(default)]
    pub ready_line: Option<LineId>,
    /// Toggle the ready line with this period instead of holding it, so a PLC sees a hung daemon.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Input that triggers a capture in `pipeline.mode = "trigger"` (a light barrier, a PLC output).
    #[serde(default)]
    pub trigger_line: Option<LineId>,
    /// Kernel debounce of the trigger input.
    #[serde(default = "default_debounce")]
    pub trigger_debounce_ms: u64,
    #[serde(default)]
    pub trigger_edge: TriggerEdge,
    /// The trigger input is active low (an NPN sensor pulling the line down).
    #[serde(default)]
    pub trigger_active_low: bool,
}

fn default_width() -> u64 {
    100
}
fn default_debounce() -> u64 {
    5
}

impl GpioConfig {
    /// Bounds that keep shutdown (which finishes due pulses) short and catch unit slips (seconds typed as ms).
    pub fn check(&self) -> Result<()> {
        if self.reject_width_ms == 0 || self.reject_width_ms > 10_000 {
            bail!("key sinks.gpio.reject_width_ms = {}: must be 1..=10000; fix: the ejector's on-time, e.g. 100", self.reject_width_ms);
        }
        if self.reject_delay_ms > 60_000 {
            bail!("key sinks.gpio.reject_delay_ms = {}: must be at most 60000; fix: the conveyor travel time in milliseconds", self.reject_delay_ms);
        }
        if let Some(h) = self.heartbeat_ms {
            if !(10..=60_000).contains(&h) {
                bail!("key sinks.gpio.heartbeat_ms = {h}: must be 10..=60000; fix: e.g. 500, or remove it for a steady ready line");
            }
            if self.ready_line.is_none() {
                bail!("key sinks.gpio.heartbeat_ms needs sinks.gpio.ready_line; fix: set ready_line or remove heartbeat_ms");
            }
        }
        if self.trigger_debounce_ms > 1_000 {
            bail!("key sinks.gpio.trigger_debounce_ms = {}: must be at most 1000; fix: e.g. 5", self.trigger_debounce_ms);
        }
        Ok(())
    }

    fn is_sim(&self) -> bool {
        self.chip == "sim"
    }

    fn open_output(&self, id: &LineId, key: &str) -> Result<Box<dyn OutputPin>> {
        Ok(if self.is_sim() {
            Box::new(SimChip::global().output(id, self.active_low, key)?)
        } else {
            Box::new(ChardevOutput::open(&self.chip, id, self.active_low, "sinks.gpio.chip", key)?)
        })
    }
}

/// What the pulse thread and `emit` share.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    overflow: AtomicU64,
}

struct State {
    /// Pulse start times, oldest first (the delay is constant, so they arrive in order).
    due: VecDeque<Instant>,
    shutdown: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a queue of instants: still consistent if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct GpioSink {
    shared: Arc<Shared>,
    delay: Duration,
    thread: Option<JoinHandle<()>>,
}

impl GpioSink {
    /// Open the configured lines (chardev, or the process-wide sim chip for `chip = "sim"`).
    pub fn open(config: &GpioConfig) -> Result<GpioSink> {
        config.check()?;
        let reject = config.open_output(&config.reject_line, "sinks.gpio.reject_line")?;
        let ready = config.ready_line.as_ref().map(|id| config.open_output(id, "sinks.gpio.ready_line")).transpose()?;
        GpioSink::with_pins(config, reject, ready)
    }

    /// Run on pins the caller opened (tests pass `SimOutput`s). Timing comes from `config`; its chip and
    /// line keys are not used. The ready line goes active now.
    pub fn with_pins(config: &GpioConfig, mut reject: Box<dyn OutputPin>, mut ready: Option<Box<dyn OutputPin>>) -> Result<GpioSink> {
        config.check()?;
        reject.set_active(false)?;
        if let Some(r) = ready.as_mut() {
            r.set_active(true)?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State { due: VecDeque::with_capacity(MAX_PENDING_PULSES), shutdown: false }),
            wake: Condvar::new(),
            overflow: AtomicU64::new(0),
        });
        let worker = PulseWorker {
            shared: shared.clone(),
            reject,
            ready,
            width: Duration::from_millis(config.reject_width_ms),
            heartbeat: config.heartbeat_ms.map(Duration::from_millis),
        };
        let thread = std::thread::Builder::new().name("gpio-pulse".into()).spawn(move || worker.run())?;
        Ok(GpioSink { shared, delay: Duration::from_millis(config.reject_delay_ms), thread: Some(thread) })
    }

    /// Schedule one reject pulse to start `reject_delay_ms` from now.
    pub fn reject(&self) {
        let mut st = self.shared.lock();
        if st.due.len() >= MAX_PENDING_PULSES {
            self.shared.overflow.fetch_add(1, Ordering::Relaxed);
            log::warn!("gpio: {MAX_PENDING_PULSES} reject pulses already pending; this one is dropped");
            return;
        }
        st.due.push_back(Instant::now() + self.delay);
        drop(st);
        self.shared.wake.notify_one();
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                bail!("gpio: the pulse thread panicked; the reject and ready lines are left as they were");
            }
        }
        Ok(())
    }
}

impl Sink for GpioSink {
    fn name(&self) -> &str {
        "gpio"
    }

    fn emit(&mut self, report: &FrameReport, _pixels: &FramePixels<'_>) -> Result<()> {
        if report.verdict != Verdict::Fail {
            return Ok(());
        }
        if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
            bail!("gpio: the pulse thread has stopped, frame {} cannot be rejected; see the log above", report.frame);
        }
        self.reject();
        Ok(())
    }

    fn overflow(&self) -> u64 {
        self.shared.overflow.load(Ordering::Relaxed)
    }

    /// Finishes the pulses already due (the parts were judged and must still be rejected), then sets
    /// the reject and ready lines inactive.
    fn shutdown(&mut self) -> Result<()> {
        self.stop()
    }
}

impl Drop for GpioSink {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::warn!("{e:#}");
        }
    }
}

/// The pulse thread: owns the output pins.
struct PulseWorker {
    shared: Arc<Shared>,
    reject: Box<dyn OutputPin>,
    ready: Option<Box<dyn OutputPin>>,
    width: Duration,
    heartbeat: Option<Duration>,
}

impl PulseWorker {
    fn set(pin: &mut dyn OutputPin, active: bool, what: &str) {
        // A failed write is logged, not fatal: the next pulse may well succeed (a loose connector).
        if let Err(e) = pin.set_active(active) {
            log::warn!("gpio: setting the {what} line {}: {e:#}", if active { "active" } else { "inactive" });
        }
    }

    fn run(mut self) {
        let mut active_until: Option<Instant> = None;
        let mut ready_level = true;
        let mut next_beat = self.heartbeat.map(|p| Instant::now() + p);
        let mut st = self.shared.lock();
        loop {
            let now = Instant::now();
            while let Some(&start) = st.due.front() {
                if start > now {
                    break;
                }
                st.due.pop_front();
                let end = start + self.width;
                match active_until {
                    // Still on for the previous part: keep it on through this one's window too.
                    Some(until) => active_until = Some(until.max(end)),
                    None => {
                        Self::set(self.reject.as_mut(), true, "reject");
                        active_until = Some(end);
                    }
                }
            }
            if let Some(until) = active_until {
                if now >= until {
                    Self::set(self.reject.as_mut(), false, "reject");
                    active_until = None;
                }
            }
            if let (Some(beat), Some(period), Some(pin)) = (next_beat, self.heartbeat, self.ready.as_mut()) {
                if now >= beat && !st.shutdown {
                    ready_level = !ready_level;
                    Self::set(pin.as_mut(), ready_level, "ready");
                    // After a stall, restart the rhythm rather than toggling in a burst.
                    next_beat = Some(if now > beat + period { now + period } else { beat + period });
                }
            }
            if st.shutdown && st.due.is_empty() && active_until.is_none() {
                break;
            }
            let wake = [st.due.front().copied(), active_until, next_beat.filter(|_| !st.shutdown)].into_iter().flatten().min();
            st = match wake {
                Some(t) => self.shared.wake.wait_timeout(st, t.saturating_duration_since(now)).unwrap_or_else(|e| e.into_inner()).0,
                None => self.shared.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
        }
        drop(st);
        Self::set(self.reject.as_mut(), false, "reject");
        if let Some(pin) = self.ready.as_mut() {
            Self::set(pin.as_mut(), false, "ready");
        }
    }
}

/// The trigger input of `pipeline.mode = "trigger"`: one capture per configured edge.
pub struct TriggerInput {
    pin: Box<dyn InputPin>,
    edge: TriggerEdge,
}

impl TriggerInput {
    /// The configured trigger line, or `None` when `trigger_line` is not set.
    pub fn open(config: &GpioConfig) -> Result<Option<TriggerInput>> {
        config.check()?;
        let Some(id) = &config.trigger_line else { return Ok(None) };
        let debounce = Duration::from_millis(config.trigger_debounce_ms);
        let key = "sinks.gpio.trigger_line";
        let pin: Box<dyn InputPin> = if config.is_sim() {
            Box::new(SimChip::global().input(id, config.trigger_active_low, debounce, key)?)
        } else {
            Box::new(ChardevInput::open(&config.chip, id, config.trigger_active_low, debounce, "sinks.gpio.chip", key)?)
        };
        Ok(Some(TriggerInput::with_pin(pin, config.trigger_edge)))
    }

    pub fn with_pin(pin: Box<dyn InputPin>, edge: TriggerEdge) -> TriggerInput {
        TriggerInput { pin, edge }
    }

    /// Wait up to `timeout` for a configured edge: `true` when one arrived, `false` on timeout.
    /// Edges of the other direction are consumed and ignored.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.pin.wait_edge(left)? {
                Some(e) if self.edge.accepts(e) => return Ok(true),
                Some(_) if !left.is_zero() => continue,
                _ => return Ok(false),
            }
        }
    }
}

#[cfg(test)]
#[path = "gpio_tests.rs"]
mod tests;

impl crate::pipeline::Trigger for TriggerInput {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        TriggerInput::wait(self, timeout)
    }
}

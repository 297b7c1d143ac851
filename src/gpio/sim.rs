//! Simulated GPIO chip for tests and the demo. It behaves like a kernel chip
//! as far as the sink and the trigger can tell: named lines, one holder per
//! line, active-low handled per request, and a debounce applied to input
//! edges the way the kernel's debounce period does (an edge is reported once
//! the level has been stable for the period). Outputs record every level
//! change with its `Instant`, so tests can measure pulse delay and width.

use super::{check_free, find_line, Edge, InputPin, LineId, LineSummary, OutputPin};
use anyhow::{bail, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// One recorded change of an output line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelChange {
    pub at: Instant,
    /// Logical level (what the sink asked for).
    pub active: bool,
    /// Physical level (after active-low).
    pub high: bool,
}

#[derive(Default)]
struct SimLine {
    name: String,
    consumer: Option<String>,
    output: bool,
    active_low: bool,
    /// Physical level.
    high: bool,
    history: Vec<LevelChange>,
    /// Input side: raw physical changes not yet seen by the debouncer.
    raw: VecDeque<(Instant, bool)>,
    /// The last raw change still inside its debounce window.
    pending: Option<(Instant, bool)>,
    /// Debounced physical level.
    stable_high: bool,
    /// Debounced edges waiting for `wait_edge`.
    ready: VecDeque<Edge>,
    debounce: Duration,
}

struct ChipState {
    label: String,
    /// Fixed at construction, never resized: an index handed out by `claim` stays valid.
    lines: Vec<SimLine>,
}

/// A simulated chip; clones share the same lines.
#[derive(Clone)]
pub struct SimChip {
    inner: Arc<(Mutex<ChipState>, Condvar)>,
}

impl SimChip {
    /// A chip labelled `label` with one line per name (offset = position).
    pub fn new(label: &str, names: &[&str]) -> SimChip {
        let lines = names.iter().map(|n| SimLine { name: n.to_string(), ..SimLine::default() }).collect();
        SimChip { inner: Arc::new((Mutex::new(ChipState { label: label.to_string(), lines }), Condvar::new())) }
    }

    /// The process-wide chip that `chip = "sim"` in a config opens: 28 lines
    /// named GPIO0..GPIO27 as on a Raspberry Pi header, so a board config can
    /// be tried on a desktop unchanged.
    pub fn global() -> SimChip {
        static GLOBAL: OnceLock<SimChip> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let names: Vec<String> = (0..28).map(|i| format!("GPIO{i}")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                SimChip::new("gpio-sim", &refs)
            })
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, ChipState> {
        // A panic while holding the lock (only possible in a failing test) must not
        // take every later user down with it: the state is plain data, still usable.
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn label(&self) -> String {
        self.lock().label.clone()
    }

    /// The lines as `edgeseg probe` and line lookup see them.
    pub fn lines(&self) -> Vec<LineSummary> {
        self.lock()
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| LineSummary {
                offset: i as u32,
                name: l.name.clone(),
                consumer: l.consumer.clone().unwrap_or_default(),
                used: l.consumer.is_some(),
                direction: if l.output { "output" } else { "input" },
            })
            .collect()
    }

    fn claim(&self, id: &LineId, key: &str, output: bool, active_low: bool, debounce: Duration) -> Result<usize> {
        let desc = format!("sim chip \"{}\"", self.label());
        let lines = self.lines();
        let offset = find_line(&lines, id, &desc, key)?;
        check_free(&lines, offset, &desc, key)?;
        let mut st = self.lock();
        let Some(line) = st.lines.get_mut(offset as usize) else {
            bail!("key {key}: {desc} lost line {offset} while it was being requested")
        };
        line.consumer = Some("edgeseg".into());
        line.output = output;
        line.active_low = active_low;
        line.debounce = debounce;
        if output {
            // Requested inactive, as the chardev backend does.
            line.high = active_low;
        } else {
            line.raw.clear();
            line.pending = None;
            line.ready.clear();
            line.stable_high = line.high;
        }
        Ok(offset as usize)
    }

    /// Request `id` as an output, initially inactive.
    pub fn output(&self, id: &LineId, active_low: bool, key: &str) -> Result<SimOutput> {
        let index = self.claim(id, key, true, active_low, Duration::ZERO)?;
        Ok(SimOutput { chip: self.clone(), index })
    }

    /// Request `id` as an input with both edges detected and `debounce` applied.
    pub fn input(&self, id: &LineId, active_low: bool, debounce: Duration, key: &str) -> Result<SimInput> {
        let index = self.claim(id, key, false, active_low, debounce)?;
        Ok(SimInput { chip: self.clone(), index })
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.lock().lines.iter().position(|l| l.name == name)
    }

    /// Drive an input line's physical level from outside (a sensor, a test). Unknown names are ignored
    /// and reported as `false`.
    pub fn set_input(&self, name: &str, high: bool) -> bool {
        let Some(i) = self.index_of(name) else { return false };
        let mut st = self.lock();
        let line = &mut st.lines[i];
        if line.high != high {
            line.high = high;
            line.raw.push_back((Instant::now(), high));
        }
        drop(st);
        self.inner.1.notify_all();
        true
    }

    /// Every change an output line went through, oldest first.
    pub fn history(&self, name: &str) -> Vec<LevelChange> {
        self.index_of(name).map(|i| self.lock().lines[i].history.clone()).unwrap_or_default()
    }

    /// Logical level of a line as its holder sees it (false for unknown names).
    pub fn is_active(&self, name: &str) -> bool {
        self.index_of(name).map(|i| self.lock().lines[i].is_active()).unwrap_or(false)
    }

    /// The active intervals of an output line: (start, width). A pulse still running is left out.
    pub fn pulses(&self, name: &str) -> Vec<(Instant, Duration)> {
        let mut out = Vec::new();
        let mut start = None;
        for c in self.history(name) {
            match (c.active, start) {
                (true, None) => start = Some(c.at),
                (false, Some(s)) => {
                    out.push((s, c.at - s));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    fn release(&self, index: usize) {
        if let Some(line) = self.lock().lines.get_mut(index) {
            line.consumer = None;
        }
    }
}

impl SimLine {
    fn is_active(&self) -> bool {
        self.high != self.active_low
    }

    /// Run the debouncer up to `now`: raw changes that stayed put for the debounce period become edges.
    fn debounce(&mut self, now: Instant) {
        while let Some((t, high)) = self.raw.pop_front() {
            if let Some((pt, ph)) = self.pending {
                if t >= pt + self.debounce {
                    self.settle(ph);
                }
            }
            // A newer change restarts the window (a bounce).
            self.pending = Some((t, high));
        }
        if let Some((pt, ph)) = self.pending {
            if now >= pt + self.debounce {
                self.settle(ph);
                self.pending = None;
            }
        }
    }

    fn settle(&mut self, high: bool) {
        if high != self.stable_high {
            self.stable_high = high;
            let active = high != self.active_low;
            self.ready.push_back(if active { Edge::Rising } else { Edge::Falling });
        }
    }
}

/// An output line of a `SimChip`.
pub struct SimOutput {
    chip: SimChip,
    index: usize,
}

impl OutputPin for SimOutput {
    fn set_active(&mut self, active: bool) -> Result<()> {
        let mut st = self.chip.lock();
        let line = &mut st.lines[self.index];
        let high = active != line.active_low;
        if line.high != high {
            line.high = high;
            line.history.push(LevelChange { at: Instant::now(), active, high });
        }
        Ok(())
    }
}

impl Drop for SimOutput {
    fn drop(&mut self) {
        self.chip.release(self.index);
    }
}

/// An input line of a `SimChip`; edges come from `SimChip::set_input`.
pub struct SimInput {
    chip: SimChip,
    index: usize,
}

impl InputPin for SimInput {
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>> {
        let deadline = Instant::now() + timeout;
        let mut st = self.chip.lock();
        loop {
            let now = Instant::now();
            let line = &mut st.lines[self.index];
            line.debounce(now);
            if let Some(edge) = line.ready.pop_front() {
                return Ok(Some(edge));
            }
            if now >= deadline {
                return Ok(None);
            }
            // Wake for a new raw change (notify), the end of a debounce window, or the timeout.
            let wake = line.pending.map(|(t, _)| (t + line.debounce).min(deadline)).unwrap_or(deadline);
            let (guard, _) = self.chip.inner.1.wait_timeout(st, wake.saturating_duration_since(now)).unwrap_or_else(|e| e.into_inner());
            st = guard;
        }
    }

    fn is_active(&mut self) -> Result<bool> {
        let line = &self.chip.lock().lines[self.index];
        Ok(line.is_active())
    }
}

impl Drop for SimInput {
    fn drop(&mut self) {
        self.chip.release(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_records_changes_and_honours_active_low() {
        let chip = SimChip::new("t", &["REJECT"]);
        let mut out = chip.output(&LineId::Name("REJECT".into()), true, "k").unwrap();
        out.set_active(true).unwrap();
        out.set_active(true).unwrap(); // not a change
        out.set_active(false).unwrap();
        let h = chip.history("REJECT");
        assert_eq!(h.len(), 2);
        assert!(h[0].active && !h[0].high, "active-low: active drives the line low");
        assert_eq!(chip.pulses("REJECT").len(), 1);
    }

    #[test]
    fn a_line_has_one_holder_until_released() {
        let chip = SimChip::new("t", &["A"]);
        let first = chip.output(&LineId::Offset(0), false, "k").unwrap();
        let e = chip.output(&LineId::Name("A".into()), false, "sinks.gpio.ready_line").err().unwrap().to_string();
        assert!(e.contains("in use by \"edgeseg\"") && e.contains("ready_line"), "{e}");
        drop(first);
        assert!(chip.output(&LineId::Offset(0), false, "k").is_ok());
    }

    #[test]
    fn input_debounces_bounces_into_one_edge() {
        let chip = SimChip::new("t", &["TRIG"]);
        let mut inp = chip.input(&LineId::Name("TRIG".into()), false, Duration::from_millis(20), "k").unwrap();
        for high in [true, false, true, false, true] {
            chip.set_input("TRIG", high);
        }
        assert_eq!(inp.wait_edge(Duration::from_millis(500)).unwrap(), Some(Edge::Rising));
        assert_eq!(inp.wait_edge(Duration::from_millis(60)).unwrap(), None, "bounces were swallowed");
        assert!(inp.is_active().unwrap());
        chip.set_input("TRIG", false);
        assert_eq!(inp.wait_edge(Duration::from_millis(500)).unwrap(), Some(Edge::Falling));
    }

    #[test]
    fn a_glitch_shorter_than_the_debounce_is_no_edge() {
        let chip = SimChip::new("t", &["TRIG"]);
        let mut inp = chip.input(&LineId::Offset(0), false, Duration::from_millis(30), "k").unwrap();
        chip.set_input("TRIG", true);
        chip.set_input("TRIG", false);
        assert_eq!(inp.wait_edge(Duration::from_millis(100)).unwrap(), None);
    }

    #[test]
    fn an_edge_from_another_thread_wakes_the_waiter() {
        let chip = SimChip::new("t", &["TRIG"]);
        let mut inp = chip.input(&LineId::Offset(0), true, Duration::ZERO, "k").unwrap();
        let c = chip.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            c.set_input("TRIG", true); // active-low: high is inactive, so this is a falling edge
        });
        assert_eq!(inp.wait_edge(Duration::from_secs(5)).unwrap(), Some(Edge::Falling));
        t.join().unwrap();
    }
}

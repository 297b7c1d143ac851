//! What the daemon knows about its pipeline across reloads: whether it makes
//! progress (for the systemd watchdog), the source's health (`camera missing`
//! on MQTT, the dashboard and systemd's status line), and the next frame
//! number, so numbers never restart at 0 on a reload (consumers de-duplicate
//! by `frame`, docs/mqtt.md).
//!
//! Plain atomics: the capture, inference and output threads update it on
//! every frame without locks or allocation.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The source's state as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// The camera is not there (yet); it is retried with backoff.
    CameraMissing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::CameraMissing => "camera missing",
        }
    }

    fn from_u8(v: u8) -> Health {
        if v == 1 {
            Health::CameraMissing
        } else {
            Health::Ok
        }
    }
}

const NEVER: u64 = u64::MAX;

pub struct Monitor {
    started: Instant,
    /// Milliseconds after `started` of the last sign of progress; NEVER before the first.
    last_progress_ms: AtomicU64,
    judged: AtomicU64,
    health: AtomicU8,
    next_frame: AtomicU64,
    /// The running source may deliver nothing for a long time without being stuck
    /// (a camera on an external hardware trigger): waiting for it counts as progress.
    source_may_idle: AtomicBool,
    /// How long without progress counts as stalled.
    stall_after_ms: AtomicU64,
    stopping: AtomicBool,
}

impl Monitor {
    pub fn new(stall_after: Duration) -> Arc<Monitor> {
        Arc::new(Monitor {
            started: Instant::now(),
            last_progress_ms: AtomicU64::new(NEVER),
            judged: AtomicU64::new(0),
            health: AtomicU8::new(0),
            next_frame: AtomicU64::new(0),
            source_may_idle: AtomicBool::new(false),
            stall_after_ms: AtomicU64::new(stall_after.as_millis().min(u128::from(u64::MAX / 2)) as u64),
            stopping: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis().min(u128::from(NEVER - 1)) as u64
    }

    /// The pipeline is alive: a frame judged, or a wait that is legitimately idle.
    pub fn progress(&self) {
        self.last_progress_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A frame went through every sink.
    pub fn judged(&self) {
        self.judged.fetch_add(1, Ordering::Relaxed);
        self.progress();
    }

    pub fn judged_count(&self) -> u64 {
        self.judged.load(Ordering::Relaxed)
    }

    /// Time since the last progress; None before the first.
    pub fn since_progress(&self) -> Option<Duration> {
        let last = self.last_progress_ms.load(Ordering::Relaxed);
        (last != NEVER).then(|| Duration::from_millis(self.now_ms().saturating_sub(last)))
    }

    pub fn set_health(&self, h: Health) {
        self.health.store(h as u8, Ordering::Relaxed);
    }

    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Relaxed))
    }

    pub fn set_source_may_idle(&self, idle: bool) {
        self.source_may_idle.store(idle, Ordering::Relaxed);
    }

    pub fn source_may_idle(&self) -> bool {
        self.source_may_idle.load(Ordering::Relaxed)
    }

    pub fn set_stall_after(&self, d: Duration) {
        self.stall_after_ms.store(d.as_millis().min(u128::from(u64::MAX / 2)) as u64, Ordering::Relaxed);
    }

    pub fn stall_after(&self) -> Duration {
        Duration::from_millis(self.stall_after_ms.load(Ordering::Relaxed))
    }

    /// Progress seen, and not longer ago than the stall limit.
    pub fn alive(&self) -> bool {
        self.since_progress().is_some_and(|d| d <= self.stall_after())
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// The number the next frame gets at least.
    pub fn next_frame(&self) -> u64 {
        self.next_frame.load(Ordering::Relaxed)
    }
}

/// Frame numbers that never go back within the daemon: the source's own number
/// (a gap there is a frame the driver dropped), shifted up whenever it would
/// repeat one, as when a reload opens the source again at 0 or a camera is reopened.
pub struct Numbering {
    offset: u64,
    monitor: Arc<Monitor>,
}

impl Numbering {
    pub fn new(monitor: Arc<Monitor>) -> Numbering {
        Numbering { offset: 0, monitor }
    }

    /// The number of the frame the source numbered `source_seq`.
    pub fn assign(&mut self, source_seq: u64) -> u64 {
        let next = self.monitor.next_frame.load(Ordering::Relaxed);
        let mut n = source_seq.saturating_add(self.offset);
        if n < next {
            // source_seq <= n < next: no underflow.
            self.offset = next - source_seq;
            n = next;
        }
        self.monitor.next_frame.store(n.saturating_add(1), Ordering::Relaxed);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_continue_across_source_restarts_and_keep_gaps() {
        let m = Monitor::new(Duration::from_secs(30));
        let mut a = Numbering::new(m.clone());
        assert_eq!([0, 1, 5].map(|s| a.assign(s)), [0, 1, 5], "a fresh daemon keeps the source's numbers");
        // A reload: the new source starts at 0 again.
        let mut b = Numbering::new(m.clone());
        assert_eq!([0, 1, 3].map(|s| b.assign(s)), [6, 7, 9]);
        // A source that was handed over goes on with its own numbers.
        let mut c = Numbering::new(m.clone());
        assert_eq!([4, 5].map(|s| c.assign(s)), [10, 11]);
        assert_eq!(m.next_frame(), 12);
    }

    #[test]
    fn alive_only_within_the_stall_limit() {
        let m = Monitor::new(Duration::from_millis(50));
        assert!(!m.alive() && m.since_progress().is_none());
        m.judged();
        assert!(m.alive());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!m.alive());
        m.set_health(Health::CameraMissing);
        assert_eq!(m.health().as_str(), "camera missing");
    }
}

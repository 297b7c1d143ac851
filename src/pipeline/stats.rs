//! Running totals and per-stage latency medians, kept by the output thread.
//! The latency window is a fixed ring, so keeping stats allocates nothing per frame.

use crate::report::{FrameReport, StageLatency, Stats, Verdict};
use std::time::Instant;

/// Frames of latency kept for the medians.
const WINDOW: usize = 512;

pub struct StatsKeeper {
    pub stats: Stats,
    start: Instant,
    ring: Vec<StageLatency>,
    next: usize,
    interval_start: Instant,
    interval_frames: u64,
    scratch: Vec<f64>,
}

impl StatsKeeper {
    pub fn new(device: &str) -> StatsKeeper {
        let now = Instant::now();
        StatsKeeper {
            stats: Stats { device: device.to_string(), ..Stats::default() },
            start: now,
            ring: Vec::with_capacity(WINDOW),
            next: 0,
            interval_start: now,
            interval_frames: 0,
            scratch: Vec::with_capacity(WINDOW),
        }
    }

    pub fn record(&mut self, report: &FrameReport) {
        let s = &mut self.stats;
        s.frames += 1;
        match report.verdict {
            Verdict::Pass => s.pass += 1,
            Verdict::Fail => s.fail += 1,
        }
        for f in &report.findings {
            // Allocates only the first time a class name is seen.
            match s.defects.get_mut(&*f.class) {
                Some(n) => *n += 1,
                None => {
                    s.defects.insert(f.class.to_string(), 1);
                }
            }
        }
        if self.ring.len() < WINDOW {
            self.ring.push(report.latency);
        } else {
            self.ring[self.next] = report.latency;
        }
        self.next = (self.next + 1) % WINDOW;
        self.interval_frames += 1;
    }

    /// Finish an interval: fps over it, medians over the window.
    pub fn snapshot(&mut self, dropped: u64, corrupt: u64, sink_overflow: u64) -> &Stats {
        let elapsed = self.interval_start.elapsed().as_secs_f64();
        let s = &mut self.stats;
        s.uptime_s = self.start.elapsed().as_secs_f64();
        s.fps = if elapsed > 0.0 { self.interval_frames as f64 / elapsed } else { 0.0 };
        s.dropped = dropped;
        s.corrupt = corrupt;
        s.sink_overflow = sink_overflow;
        self.interval_start = Instant::now();
        self.interval_frames = 0;
        s.latency_median = median_latency(&self.ring, &mut self.scratch);
        &self.stats
    }

    /// All latency samples in the window (for `bench --pipeline`).
    pub fn window(&self) -> &[StageLatency] {
        &self.ring
    }
}

/// Per-stage medians of `samples`.
pub fn median_latency(samples: &[StageLatency], scratch: &mut Vec<f64>) -> StageLatency {
    let mut median = |f: fn(&StageLatency) -> f64| median_of(samples.iter().map(f), scratch);
    StageLatency {
        capture_ms: median(|l| l.capture_ms),
        queue_ms: median(|l| l.queue_ms),
        preprocess_ms: median(|l| l.preprocess_ms),
        infer_ms: median(|l| l.infer_ms),
        decode_ms: median(|l| l.decode_ms),
        emit_ms: median(|l| l.emit_ms),
    }
}

/// Median of `values` (mean of the middle two for an even count); 0 when empty.
pub fn median_of(values: impl Iterator<Item = f64>, scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend(values);
    if scratch.is_empty() {
        return 0.0;
    }
    scratch.sort_by(f64::total_cmp);
    let n = scratch.len();
    if n % 2 == 1 {
        scratch[n / 2]
    } else {
        (scratch[n / 2 - 1] + scratch[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_counters() {
        let mut k = StatsKeeper::new("d");
        for (i, v) in [3.0, 1.0, 2.0, 10.0].iter().enumerate() {
            let mut r = FrameReport::default();
            r.latency.infer_ms = *v;
            r.verdict = if i == 0 { Verdict::Fail } else { Verdict::Pass };
            k.record(&r);
        }
        let s = k.snapshot(5, 1, 0);
        assert_eq!((s.frames, s.pass, s.fail, s.dropped, s.corrupt), (4, 3, 1, 5, 1));
        assert_eq!(s.latency_median.infer_ms, 2.5);
    }
}

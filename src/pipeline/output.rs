//! The output thread: overlays, sinks, periodic stats, and the source's health
//! passed on to the sinks that show it (MQTT status, dashboard).

use super::monitor::{Health, Monitor};
use super::process::{self, FrameResult};
use super::stats::StatsKeeper;
use super::{Counters, Options};
use crate::model::round_ms;
use crate::report::{StageLatency, Stats};
use crate::sink::{FramePixels, Sink};
use log::warn;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

/// How often the loop looks at the source's health when no result arrives.
const HEALTH_POLL: Duration = Duration::from_millis(250);

/// What the output thread hands back: totals, recent latencies and the sinks (not shut down).
pub struct OutputEnd {
    pub stats: Stats,
    pub latencies: Vec<StageLatency>,
    pub sinks: Vec<Box<dyn Sink>>,
}

pub(crate) struct OutputArgs<'a> {
    pub counters: &'a Counters,
    pub options: &'a Options,
    pub class_names: &'a [String],
    pub device: &'a str,
    pub monitor: &'a Monitor,
}

pub(crate) fn output_loop(mut sinks: Vec<Box<dyn Sink>>, results: Receiver<FrameResult>, pool: SyncSender<FrameResult>, a: OutputArgs<'_>) -> OutputEnd {
    let mut keeper = StatsKeeper::new(a.device);
    let mut next_stats = Instant::now() + a.options.stats_interval;
    // Every pipeline tells its sinks the health once, so a reload's new sinks know it.
    let mut told: Option<Health> = None;
    loop {
        let health = a.monitor.health();
        if told != Some(health) {
            told = Some(health);
            for sink in sinks.iter_mut() {
                if let Err(e) = sink.health(health) {
                    warn!("sink {} health: {e:#}", sink.name());
                }
            }
        }
        let wait = next_stats.saturating_duration_since(Instant::now()).min(HEALTH_POLL);
        match results.recv_timeout(wait) {
            Ok(mut result) => {
                if result.started.is_some() {
                    emit(&mut result, &mut sinks, &mut keeper, a.options, a.class_names);
                    a.monitor.judged();
                } else {
                    // A corrupt frame, counted and skipped: the pipeline itself is moving.
                    a.monitor.progress();
                }
                if pool.send(result).is_err() {
                    // The inference thread is gone; keep draining.
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + a.options.stats_interval;
            publish_stats(&mut keeper, &mut sinks, a.counters);
        }
    }
    let stats = publish_stats(&mut keeper, &mut sinks, a.counters);
    OutputEnd { stats, latencies: keeper.window().to_vec(), sinks }
}

fn emit(result: &mut FrameResult, sinks: &mut [Box<dyn Sink>], keeper: &mut StatsKeeper, options: &Options, class_names: &[String]) {
    let t = Instant::now();
    if options.overlay {
        process::draw_overlay(result, class_names);
    }
    result.report.emitted_unix_us = crate::frame::unix_us_now();
    result.report.latency.emit_ms = round_ms(t.elapsed());
    let pixels = FramePixels { image: &result.image, overlay: options.overlay.then_some(&result.overlay) };
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.emit(&result.report, &pixels) {
            warn!("sink {}: {e:#}", sink.name());
        }
    }
    // Stats see the full emit time, sinks included.
    let mut report_latency = result.report.latency;
    report_latency.emit_ms = t.elapsed().as_secs_f64() * 1e3;
    let saved = std::mem::replace(&mut result.report.latency, report_latency);
    keeper.record(&result.report);
    result.report.latency = saved;
}

fn publish_stats(keeper: &mut StatsKeeper, sinks: &mut [Box<dyn Sink>], counters: &Counters) -> Stats {
    let overflow = sinks.iter().map(|s| s.overflow()).sum();
    let stats = keeper.snapshot(counters.dropped.load(Ordering::Relaxed), counters.corrupt.load(Ordering::Relaxed), overflow);
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.stats(stats) {
            warn!("sink {} stats: {e:#}", sink.name());
        }
    }
    stats.clone()
}

/// Flush and say goodbye (MQTT `offline`, GPIO lines released) to each sink.
pub fn shutdown(sinks: &mut [Box<dyn Sink>]) {
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.shutdown() {
            warn!("sink {} shutdown: {e:#}", sink.name());
        }
    }
}

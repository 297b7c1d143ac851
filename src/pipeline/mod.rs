//! The daemon's pipeline: capture → inference → output, each on its own thread.
//!
//! ```text
//!  capture thread          inference thread             output thread
//!  source.next_frame ──▶ Mailbox (newest wins) ──▶ FrameProcessor ──▶ queue(2) ──▶ overlay, sinks, stats
//!        ▲   frame pool ◀──────────┘                      ▲   result pool ◀────────────┘
//! ```
//! Frames and results circulate through fixed pools, so the steady state
//! allocates nothing. When inference is slower than the camera, the capture
//! thread replaces the waiting frame (counted as `dropped`): the judged frame
//! is always the newest one. In trigger mode one frame captured after each
//! trigger edge is judged.

pub mod capture;
pub mod mailbox;
pub mod monitor;
pub mod notify;
pub mod output;
pub mod process;
pub mod stats;

use crate::config::Mode;
use crate::frame::Frame;
use crate::model::round_ms;
use crate::report::{StageLatency, Stats};
use crate::sink::Sink;
use crate::source::FrameSource;
use anyhow::Result;
use capture::SourceSlot;
use log::{error, warn};
use mailbox::{Mailbox, Take};
use monitor::Monitor;
use process::{FrameError, FrameProcessor, FrameResult};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames in circulation: one being captured, one waiting, one being judged.
const FRAME_POOL: usize = 3;
/// Results in circulation: one being judged, two queued for or in the output thread.
const RESULT_POOL: usize = 3;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Something that says "judge the next frame now" (a GPIO trigger input).
pub trait Trigger: Send {
    /// Wait up to `timeout`; true when a trigger arrived.
    fn wait(&mut self, timeout: Duration) -> Result<bool>;
}

/// What the pipeline is made of.
pub struct Parts {
    pub source: Box<dyn FrameSource>,
    pub processor: FrameProcessor,
    pub sinks: Vec<Box<dyn Sink>>,
    pub trigger: Option<Box<dyn Trigger>>,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    /// Stop after this many judged frames (0 = no limit).
    pub max_frames: u64,
    pub stats_interval: Duration,
    /// Draw overlays for sinks that show or store images.
    pub overlay: bool,
}

/// How a run went.
#[derive(Debug)]
pub struct Summary {
    pub stats: Stats,
    /// Per-stage latency of the last frames (up to 512).
    pub latencies: Vec<StageLatency>,
    /// From the first judged frame to the last.
    pub judged_span_s: f64,
    /// Whether the run ended because of a model error.
    pub model_error: Option<String>,
    /// Frames the source delivered.
    pub captured: u64,
}

/// Counters shared by the threads.
#[derive(Default)]
pub(crate) struct Counters {
    /// Frames the source delivered (judged, dropped, corrupt or skipped waiting for a trigger).
    captured: AtomicU64,
    dropped: AtomicU64,
    corrupt: AtomicU64,
}

/// What a stopped pipeline leaves: everything it was made of, sinks not shut
/// down, so a reload can keep what it does not replace (`commands::run`).
pub struct Leftovers {
    pub source: SourceSlot,
    pub processor: FrameProcessor,
    pub sinks: Vec<Box<dyn Sink>>,
    pub trigger: Option<Box<dyn Trigger>>,
}

/// Run until the source ends, `max_frames` are judged, or `stop` is set; then
/// shut the sinks down (MQTT goes `offline`, GPIO lines are released).
pub fn run(parts: Parts, options: &Options, stop: Arc<AtomicBool>) -> Result<Summary> {
    let (summary, mut left) = run_with(parts, options, stop, &Monitor::new(Duration::from_secs(3600)))?;
    output::shutdown(&mut left.sinks);
    Ok(summary)
}

/// `run` for the daemon: progress, health and frame numbers go to `monitor`
/// (it outlives reloads), and the parts come back unshut.
pub fn run_with(parts: Parts, options: &Options, stop: Arc<AtomicBool>, monitor: &Arc<Monitor>) -> Result<(Summary, Leftovers)> {
    let Parts { source, mut processor, sinks, mut trigger } = parts;
    let counters = Arc::new(Counters::default());
    let mailbox: Arc<Mailbox<Frame>> = Arc::new(Mailbox::default());
    let (free_tx, free_rx) = sync_channel::<Frame>(FRAME_POOL);
    for _ in 0..FRAME_POOL {
        // The channel holds exactly FRAME_POOL items and is empty here.
        free_tx.send(Frame::with_capacity(1 << 20)).expect("pool channel has room");
    }
    let capture_stop = Arc::new(AtomicBool::new(false));
    let (capture, lossless, describe) =
        capture::spawn(source, mailbox.clone(), free_rx, counters.clone(), stop.clone(), capture_stop.clone(), monitor.clone())?;

    let (result_tx, result_rx) = sync_channel::<FrameResult>(RESULT_POOL);
    let (pool_tx, pool_rx) = sync_channel::<FrameResult>(RESULT_POOL);
    for _ in 0..RESULT_POOL {
        pool_tx.send(FrameResult::new()).expect("pool channel has room");
    }
    let output = {
        let (counters, monitor) = (counters.clone(), monitor.clone());
        let class_names = processor.class_names().to_vec();
        let options = options.clone();
        let device = processor.device().to_string();
        std::thread::Builder::new().name("output".into()).spawn(move || {
            let args = output::OutputArgs { counters: &counters, options: &options, class_names: &class_names, device: &device, monitor: &monitor };
            output::output_loop(sinks, result_rx, pool_tx, args)
        })?
    };

    let mut judged = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut model_error = None;
    'frames: while !stop.load(Ordering::Relaxed) {
        if options.mode == Mode::Trigger {
            let Some(t) = trigger.as_mut() else {
                model_error = Some("pipeline.mode = \"trigger\" needs [sinks.gpio] trigger_line".to_string());
                break;
            };
            match t.wait(POLL) {
                Ok(true) => {
                    // Judge a frame captured after the trigger, not the one already waiting.
                    if let Some(stale) = mailbox.try_take() {
                        let _ = free_tx.try_send(stale);
                    }
                }
                Ok(false) => {
                    // Waiting for a part is what a trigger-driven line does: alive.
                    monitor.progress();
                    continue;
                }
                Err(e) => {
                    error!("trigger input failed: {e:#}");
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let (frame, waited) = loop {
            match mailbox.take(POLL) {
                Take::Item(f, waited) => break (f, waited),
                Take::Timeout if stop.load(Ordering::Relaxed) => break 'frames,
                Take::Timeout => {
                    if monitor.source_may_idle() && options.mode == Mode::Continuous {
                        monitor.progress();
                    }
                }
                Take::Closed => break 'frames,
            }
        };
        let Ok(mut result) = pool_rx.recv() else { break };
        let queue_ms = round_ms(waited);
        let since_capture_ms = crate::frame::unix_us_now().saturating_sub(frame.captured_unix_us) as f64 / 1e3;
        let capture_ms = (since_capture_ms - queue_ms).max(0.0);
        let outcome = processor.process(&frame, &mut result, capture_ms, queue_ms);
        if let Err(FrameError::Corrupt(e)) = &outcome {
            let n = counters.corrupt.fetch_add(1, Ordering::Relaxed) + 1;
            warn!("frame {} from {}: {e:#}; skipped ({n} corrupt so far)", frame.seq, frame.origin);
        }
        // The pool has room for every frame, so returning one never blocks.
        let _ = free_tx.try_send(frame);
        match outcome {
            Ok(()) => {
                judged += 1;
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                if result_tx.send(result).is_err() {
                    break;
                }
                if options.max_frames > 0 && judged >= options.max_frames {
                    break;
                }
            }
            Err(FrameError::Corrupt(_)) => {
                // The result slot goes back to the pool through the output
                // thread, marked unused by `started = None`.
                result.started = None;
                if result_tx.send(result).is_err() {
                    break;
                }
            }
            Err(FrameError::Model(e)) => {
                error!("model failed: {e:#}");
                model_error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    capture_stop.store(true, Ordering::Relaxed);
    mailbox.close();
    drop(result_tx);
    let out = output.join().map_err(|_| anyhow::anyhow!("output thread panicked"))?;
    // The capture thread may sit in a blocking read (stdin, a camera): it
    // notices the stop flag after its current frame; the slot keeps it.
    let source = capture::slot(capture, lossless, describe);
    let judged_span_s = first.map(|f| last.duration_since(f).as_secs_f64()).unwrap_or(0.0);
    let summary = Summary {
        stats: out.stats,
        latencies: out.latencies,
        judged_span_s,
        model_error,
        captured: counters.captured.load(Ordering::Relaxed),
    };
    Ok((summary, Leftovers { source, processor, sinks: out.sinks, trigger }))
}

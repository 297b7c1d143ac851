//! The capture thread: pulls frames from the source into the mailbox, numbers
//! them (`monitor::Numbering`), reports a missing camera, and hands the source
//! back when it ends, so a reload can keep using it (a camera, stdin).
//!
//! A source blocked in a read (stdin with nothing coming, a camera waiting for
//! a hardware trigger) cannot be interrupted; the thread then notices the stop
//! flag after its current frame. `SourceSlot::Pending` keeps such a thread's
//! handle: the next pipeline gets the source when the read returns.

use super::mailbox::Mailbox;
use super::monitor::{Health, Monitor, Numbering};
use super::{Counters, POLL};
use crate::frame::Frame;
use crate::source::{FrameSource, Next};
use log::{debug, error, info};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A source in hand, or the capture thread that still holds it.
pub enum SourceSlot {
    Ready(Box<dyn FrameSource>),
    Pending(PendingSource),
}

impl SourceSlot {
    /// Wait up to `limit` for a pending capture thread to return the source.
    pub fn settle(self, limit: Duration) -> SourceSlot {
        match self {
            SourceSlot::Pending(p) => p.settle(limit),
            ready => ready,
        }
    }

    /// Whether the source is in hand (its device is held by nobody else but it).
    pub fn is_ready(&self) -> bool {
        matches!(self, SourceSlot::Ready(_))
    }

    /// As a source for the next pipeline: a pending one is joined by the next capture thread.
    pub fn into_source(self) -> Box<dyn FrameSource> {
        match self {
            SourceSlot::Ready(s) => s,
            SourceSlot::Pending(p) => Box::new(p),
        }
    }
}

/// What a capture thread hands back: its source, and a frame it read after
/// being told to stop (a reload that keeps the source judges it next).
pub struct Handback {
    source: Box<dyn FrameSource>,
    frame: Option<Frame>,
}

impl Handback {
    fn into_source(self) -> Box<dyn FrameSource> {
        match self.frame {
            None => self.source,
            Some(frame) => Box::new(Carried { source: self.source, frame: Some(frame) }),
        }
    }
}

/// A source with a frame already read from it, delivered first.
struct Carried {
    source: Box<dyn FrameSource>,
    frame: Option<Frame>,
}

impl FrameSource for Carried {
    fn describe(&self) -> String {
        self.source.describe()
    }

    fn next_frame(&mut self, frame: &mut Frame) -> anyhow::Result<Next> {
        match self.frame.take() {
            // Buffers are pooled: swapping hands this one to the new pool and keeps its capacity.
            Some(mut carried) => {
                std::mem::swap(frame, &mut carried);
                Ok(Next::Frame)
            }
            None => self.source.next_frame(frame),
        }
    }

    fn lossless(&self) -> bool {
        self.source.lossless()
    }
}

/// The capture thread of a stopped pipeline, still in a read.
pub struct PendingSource {
    handle: Option<JoinHandle<Handback>>,
    source: Option<Box<dyn FrameSource>>,
    lossless: bool,
    describe: String,
}

impl PendingSource {
    fn settle(mut self, limit: Duration) -> SourceSlot {
        let deadline = Instant::now() + limit;
        while self.handle.as_ref().is_some_and(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(source) = self.join() {
                return SourceSlot::Ready(source);
            }
        }
        SourceSlot::Pending(self)
    }

    /// Block until the thread returns the source (None if it panicked).
    fn join(&mut self) -> Option<Box<dyn FrameSource>> {
        if self.source.is_none() {
            self.source = self.handle.take()?.join().ok().map(Handback::into_source);
        }
        self.source.take()
    }
}

impl FrameSource for PendingSource {
    fn describe(&self) -> String {
        match &self.source {
            Some(s) => s.describe(),
            None => format!("{} (taken over from the previous pipeline)", self.describe),
        }
    }

    fn next_frame(&mut self, frame: &mut Frame) -> anyhow::Result<Next> {
        if self.source.is_none() {
            self.source = self.join();
        }
        match self.source.as_mut() {
            Some(s) => s.next_frame(frame),
            None => anyhow::bail!("the capture thread of the previous pipeline panicked; the source is lost"),
        }
    }

    fn lossless(&self) -> bool {
        self.lossless
    }
}

/// Start the capture thread.
pub(crate) fn spawn(
    source: Box<dyn FrameSource>,
    mailbox: Arc<Mailbox<Frame>>,
    free: Receiver<Frame>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    capture_stop: Arc<AtomicBool>,
    monitor: Arc<Monitor>,
) -> std::io::Result<(JoinHandle<Handback>, bool, String)> {
    let (lossless, describe) = (source.lossless(), source.describe());
    let handle = std::thread::Builder::new().name("capture".into()).spawn(move || {
        let mut source = source;
        let frame = capture_loop(&mut *source, &mailbox, free, &counters, &stop, &capture_stop, monitor);
        Handback { source, frame }
    })?;
    Ok((handle, lossless, describe))
}

/// The slot of a finished pipeline's source: in hand if its thread is done.
pub(crate) fn slot(handle: JoinHandle<Handback>, lossless: bool, describe: String) -> SourceSlot {
    let pending = PendingSource { handle: Some(handle), source: None, lossless, describe };
    pending.settle(Duration::ZERO)
}

fn capture_loop(
    source: &mut dyn FrameSource,
    mailbox: &Mailbox<Frame>,
    free: Receiver<Frame>,
    counters: &Counters,
    stop: &AtomicBool,
    capture_stop: &AtomicBool,
    monitor: Arc<Monitor>,
) -> Option<Frame> {
    info!("source: {}", source.describe());
    let stopping = || stop.load(Ordering::Relaxed) || capture_stop.load(Ordering::Relaxed);
    let mut numbering = Numbering::new(monitor.clone());
    // A frame displaced from the mailbox is captured into next, keeping the pool whole.
    let mut spare: Option<Frame> = None;
    let lossless = source.lossless();
    while !stopping() {
        let mut frame = match spare.take() {
            Some(f) => f,
            None => match free.recv_timeout(POLL) {
                Ok(f) => f,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match source.next_frame(&mut frame) {
            // Read after the stop (a blocking read that returned): not this pipeline's any more.
            Ok(Next::Frame) if stopping() => {
                mailbox.close();
                return Some(frame);
            }
            Ok(Next::Frame) => {
                if monitor.health() != Health::Ok {
                    info!("source: {} delivers frames", source.describe());
                    monitor.set_health(Health::Ok);
                }
                counters.captured.fetch_add(1, Ordering::Relaxed);
                frame.seq = numbering.assign(frame.seq);
                if lossless {
                    while !mailbox.wait_empty(POLL) {
                        if stopping() {
                            mailbox.close();
                            return Some(frame);
                        }
                    }
                }
                if let Some(old) = mailbox.put(frame) {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    debug!("frame {} dropped: inference busy", old.seq);
                    spare = Some(old);
                }
            }
            Ok(Next::Missing) => {
                // Waiting for the camera is what the daemon should do now: alive, not stalled.
                monitor.set_health(Health::CameraMissing);
                monitor.progress();
                spare = Some(frame);
            }
            Ok(Next::End) => {
                info!("source ended: {}", source.describe());
                break;
            }
            Err(e) => {
                error!("source failed: {e:#}");
                break;
            }
        }
    }
    mailbox.close();
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    /// A camera whose every read takes `delay` (a slow or externally triggered one).
    struct Slow {
        delay: Duration,
        next: u64,
    }

    impl FrameSource for Slow {
        fn describe(&self) -> String {
            "slow".into()
        }
        fn next_frame(&mut self, frame: &mut Frame) -> anyhow::Result<Next> {
            std::thread::sleep(self.delay);
            frame.seq = self.next;
            self.next += 1;
            Ok(Next::Frame)
        }
    }

    /// Issue 24 item 20: the capture thread of a stopped pipeline was left running
    /// (its device still open) with nothing to wait for it. Now it is kept, waited
    /// for with a bound, and hands back the source and the frame it was reading.
    #[test]
    fn a_stopped_capture_thread_is_waited_for_and_hands_back_its_source() {
        let mailbox = Arc::new(Mailbox::default());
        let (free_tx, free_rx) = sync_channel(3);
        for _ in 0..3 {
            free_tx.send(Frame::with_capacity(0)).unwrap();
        }
        let capture_stop = Arc::new(AtomicBool::new(false));
        let source = Box::new(Slow { delay: Duration::from_millis(400), next: 0 });
        let monitor = Monitor::new(Duration::from_secs(30));
        let stop = Arc::new(AtomicBool::new(false));
        let (handle, lossless, describe) = spawn(source, mailbox, free_rx, Arc::new(Counters::default()), stop, capture_stop.clone(), monitor).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        capture_stop.store(true, Ordering::Relaxed);
        let slot = slot(handle, lossless, describe);
        assert!(!slot.is_ready(), "still in its read");
        let slot = slot.settle(Duration::from_millis(10));
        assert!(!slot.is_ready(), "a short bound gives up");
        let slot = slot.settle(Duration::from_secs(3));
        assert!(slot.is_ready(), "the read returned and the thread ended");
        let mut source = slot.into_source();
        let mut frame = Frame::with_capacity(0);
        source.next_frame(&mut frame).unwrap();
        assert_eq!(frame.seq, 0, "the frame read after the stop comes first");
        source.next_frame(&mut frame).unwrap();
        assert_eq!(frame.seq, 1);
    }
}

//! A camera that is not there when the daemon starts (not plugged in yet, a
//! USB hub still enumerating) is waited for with backoff instead of ending the
//! start: `next_frame` returns `Next::Missing` between attempts, so the
//! pipeline stays responsive to SIGTERM and reports `camera missing` (MQTT
//! status, dashboard, systemd status) until the first open succeeds; from then
//! on the source itself handles a camera that goes away.
//!
//! Only a missing device is waited for (`DeviceMissing`); a config the camera
//! cannot satisfy is an error at once.

use super::{Backoff, FrameSource, Next};
use crate::frame::Frame;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Marks an open error that means "no such device (yet)": no node at the path,
/// no camera with the configured card name.
#[derive(Debug)]
pub struct DeviceMissing(pub String);

impl std::fmt::Display for DeviceMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeviceMissing {}

/// Whether `e` says the device is missing (rather than misconfigured or failing).
pub fn is_missing(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<DeviceMissing>())
}

/// Longest sleep inside one `next_frame` while missing: the capture thread looks at its stop flag this often.
const SLICE: Duration = Duration::from_millis(200);

pub struct AwaitDevice<S> {
    open: Box<dyn FnMut() -> Result<S> + Send>,
    what: String,
    source: Option<S>,
    backoff: Backoff,
    next_try: Instant,
    attempts: u64,
}

impl<S: FrameSource> AwaitDevice<S> {
    /// `open` is tried again with backoff (0.5 s doubling to `max_backoff`) until it succeeds;
    /// `first_error` is what the first attempt said.
    pub fn new(what: &str, first_error: &anyhow::Error, max_backoff: Duration, open: Box<dyn FnMut() -> Result<S> + Send>) -> AwaitDevice<S> {
        log::warn!("{what}: camera missing ({first_error:#}); waiting for it, retrying with backoff up to {} s", max_backoff.as_secs());
        let mut backoff = Backoff::new(max_backoff);
        let next_try = Instant::now() + backoff.next_delay();
        AwaitDevice { open, what: what.to_string(), source: None, backoff, next_try, attempts: 1 }
    }
}

impl<S: FrameSource> FrameSource for AwaitDevice<S> {
    fn describe(&self) -> String {
        match &self.source {
            Some(s) => s.describe(),
            None => format!("{} (camera missing, retrying)", self.what),
        }
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next> {
        if let Some(s) = self.source.as_mut() {
            return s.next_frame(frame);
        }
        let now = Instant::now();
        if now < self.next_try {
            std::thread::sleep((self.next_try - now).min(SLICE));
            return Ok(Next::Missing);
        }
        self.attempts += 1;
        match (self.open)() {
            Ok(s) => {
                log::info!("{}: camera found after {} attempt(s): {}", self.what, self.attempts, s.describe());
                self.source = Some(s);
                self.next_frame(frame)
            }
            Err(e) if is_missing(&e) => {
                let delay = self.backoff.next_delay();
                log::debug!("{}: still missing ({e:#}); next attempt in {:.1} s", self.what, delay.as_secs_f64());
                self.next_try = Instant::now() + delay;
                Ok(Next::Missing)
            }
            Err(e) => Err(e.context(format!("{}: the camera appeared but cannot be used", self.what))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(u64);
    impl FrameSource for One {
        fn describe(&self) -> String {
            "one".into()
        }
        fn next_frame(&mut self, frame: &mut Frame) -> Result<Next> {
            frame.seq = self.0;
            self.0 += 1;
            Ok(Next::Frame)
        }
    }

    #[test]
    fn missing_until_the_device_appears_then_frames() {
        let mut left = 2;
        let open = Box::new(move || -> Result<One> {
            if left > 0 {
                left -= 1;
                return Err(anyhow::Error::new(DeviceMissing("no /dev/video9".into())));
            }
            Ok(One(0))
        });
        let first = anyhow::Error::new(DeviceMissing("no /dev/video9".into()));
        let mut s = AwaitDevice::new("v4l2 /dev/video9", &first, Duration::from_millis(500), open);
        let mut f = Frame::with_capacity(0);
        let started = Instant::now();
        let mut missing = 0;
        while s.next_frame(&mut f).unwrap() == Next::Missing {
            missing += 1;
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        assert!(missing >= 3 && f.seq == 0, "{missing}");
        assert!(is_missing(&anyhow::Error::new(DeviceMissing("x".into())).context("outer")));
        assert!(!is_missing(&anyhow::anyhow!("busy")));
    }

    #[test]
    fn a_camera_that_appears_unusable_is_an_error() {
        let open = Box::new(|| -> Result<One> { anyhow::bail!("format h264 not offered") });
        let first = anyhow::Error::new(DeviceMissing("no camera".into()));
        let mut s = AwaitDevice::new("v4l2 x", &first, Duration::from_millis(500), open);
        s.next_try = Instant::now();
        assert!(s.next_frame(&mut Frame::with_capacity(0)).is_err());
    }
}

//! V4L2 camera source: USB (UVC) cameras, CSI cameras behind a V4L2 driver,
//! capture cards. mmap streaming; each buffer is copied into the recycled
//! frame, so a slow consumer never holds a driver buffer and steady-state
//! capture allocates nothing.
//!
//! Format negotiation is a pure function (`negotiate`) over what the device
//! reports, so it is tested without a camera. An unplugged or failing camera
//! is reopened with backoff, by card name when the config names one (a
//! re-plugged USB camera often comes back as another /dev/videoN).

use super::{Backoff, FrameSource, Next};
use crate::frame::Frame;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::time::Duration;

#[path = "v4l2_uapi.rs"]
mod uapi;
#[path = "v4l2_device.rs"]
pub mod device;
#[path = "v4l2_frame.rs"]
pub mod frame_copy;
#[path = "v4l2_negotiate.rs"]
mod negotiate_impl;
use device::{Device, Stream};
pub use device::video_nodes;
pub use negotiate_impl::{negotiate, FormatChoice, FormatOffer, Negotiated, SizeRange};

/// `[source] kind = "v4l2"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Config {
    /// `/dev/video0`, or the card name as `v4l2-ctl --list-devices` shows it.
    #[serde(default = "default_device")]
    pub device: String,
    /// Preferred pixel format: auto, mjpeg, yuyv, grey, rgb24.
    #[serde(default = "default_format")]
    pub format: String,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// mmap buffers the driver cycles through.
    #[serde(default = "default_buffers")]
    pub buffers: u32,
    /// A camera that delivers nothing for this long is reopened. 0 waits forever (cameras with an
    /// external hardware trigger, which may idle for minutes).
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout_ms: u64,
    /// Longest wait between reopen attempts after the camera went away.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_s: u64,
}

fn default_device() -> String {
    "/dev/video0".into()
}
fn default_format() -> String {
    "auto".into()
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> u32 {
    30
}
fn default_buffers() -> u32 {
    4
}
fn default_frame_timeout() -> u64 {
    5000
}
fn default_reconnect_max() -> u64 {
    10
}

/// A streaming camera (the stream owns the device and closes it when dropped).
struct Active {
    stream: Stream,
    path: String,
    got: Negotiated,
    /// Bytes between line starts in the driver's buffers (raw formats may pad lines).
    bytes_per_line: u32,
    fps: Option<f64>,
}

pub struct V4l2Source {
    config: V4l2Config,
    choice: FormatChoice,
    active: Option<Active>,
    /// What the last successful open negotiated, for `describe` while reconnecting.
    last: String,
}

impl V4l2Source {
    /// Open and start the camera. Config errors and a camera that is missing at start-up are errors
    /// here (the service manager restarts us); a camera lost later is reopened by `next_frame`.
    pub fn open(config: &V4l2Config) -> Result<V4l2Source> {
        let choice: FormatChoice = config.format.parse()?;
        if config.width == 0 || config.height == 0 {
            bail!("key source.width/height = {}x{}: must be positive; fix: e.g. width = 640, height = 480", config.width, config.height);
        }
        if !(1..=32).contains(&config.buffers) {
            bail!("key source.buffers = {}: must be 1..=32; fix: 4 suits most cameras", config.buffers);
        }
        let active = connect(config, choice)?;
        let last = describe_active(&active);
        log::info!("{last}");
        Ok(V4l2Source { config: config.clone(), choice, active: Some(active), last })
    }

    /// Stop streaming, unmap the buffers and close the device (a failure to stop, as with an
    /// unplugged camera, is logged by the stream and not fatal).
    fn close(&mut self) {
        self.active = None;
    }

    /// Reopen until the camera is back, sleeping with backoff between attempts.
    fn reconnect(&mut self) {
        let mut backoff = Backoff::new(Duration::from_secs(self.config.reconnect_max_s.max(1)));
        for attempt in 1u64.. {
            let delay = backoff.next_delay();
            std::thread::sleep(delay);
            match connect(&self.config, self.choice) {
                Ok(a) => {
                    self.last = describe_active(&a);
                    log::info!("v4l2 {}: camera back after {attempt} attempt(s): {}", self.config.device, self.last);
                    self.active = Some(a);
                    return;
                }
                Err(e) => log::warn!("v4l2 {}: reopen attempt {attempt} failed: {e:#}; retrying", self.config.device),
            }
        }
    }
}

fn describe_active(a: &Active) -> String {
    let fourcc = String::from_utf8_lossy(&a.got.fourcc).into_owned();
    match a.fps {
        Some(fps) => format!("v4l2 {} {} {}x{}@{:.4}", a.path, fourcc, a.got.width, a.got.height, fps),
        None => format!("v4l2 {} {} {}x{}", a.path, fourcc, a.got.width, a.got.height),
    }
}

impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        self.last.clone()
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next> {
        loop {
            let Some(a) = self.active.as_mut() else {
                self.reconnect();
                continue;
            };
            let (got, bytes_per_line) = (a.got, a.bytes_per_line);
            let dequeued = a.stream.next(|buf| {
                if buf.damaged || buf.data.is_empty() {
                    return Err(buf.sequence);
                }
                frame.format = got.format;
                frame.width = got.width;
                frame.height = got.height;
                frame_copy::copy_packed(frame, buf.data, bytes_per_line);
                frame.seq = u64::from(buf.sequence);
                frame.kernel_ts_us = buf.timestamp_us;
                Ok(())
            });
            let failure = match dequeued {
                Ok(Ok(())) => {
                    frame.stamp_now();
                    frame.set_origin(&a.path);
                    return Ok(Next::Frame);
                }
                Ok(Err(sequence)) => {
                    // The driver flagged a damaged frame (USB packet loss): skip it, keep streaming.
                    log::debug!("v4l2 {}: frame {sequence} flagged as damaged, skipped", a.path);
                    continue;
                }
                Err(e) => e,
            };
            log::warn!("v4l2 {}: capture failed ({failure}); camera unplugged or stalled, reopening", self.last);
            self.close();
        }
    }
}

/// Resolve the device, negotiate, set the format and rate, and start streaming.
fn connect(config: &V4l2Config, choice: FormatChoice) -> Result<Active> {
    let (device, path) = open_device(&config.device)?;
    let offers = query_offers(&device).with_context(|| format!("v4l2 {path}: cannot list its formats"))?;
    let want = negotiate(&offers, choice, config.width, config.height).map_err(|e| anyhow!("v4l2 {path}: key source.format: {e}"))?;
    let set = device
        .set_format(want.fourcc, want.width, want.height)
        .with_context(|| format!("v4l2 {path}: cannot set format {want}; fix: run `edgeseg probe` to see what it supports"))?;
    // Drivers may adjust the request; believe what they report.
    let got = Negotiated::from_device(set.fourcc, set.width, set.height).ok_or_else(|| {
        anyhow!("v4l2 {path}: asked for {want}, the driver switched to {}; fix: set source.format explicitly", String::from_utf8_lossy(&set.fourcc))
    })?;
    let fps = if config.fps > 0 {
        match device.set_fps(config.fps) {
            Ok(fps) => fps,
            Err(e) => {
                // Some drivers (many CSI bridges) have no frame-rate control; they run at their own rate.
                log::warn!("v4l2 {path}: cannot set {} fps ({e}); running at the driver's rate", config.fps);
                None
            }
        }
    } else {
        None
    };
    let timeout = (config.frame_timeout_ms > 0).then(|| Duration::from_millis(config.frame_timeout_ms));
    let stream = Stream::start(device, config.buffers, timeout)
        .with_context(|| format!("v4l2 {path}: cannot map {} capture buffers; fix: lower source.buffers or close other programs using the camera", config.buffers))?;
    Ok(Active { stream, path, got, bytes_per_line: set.bytes_per_line, fps })
}

/// Open by path, or find the capture node whose card name matches.
fn open_device(spec: &str) -> Result<(Device, String)> {
    if spec.starts_with('/') {
        let dev = Device::open(spec).map_err(|e| {
            let msg = format!("v4l2 {spec}: cannot open ({e}); key source.device; fix: check the camera is plugged in and you are in the video group, or run `edgeseg probe` to list cameras");
            // ENOENT, ENXIO, ENODEV: not there (yet); the start waits for it (await_device).
            match e.raw_os_error() {
                Some(2 | 6 | 19) => anyhow::Error::new(super::await_device::DeviceMissing(msg)),
                _ => anyhow!(msg),
            }
        })?;
        let caps = dev.capabilities().with_context(|| format!("v4l2 {spec}: not a V4L2 device"))?;
        if !caps.is_capture() {
            bail!("v4l2 {spec} (\"{}\") cannot capture video (a metadata or output node); key source.device; fix: run `edgeseg probe` and pick a capture device", caps.card);
        }
        return Ok((dev, spec.to_string()));
    }
    let mut seen = Vec::new();
    for path in video_nodes() {
        let Ok(dev) = Device::open(&path) else { continue };
        let Ok(caps) = dev.capabilities() else { continue };
        if caps.card == spec && caps.is_capture() {
            return Ok((dev, path));
        }
        seen.push(format!("{path} \"{}\"", caps.card));
    }
    let found = if seen.is_empty() { "no cameras".to_string() } else { seen.join(", ") };
    Err(anyhow::Error::new(super::await_device::DeviceMissing(format!(
        "key source.device: no capture device with card name \"{spec}\" (found: {found}); fix: run `edgeseg probe` and copy a card name or path"
    ))))
}

/// What the device offers, in the form `negotiate` takes.
pub fn query_offers(device: &Device) -> std::io::Result<Vec<FormatOffer>> {
    let mut offers = Vec::new();
    for desc in device.formats()? {
        // Some drivers list formats without enumerable sizes; the format is then offered with none.
        let sizes = device.frame_sizes(desc.fourcc).unwrap_or_default();
        offers.push(FormatOffer { fourcc: desc.fourcc, sizes });
    }
    Ok(offers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> V4l2Config {
        toml::from_str(extra).expect("test config parses")
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c = config("");
        assert_eq!((c.device.as_str(), c.width, c.height, c.fps, c.buffers, c.frame_timeout_ms), ("/dev/video0", 640, 480, 30, 4, 5000));
        assert!(toml::from_str::<V4l2Config>("fromat = \"yuyv\"").is_err());
    }

    #[test]
    fn a_missing_device_path_is_a_clear_error() {
        let e = format!("{:#}", V4l2Source::open(&config("device = \"/dev/video-does-not-exist\"")).err().unwrap());
        assert!(e.contains("/dev/video-does-not-exist") && e.contains("source.device") && e.contains("edgeseg probe"), "{e}");
    }

    #[test]
    fn an_unknown_card_name_says_what_was_found() {
        let e = format!("{:#}", V4l2Source::open(&config("device = \"No Such Camera 3000\"")).err().unwrap());
        assert!(e.contains("No Such Camera 3000") && e.contains("found:") && e.contains("source.device"), "{e}");
    }

    #[test]
    fn bad_settings_are_refused_before_touching_the_device() {
        let e = V4l2Source::open(&config("device = \"/dev/video-does-not-exist\"\nformat = \"h264\"")).err().unwrap().to_string();
        assert!(e.contains("source.format"), "{e}");
        let e = V4l2Source::open(&config("buffers = 0")).err().unwrap().to_string();
        assert!(e.contains("source.buffers"), "{e}");
    }
}

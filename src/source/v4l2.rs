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
use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, FourCC};

#[path = "v4l2_negotiate.rs"]
mod negotiate_impl;
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

/// A streaming camera. Field order matters: the stream unmaps its buffers before the device closes.
struct Active {
    stream: Stream<'static>,
    _device: Device,
    path: String,
    got: Negotiated,
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

    /// Stop streaming and release the buffers without risking v4l's panicking `Drop`: it panics when
    /// STREAMOFF fails with anything but ENODEV (unplugged), so in that case the stream is leaked
    /// (a few mapped buffers) rather than taking the capture thread down.
    fn close(&mut self) {
        let Some(mut a) = self.active.take() else { return };
        match a.stream.stop() {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc_enodev()) => {}
            Err(e) => {
                log::warn!("v4l2 {}: stopping the stream failed ({e}); leaking its buffers to avoid a panic in the v4l crate", a.path);
                std::mem::forget(a.stream);
            }
        }
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

fn libc_enodev() -> i32 {
    19 // ENODEV on every Linux architecture
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
            let failure = match CaptureStream::next(&mut a.stream) {
                Ok((buf, meta)) => {
                    let used = (meta.bytesused as usize).min(buf.len());
                    if meta.flags.contains(v4l::buffer::Flags::ERROR) || used == 0 {
                        // The driver flagged a damaged frame (USB packet loss): skip it, keep streaming.
                        log::debug!("v4l2 {}: frame {} flagged as damaged, skipped", a.path, meta.sequence);
                        continue;
                    }
                    frame.data.clear();
                    frame.data.extend_from_slice(&buf[..used]);
                    frame.format = a.got.format;
                    frame.width = a.got.width;
                    frame.height = a.got.height;
                    frame.seq = u64::from(meta.sequence);
                    // time_t is i32 on 32-bit ARM (a Pi running armv7), i64 elsewhere.
                    #[allow(clippy::useless_conversion)]
                    let (sec, usec) = (i64::from(meta.timestamp.sec), i64::from(meta.timestamp.usec));
                    frame.kernel_ts_us = (sec > 0 || usec > 0).then(|| (sec.max(0) as u64) * 1_000_000 + usec.max(0) as u64);
                    frame.stamp_now();
                    frame.set_origin(&a.path);
                    return Ok(Next::Frame);
                }
                Err(e) => e,
            };
            log::warn!("v4l2 {}: capture failed ({failure}); camera unplugged or stalled, reopening", self.last);
            self.close();
        }
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        self.close();
    }
}

/// Resolve the device, negotiate, set the format and rate, and start streaming.
fn connect(config: &V4l2Config, choice: FormatChoice) -> Result<Active> {
    let (device, path) = open_device(&config.device)?;
    let offers = query_offers(&device).with_context(|| format!("v4l2 {path}: cannot list its formats"))?;
    let want = negotiate(&offers, choice, config.width, config.height).map_err(|e| anyhow!("v4l2 {path}: key source.format: {e}"))?;
    let mut fmt = device.format().with_context(|| format!("v4l2 {path}: cannot read the current format"))?;
    fmt.width = want.width;
    fmt.height = want.height;
    fmt.fourcc = FourCC::new(&want.fourcc);
    let set = device.set_format(&fmt).with_context(|| format!("v4l2 {path}: cannot set format {want}; fix: run `edgeseg probe` to see what it supports"))?;
    // Drivers may adjust the request; believe what they report.
    let got = Negotiated::from_device(set.fourcc.repr, set.width, set.height)
        .ok_or_else(|| anyhow!("v4l2 {path}: asked for {want}, the driver switched to {}; fix: set source.format explicitly", set.fourcc))?;
    let fps = if config.fps > 0 {
        match device.set_params(&Parameters::with_fps(config.fps)) {
            Ok(p) if p.interval.numerator > 0 => Some(f64::from(p.interval.denominator) / f64::from(p.interval.numerator)),
            Ok(_) => None,
            Err(e) => {
                // Some drivers (many CSI bridges) have no frame-rate control; they run at their own rate.
                log::warn!("v4l2 {path}: cannot set {} fps ({e}); running at the driver's rate", config.fps);
                None
            }
        }
    } else {
        None
    };
    let mut stream = Stream::with_buffers(&device, Type::VideoCapture, config.buffers)
        .with_context(|| format!("v4l2 {path}: cannot map {} capture buffers; fix: lower source.buffers or close other programs using the camera", config.buffers))?;
    if config.frame_timeout_ms > 0 {
        stream.set_timeout(Duration::from_millis(config.frame_timeout_ms.min(i32::MAX as u64)));
    }
    Ok(Active { stream, _device: device, path, got, fps })
}

/// Open by path, or find the capture node whose card name matches.
fn open_device(spec: &str) -> Result<(Device, String)> {
    if spec.starts_with('/') {
        let dev = Device::with_path(spec).map_err(|e| {
            let msg = format!("v4l2 {spec}: cannot open ({e}); key source.device; fix: check the camera is plugged in and you are in the video group, or run `edgeseg probe` to list cameras");
            // ENOENT, ENXIO, ENODEV: not there (yet); the start waits for it (await_device).
            match e.raw_os_error() {
                Some(2 | 6 | 19) => anyhow::Error::new(super::await_device::DeviceMissing(msg)),
                _ => anyhow!(msg),
            }
        })?;
        let caps = dev.query_caps().with_context(|| format!("v4l2 {spec}: not a V4L2 device"))?;
        if !is_capture(caps.capabilities) {
            bail!("v4l2 {spec} (\"{}\") cannot capture video (a metadata or output node); key source.device; fix: run `edgeseg probe` and pick a capture device", caps.card);
        }
        return Ok((dev, spec.to_string()));
    }
    let mut seen = Vec::new();
    for path in video_nodes() {
        let Ok(dev) = Device::with_path(&path) else { continue };
        let Ok(caps) = dev.query_caps() else { continue };
        if caps.card == spec && is_capture(caps.capabilities) {
            return Ok((dev, path));
        }
        seen.push(format!("{path} \"{}\"", caps.card));
    }
    let found = if seen.is_empty() { "no cameras".to_string() } else { seen.join(", ") };
    Err(anyhow::Error::new(super::await_device::DeviceMissing(format!(
        "key source.device: no capture device with card name \"{spec}\" (found: {found}); fix: run `edgeseg probe` and copy a card name or path"
    ))))
}

pub(crate) fn is_capture(flags: Flags) -> bool {
    flags.contains(Flags::VIDEO_CAPTURE) && flags.contains(Flags::STREAMING)
}

/// `/dev/video*` in numeric order.
pub fn video_nodes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/dev") else { return Vec::new() };
    let mut nodes: Vec<(u32, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, format!("/dev/{name}")))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// What the device offers, in the form `negotiate` takes.
pub fn query_offers(device: &Device) -> std::io::Result<Vec<FormatOffer>> {
    let mut offers = Vec::new();
    for desc in device.enum_formats()? {
        // Some drivers list formats without enumerable sizes; the format is then offered with none.
        let sizes = device.enum_framesizes(desc.fourcc).unwrap_or_default().into_iter().map(|fs| SizeRange::from(fs.size)).collect();
        offers.push(FormatOffer { fourcc: desc.fourcc.repr, sizes });
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

    #[test]
    fn video_nodes_are_device_paths() {
        assert!(video_nodes().iter().all(|p| p.starts_with("/dev/video")));
    }
}

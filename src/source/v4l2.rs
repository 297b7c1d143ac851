//! V4L2 camera source (filled in by the hardware work; see issue 5).

use super::{FrameSource, Next};
use crate::frame::Frame;
use anyhow::{bail, Result};
use serde::Deserialize;

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

pub struct V4l2Source {
    config: V4l2Config,
}

impl V4l2Source {
    pub fn open(config: &V4l2Config) -> Result<V4l2Source> {
        bail!("v4l2 source {}: not built yet", config.device)
    }
}

impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        format!("v4l2 {}", self.config.device)
    }
    fn next_frame(&mut self, _frame: &mut Frame) -> Result<Next> {
        Ok(Next::End)
    }
}

//! GPIO sink: reject pulse on fail, ready/heartbeat line.

use super::{FramePixels, Sink};
use crate::report::FrameReport;
use anyhow::{bail, Result};
use serde::Deserialize;

/// `[sinks.gpio]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// Chip: path (`/dev/gpiochip0`), name (`gpiochip0`) or label (`pinctrl-bcm2711`); `sim` for the simulator.
    pub chip: String,
}

pub struct GpioSink;

impl GpioSink {
    pub fn open(config: &GpioConfig) -> Result<GpioSink> {
        bail!("gpio sink {}: not built yet", config.chip)
    }
}

impl Sink for GpioSink {
    fn name(&self) -> &str {
        "gpio"
    }
    fn emit(&mut self, _report: &FrameReport, _pixels: &FramePixels<'_>) -> Result<()> {
        Ok(())
    }
}

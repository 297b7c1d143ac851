//! MQTT sink (rumqttc): detections, retained status with last will, periodic stats.

use super::{FramePixels, Sink};
use crate::report::FrameReport;
use anyhow::{bail, Result};
use serde::Deserialize;

/// `[sinks.mqtt]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:1883` or `mqtts://host:8883`.
    pub url: String,
}

pub struct MqttSink;

impl MqttSink {
    pub fn connect(config: &MqttConfig, _device: &str) -> Result<MqttSink> {
        bail!("mqtt sink {}: not built yet", config.url)
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        "mqtt"
    }
    fn emit(&mut self, _report: &FrameReport, _pixels: &FramePixels<'_>) -> Result<()> {
        Ok(())
    }
}

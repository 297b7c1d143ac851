//! Sinks: where verdicts go. One trait, several implementations chosen by the
//! `[sinks.*]` tables of the config. Sinks run on the output thread, so a slow
//! sink never stalls capture or inference; each must bound its own memory.

pub mod archive;
pub mod gpio;
pub mod mqtt;
pub mod stdout;

use crate::report::{FrameReport, Stats};
use anyhow::Result;
use image::RgbImage;

/// The pixels behind a report, for sinks that store images.
pub struct FramePixels<'a> {
    /// The frame as decoded, RGB.
    pub image: &'a RgbImage,
    /// The frame with the mask overlay drawn.
    pub overlay: Option<&'a RgbImage>,
}

/// `Any`: the daemon takes a sink a stopped pipeline hands back and, on a
/// reload, keeps it or passes its state on (`commands::run`).
pub trait Sink: Send + std::any::Any {
    /// Short name for logs ("mqtt", "gpio", "archive", "stdout").
    fn name(&self) -> &str;
    /// Called once per judged frame, in frame order.
    fn emit(&mut self, report: &FrameReport, pixels: &FramePixels<'_>) -> Result<()>;
    /// Called every stats interval with the running totals.
    fn stats(&mut self, _stats: &Stats) -> Result<()> {
        Ok(())
    }
    /// Messages this sink had to discard so far (bounded queues overflowing).
    fn overflow(&self) -> u64 {
        0
    }
    /// The source's health changed (and once per pipeline): sinks that show a status say it.
    fn health(&mut self, _health: crate::pipeline::monitor::Health) -> Result<()> {
        Ok(())
    }
    /// Flush and say goodbye (MQTT publishes `offline`); called on SIGTERM and at the end.
    fn shutdown(&mut self) -> Result<()> {
        Ok(())
    }
}

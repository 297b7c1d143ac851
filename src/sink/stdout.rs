//! JSON lines on stdout: one frame report per line (for `jq`, log shippers, pipes).

use super::{FramePixels, Sink};
use crate::report::{FrameReport, Stats};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::io::Write;

/// `[sinks.stdout]`.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Print only failing frames.
    #[serde(default)]
    pub only_fail: bool,
    /// Also print the stats documents (`{"stats": {...}}`).
    #[serde(default)]
    pub stats: bool,
}

pub struct StdoutSink<W: Write + Send> {
    config: StdoutConfig,
    out: W,
    /// Reused line buffer: serialising allocates nothing once it is big enough.
    line: Vec<u8>,
}

impl StdoutSink<std::io::Stdout> {
    pub fn new(config: &StdoutConfig) -> Self {
        StdoutSink::with_writer(config, std::io::stdout())
    }
}

impl<W: Write + Send> StdoutSink<W> {
    pub fn with_writer(config: &StdoutConfig, out: W) -> Self {
        StdoutSink { config: config.clone(), out, line: Vec::with_capacity(64 << 10) }
    }

    fn write_line(&mut self) -> Result<()> {
        self.line.push(b'\n');
        self.out.write_all(&self.line).and_then(|_| self.out.flush()).context("writing to stdout")
    }
}

impl<W: Write + Send + 'static> Sink for StdoutSink<W> {
    fn name(&self) -> &str {
        "stdout"
    }

    fn emit(&mut self, report: &FrameReport, _pixels: &FramePixels<'_>) -> Result<()> {
        if self.config.only_fail && report.verdict == crate::report::Verdict::Pass {
            return Ok(());
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, report)?;
        self.write_line()
    }

    fn stats(&mut self, stats: &Stats) -> Result<()> {
        if !self.config.stats {
            return Ok(());
        }
        self.line.clear();
        self.line.extend_from_slice(b"{\"stats\":");
        serde_json::to_writer(&mut self.line, stats)?;
        self.line.push(b'}');
        self.write_line()
    }
}

//! Opening what a config names (source, sinks, trigger) and putting a
//! pipeline's pieces together: at start, where any failure ends the start,
//! and for reloads (`reload.rs`), which open each kind on its own.

use super::sinks::SinkSet;
use super::Loaded;
use crate::config::{Config, Mode};
use crate::dashboard::{DeviceDashboard, PreparedView};
use crate::decide::Decider;
use crate::pipeline::capture::SourceSlot;
use crate::pipeline::monitor::Monitor;
use crate::pipeline::process::FrameProcessor;
use crate::pipeline::{Leftovers, Options, Parts, Trigger};
use crate::sink::archive::ArchiveSink;
use crate::sink::gpio::{GpioSink, TriggerInput};
use crate::sink::mqtt::MqttSink;
use crate::source::{FrameSource, SourceConfig};
use anyhow::{Context, Result};
use log::info;
use std::time::Duration;

/// One pipeline's pieces: before it runs, and what it hands back when it stops.
pub struct Pieces {
    pub source: SourceSlot,
    pub processor: FrameProcessor,
    pub sinks: SinkSet,
    pub trigger: Option<Box<dyn Trigger>>,
}

impl Pieces {
    pub fn into_parts(self) -> Parts {
        Parts { source: self.source.into_source(), processor: self.processor, sinks: self.sinks.into_list(), trigger: self.trigger }
    }

    pub fn from_leftovers(l: Leftovers) -> Pieces {
        Pieces { source: l.source, processor: l.processor, sinks: SinkSet::from_list(l.sinks), trigger: l.trigger }
    }
}

/// `file: ` for messages, empty for the embedded default.
pub fn file_prefix(config: &Config) -> String {
    config.file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default()
}

pub fn open_source(config: &Config) -> Result<Box<dyn FrameSource>> {
    config.source.open(&config.base_dir).with_context(|| format!("{}opening key [source]", file_prefix(config)))
}

pub fn open_archive(config: &Config, classes: &[String]) -> Result<Option<ArchiveSink>> {
    let Some(c) = &config.sinks.archive else { return Ok(None) };
    ArchiveSink::open(c, &config.base_dir, classes).map(Some).with_context(|| format!("{}key [sinks.archive]", file_prefix(config)))
}

/// The MQTT sink; `quiet` connects without publishing until `MqttSink::activate`.
pub fn open_mqtt(config: &Config, model: &str, quiet: bool) -> Result<Option<MqttSink>> {
    let Some(c) = &config.sinks.mqtt else { return Ok(None) };
    let c = c.resolved(&config.base_dir);
    let device = &config.device.name;
    let sink = if quiet { MqttSink::connect_quiet(&c, device, Some(model)) } else { MqttSink::connect_with_model(&c, device, Some(model)) };
    sink.map(Some).with_context(|| format!("{}key [sinks.mqtt]", file_prefix(config)))
}

/// The GPIO sink and the trigger input, when the config has `[sinks.gpio]`.
pub type Gpio = (GpioSink, Option<Box<dyn Trigger>>);

/// The GPIO sink and trigger input. The trigger line is requested before the
/// sink sets the ready line: from its request on, the kernel queues every
/// edge, so a PLC that fires as soon as it sees "ready" cannot lose its first
/// trigger in between.
pub fn open_gpio(config: &Config) -> Result<Option<Gpio>> {
    let Some(c) = &config.sinks.gpio else { return Ok(None) };
    let file = file_prefix(config);
    let trigger = TriggerInput::open(c).with_context(|| format!("{file}key sinks.gpio.trigger_line"))?;
    let sink = GpioSink::open(c).with_context(|| format!("{file}key [sinks.gpio]"))?;
    Ok(Some((sink, trigger.map(|t| Box::new(t) as Box<dyn Trigger>))))
}

pub fn processor(loaded: Loaded) -> FrameProcessor {
    let Loaded { config, model } = loaded;
    let decider = Decider::new(config.decide.clone(), &model.meta.classes);
    info!(
        "device {}: model {} ({}x{}, {} thread(s))",
        config.device.name,
        model.path.display(),
        model.meta.width,
        model.meta.height,
        model.threads
    );
    FrameProcessor::new(Box::new(model), decider, &config.device.name)
}

/// Open everything `loaded` names; the first failure ends the start.
pub fn build(loaded: Loaded, dashboard: Option<&DeviceDashboard>) -> Result<Pieces> {
    let config = &loaded.config;
    let classes = loaded.model.meta.classes.clone();
    let mut view: Option<PreparedView> = dashboard.map(|d| d.prepare(&loaded, false)).transpose()?;
    let source = open_source(config)?;
    let model_name = loaded.model.meta.name.clone();
    let mut sinks = SinkSet { stdout: config.sinks.stdout.as_ref().map(crate::sink::stdout::StdoutSink::new), ..SinkSet::default() };
    sinks.archive = open_archive(config, &classes)?;
    sinks.mqtt = open_mqtt(config, &model_name, false)?;
    let mut trigger = None;
    if let Some((g, t)) = open_gpio(config)? {
        sinks.gpio = Some(g);
        trigger = t;
    }
    if let (Some(d), Some(v)) = (dashboard, view.as_mut()) {
        sinks.dashboard = Some(d.attach(v));
    }
    Ok(Pieces { source: SourceSlot::Ready(source), processor: processor(loaded), sinks, trigger })
}

pub fn options(config: &Config) -> Options {
    Options {
        mode: config.pipeline.mode,
        max_frames: config.pipeline.max_frames,
        stats_interval: crate::config::bounds::duration_s(config.pipeline.stats_interval_s),
        overlay: config.pipeline.overlay,
    }
}

/// Tell the monitor what counts as a stall for this config: `pipeline.stall_timeout_s`,
/// stretched for sources that are slow by design, and whether the source may idle.
pub fn watch(config: &Config, monitor: &Monitor) {
    let base = config.pipeline.stall_timeout_s;
    let (slowest_s, may_idle) = match &config.source {
        SourceConfig::Sample(s) if s.fps > 0.0 => (3.0 / s.fps, false),
        SourceConfig::Dir(d) if d.fps > 0.0 => (3.0 / d.fps, false),
        // A silent camera is reopened after frame_timeout_ms; give it one reopen.
        SourceConfig::V4l2(v) if v.frame_timeout_ms > 0 => (2.0 * v.frame_timeout_ms as f64 / 1e3 + v.reconnect_max_s as f64, false),
        // frame_timeout_ms = 0: a camera on an external hardware trigger, idle for as long as the line.
        SourceConfig::V4l2(_) => (0.0, true),
        _ => (0.0, false),
    };
    monitor.set_stall_after(crate::config::bounds::duration_s(base.max(slowest_s)));
    monitor.set_source_may_idle(may_idle && config.pipeline.mode == Mode::Continuous);
}

/// How long a reload waits for the previous capture thread to let go of a
/// camera it must open again (a read returns within a frame, or the camera's frame_timeout_ms).
pub fn capture_handover_wait(config: &Config) -> Duration {
    match &config.source {
        SourceConfig::V4l2(v) if v.frame_timeout_ms > 0 => Duration::from_millis(v.frame_timeout_ms.min(10_000) + 1_000),
        _ => Duration::from_secs(5),
    }
}

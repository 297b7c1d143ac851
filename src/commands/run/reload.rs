//! SIGHUP: switching the running pipeline to a reloaded config without ever
//! leaving the line without one. A bad reload is logged and the old pipeline
//! keeps judging (what `edgeseg run --help` promises).
//!
//! 1. `prepare`, while the old pipeline runs (on the signal thread): the new
//!    model is loaded and every piece that can coexist with the old one is
//!    opened: a replay folder, an archive in another folder, an MQTT
//!    connection under another client id or broker (quietly, publishing
//!    nothing yet). Any failure here refuses the reload; the old pipeline is
//!    untouched.
//! 2. The old pipeline stops and hands its pieces back (sinks not shut down).
//! 3. `switch`: pieces whose config did not change are kept as they are (a
//!    camera keeps streaming, an MQTT connection keeps its queue, GPIO lines
//!    stay requested); pieces that can only be held once (the same camera,
//!    GPIO lines, the same MQTT client id, the same archive folder) are handed
//!    over: the old one is released, the new one opened. If one fails, the
//!    new pieces are closed, the released ones reopened from the old config,
//!    and the old pipeline resumes. Only a failure to reopen those ends the
//!    daemon (systemd restarts it).

use super::build::{self, Gpio, Pieces};
use super::sinks::SinkSet;
use super::Loaded;
use crate::config::Config;
use crate::dashboard::{DeviceDashboard, PreparedView};
use crate::pipeline::capture::SourceSlot;
use crate::pipeline::process::FrameProcessor;
use crate::sink::archive::ArchiveSink;
use crate::sink::mqtt::{Backlog, MqttSink};
use crate::sink::stdout::StdoutSink;
use crate::source::{FrameSource, SourceConfig};
use anyhow::{anyhow, Result};
use log::info;
use std::time::Duration;

/// How long an MQTT sink that is handed over may take to deliver its queue
/// itself (when connected) before the rest moves to the next sink.
const MQTT_HANDOVER_FLUSH: Duration = Duration::from_secs(1);

/// What to do with one kind of piece.
pub enum Plan<T> {
    /// The new config has none.
    Off,
    /// Unchanged: keep the running one.
    Keep,
    /// Opened beside the running one.
    Ready(T),
    /// Only one can be held: open once the old one is released.
    AfterStop,
}

pub struct Prepared {
    pub config: Config,
    model_name: String,
    processor: FrameProcessor,
    view: Option<PreparedView>,
    source: Plan<Box<dyn FrameSource>>,
    stdout: Option<StdoutSink<std::io::Stdout>>,
    archive: Plan<ArchiveSink>,
    mqtt: Plan<MqttSink>,
    gpio: Plan<Gpio>,
}

/// Step 1: load-time work and everything that can be opened beside `old`.
pub fn prepare(old: &Config, loaded: Loaded, dashboard: Option<&DeviceDashboard>) -> Result<Prepared> {
    let new = loaded.config.clone();
    let model_name = loaded.model.meta.name.clone();
    let classes = loaded.model.meta.classes.clone();
    let view = dashboard.map(|d| d.prepare(&loaded, true)).transpose()?;
    let source = if same_source(old, &new) {
        Plan::Keep
    } else if same_camera(old, &new) {
        Plan::AfterStop
    } else {
        Plan::Ready(build::open_source(&new)?)
    };
    let archive = match (&old.sinks.archive, &new.sinks.archive) {
        (_, None) => Plan::Off,
        (Some(o), Some(n)) if resolve(old, &o.dir) == resolve(&new, &n.dir) => {
            if o == n && old.base_dir == new.base_dir {
                Plan::Keep
            } else {
                Plan::AfterStop
            }
        }
        _ => Plan::Ready(build::open_archive(&new, &classes)?.ok_or_else(|| anyhow!("archive vanished"))?),
    };
    let mqtt = match (&old.sinks.mqtt, &new.sinks.mqtt) {
        (_, None) => Plan::Off,
        (Some(o), Some(n)) => {
            let (o, n) = (o.resolved(&old.base_dir), n.resolved(&new.base_dir));
            if o == n && old.device.name == new.device.name {
                Plan::Keep
            } else if o.broker().ok() == n.broker().ok() && o.client_id_for(&old.device.name) == n.client_id_for(&new.device.name) {
                // Two connections under one client id would take the session from each other.
                Plan::AfterStop
            } else {
                Plan::Ready(build::open_mqtt(&new, &model_name, true)?.ok_or_else(|| anyhow!("mqtt vanished"))?)
            }
        }
        (None, Some(_)) => Plan::Ready(build::open_mqtt(&new, &model_name, true)?.ok_or_else(|| anyhow!("mqtt vanished"))?),
    };
    let gpio = match (&old.sinks.gpio, &new.sinks.gpio) {
        (_, None) => Plan::Off,
        (Some(o), Some(n)) if o == n => Plan::Keep,
        // Lines of one chip can be held once, and a name and an offset may be the same line.
        (Some(_), Some(_)) => Plan::AfterStop,
        (None, Some(_)) => Plan::Ready(build::open_gpio(&new)?.ok_or_else(|| anyhow!("gpio vanished"))?),
    };
    let stdout = new.sinks.stdout.as_ref().map(StdoutSink::new);
    let processor = build::processor(loaded);
    Ok(Prepared { config: new, model_name, processor, view, source, stdout, archive, mqtt, gpio })
}

fn resolve(c: &Config, p: &std::path::Path) -> std::path::PathBuf {
    let p = c.resolve(p);
    p.canonicalize().unwrap_or(p)
}

/// Unchanged source config; stdin is kept whatever its settings (its unread bytes are in the old reader).
fn same_source(old: &Config, new: &Config) -> bool {
    match (&old.source, &new.source) {
        (SourceConfig::Stdin(_), SourceConfig::Stdin(_)) => true,
        // The configs are plain values; their Debug text is equal exactly when they are.
        (o, n) => format!("{o:?}") == format!("{n:?}") && old.base_dir == new.base_dir,
    }
}

/// Two camera configs that may name the same device (a card name may be any node).
fn same_camera(old: &Config, new: &Config) -> bool {
    match (&old.source, &new.source) {
        (SourceConfig::V4l2(o), SourceConfig::V4l2(n)) => {
            let canon = |d: &str| std::path::Path::new(d).canonicalize().ok();
            !(o.device.starts_with('/') && n.device.starts_with('/') && o.device != n.device && canon(&o.device) != canon(&n.device))
        }
        _ => false,
    }
}

/// How step 3 ended.
pub enum Outcome {
    /// The new pipeline's pieces.
    Switched(Box<Pieces>),
    /// The reload failed with the error; the old pieces, whole again.
    Kept(Box<Pieces>, anyhow::Error),
    /// A released piece could not be reopened: the daemon cannot go on.
    Fatal(anyhow::Error),
}

/// What step 3 did so far, to undo on failure.
#[derive(Default)]
struct Done {
    gpio_released: bool,
    new_gpio: Option<Gpio>,
    source_released: bool,
    new_source: Option<Box<dyn FrameSource>>,
    /// The old MQTT sink was handed over: its queue, or the new sink that now holds it.
    mqtt_backlog: Option<Backlog>,
    new_mqtt: Option<MqttSink>,
}

/// Step 3: the old pipeline stopped and handed back `old`.
pub fn switch(p: Prepared, mut old: Pieces, old_config: &Config, dashboard: Option<&DeviceDashboard>) -> Outcome {
    let mut done = Done::default();
    let new = &p.config;
    if let Plan::AfterStop = p.gpio {
        // Dropping finishes the reject pulses already due, then releases the lines.
        drop(old.sinks.gpio.take());
        drop(old.trigger.take());
        done.gpio_released = true;
        match build::open_gpio(new) {
            Ok(g) => done.new_gpio = g,
            Err(e) => return restore(old, old_config, done, e),
        }
    }
    if let Plan::AfterStop = p.source {
        let slot = std::mem::replace(&mut old.source, SourceSlot::Ready(Box::new(Released)));
        old.source = slot.settle(build::capture_handover_wait(old_config));
        if !old.source.is_ready() {
            return restore(old, old_config, done, anyhow!("the camera is still held by the previous capture thread (blocked in a read); fix: try the reload again"));
        }
        old.source = SourceSlot::Ready(Box::new(Released));
        done.source_released = true;
        match build::open_source(new) {
            Ok(s) => done.new_source = Some(s),
            Err(e) => return restore(old, old_config, done, e),
        }
    }
    if let Plan::AfterStop = p.mqtt {
        if let Some(sink) = old.sinks.mqtt.take() {
            let backlog = sink.hand_over(false, MQTT_HANDOVER_FLUSH);
            let c = new.sinks.mqtt.as_ref().map(|c| c.resolved(&new.base_dir));
            match c.map(|c| MqttSink::connect_with_backlog(&c, &new.device.name, Some(&p.model_name), backlog)) {
                Some(Ok(s)) => done.new_mqtt = Some(s),
                Some(Err((e, backlog))) => {
                    done.mqtt_backlog = Some(backlog);
                    return restore(old, old_config, done, e.context(format!("{}key [sinks.mqtt]", build::file_prefix(new))));
                }
                None => {}
            }
        }
    }
    let mut archive = None;
    if let Plan::AfterStop = p.archive {
        // Opened once the old sink stopped writing, so its scan sees every file.
        match build::open_archive(new, &p.processor.meta().classes) {
            Ok(a) => archive = a,
            Err(e) => return restore(old, old_config, done, e),
        }
    }
    Outcome::Switched(Box::new(commit(p, old, old_config, done, archive, dashboard)))
}

/// Everything opened: assemble the new pieces and release what the old ones do not pass on.
fn commit(p: Prepared, mut old: Pieces, old_config: &Config, mut done: Done, archive: Option<ArchiveSink>, dashboard: Option<&DeviceDashboard>) -> Pieces {
    let mut sinks = SinkSet { stdout: p.stdout, ..SinkSet::default() };
    let mut trigger = None;
    match p.gpio {
        Plan::Keep => (sinks.gpio, trigger) = (old.sinks.gpio.take(), old.trigger.take()),
        Plan::Ready((g, t)) => (sinks.gpio, trigger) = (Some(g), t),
        Plan::AfterStop => {
            if let Some((g, t)) = done.new_gpio.take() {
                (sinks.gpio, trigger) = (Some(g), t);
            }
        }
        Plan::Off => {}
    }
    sinks.archive = match p.archive {
        Plan::Keep => old.sinks.archive.take(),
        Plan::Ready(a) => Some(a),
        Plan::AfterStop => archive,
        Plan::Off => None,
    };
    sinks.mqtt = match p.mqtt {
        Plan::Keep => old.sinks.mqtt.take().map(|mut s| {
            s.set_model(&p.model_name);
            s
        }),
        Plan::Ready(mut s) => {
            let backlog = match old.sinks.mqtt.take() {
                Some(o) => {
                    // The old status topic says offline unless the new sink publishes the same one on the same broker.
                    let (oc, nc) = (old_config.sinks.mqtt.as_ref(), p.config.sinks.mqtt.as_ref());
                    let same_status = old_config.device.name == p.config.device.name
                        && oc.zip(nc).is_some_and(|(o, n)| o.topic_prefix == n.topic_prefix && o.broker().ok() == n.broker().ok());
                    o.hand_over(!same_status, MQTT_HANDOVER_FLUSH)
                }
                None => Backlog::default(),
            };
            if !backlog.is_empty() {
                info!("mqtt: {} message(s) the previous sink could not deliver go first", backlog.len());
            }
            s.activate(backlog);
            Some(s)
        }
        Plan::AfterStop => done.new_mqtt.take(),
        Plan::Off => None,
    };
    let source = match p.source {
        Plan::Keep => std::mem::replace(&mut old.source, SourceSlot::Ready(Box::new(Released))),
        Plan::Ready(s) => SourceSlot::Ready(s),
        Plan::AfterStop => SourceSlot::Ready(done.new_source.take().unwrap_or_else(|| Box::new(Released))),
        Plan::Off => SourceSlot::Ready(Box::new(Released)),
    };
    if let (Some(d), Some(mut v)) = (dashboard, p.view) {
        sinks.dashboard = Some(d.attach(&mut v));
    }
    // What the new pipeline does not use says goodbye (MQTT offline, GPIO lines released).
    old.sinks.dashboard = None;
    old.sinks.shutdown();
    Pieces { source, processor: p.processor, sinks, trigger }
}

/// A step failed: close what was opened for the new config, reopen what was
/// released from the old one, and hand back the old pieces.
fn restore(mut old: Pieces, old_config: &Config, mut done: Done, e: anyhow::Error) -> Outcome {
    let fatal = |what: &str, e2: anyhow::Error| Outcome::Fatal(e2.context(format!("reload failed ({e:#}) and the previous {what} could not be reopened")));
    if let Some(s) = done.new_mqtt.take() {
        done.mqtt_backlog = Some(s.hand_over(false, Duration::ZERO));
    }
    if let Some(backlog) = done.mqtt_backlog.take() {
        let c = old_config.sinks.mqtt.as_ref().map(|c| c.resolved(&old_config.base_dir));
        let model = old.processor.meta().name.clone();
        if let Some(c) = c {
            match MqttSink::connect_with_backlog(&c, &old_config.device.name, Some(&model), backlog) {
                Ok(s) => old.sinks.mqtt = Some(s),
                Err((e2, _)) => return fatal("MQTT connection", e2),
            }
        }
    }
    drop(done.new_source.take());
    if done.source_released {
        match build::open_source(old_config) {
            Ok(s) => old.source = SourceSlot::Ready(s),
            Err(e2) => return fatal("source", e2),
        }
    }
    drop(done.new_gpio.take());
    if done.gpio_released {
        match build::open_gpio(old_config) {
            Ok(Some((g, t))) => (old.sinks.gpio, old.trigger) = (Some(g), t),
            Ok(None) => {}
            Err(e2) => return fatal("GPIO lines", e2),
        }
    }
    Outcome::Kept(Box::new(old), e)
}

/// The place of a source that was handed on or closed (never run).
struct Released;

impl FrameSource for Released {
    fn describe(&self) -> String {
        "released source".into()
    }
    fn next_frame(&mut self, _frame: &mut crate::frame::Frame) -> Result<crate::source::Next> {
        Ok(crate::source::Next::End)
    }
}

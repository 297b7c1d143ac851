//! The sinks of one pipeline by kind. The pipeline takes them as a list and
//! hands the list back when it stops; a reload sorts them out again to keep,
//! replace or hand over each one (`reload.rs`).

use crate::dashboard::DashboardSink;
use crate::sink::archive::ArchiveSink;
use crate::sink::gpio::GpioSink;
use crate::sink::mqtt::MqttSink;
use crate::sink::stdout::StdoutSink;
use crate::sink::Sink;
use std::any::Any;

#[derive(Default)]
pub struct SinkSet {
    pub stdout: Option<StdoutSink<std::io::Stdout>>,
    pub archive: Option<ArchiveSink>,
    pub mqtt: Option<MqttSink>,
    pub gpio: Option<GpioSink>,
    pub dashboard: Option<DashboardSink>,
}

impl SinkSet {
    /// In the order they see each frame (the order of edgeseg 0.1).
    pub fn into_list(self) -> Vec<Box<dyn Sink>> {
        let mut v: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(s) = self.stdout {
            v.push(Box::new(s));
        }
        if let Some(s) = self.archive {
            v.push(Box::new(s));
        }
        if let Some(s) = self.mqtt {
            v.push(Box::new(s));
        }
        if let Some(s) = self.gpio {
            v.push(Box::new(s));
        }
        if let Some(s) = self.dashboard {
            v.push(Box::new(s));
        }
        v
    }

    /// Sort a stopped pipeline's list back into kinds.
    pub fn from_list(list: Vec<Box<dyn Sink>>) -> SinkSet {
        let mut set = SinkSet::default();
        for sink in list {
            let any: Box<dyn Any> = sink;
            let any = match any.downcast::<GpioSink>() {
                Ok(s) => {
                    set.gpio = Some(*s);
                    continue;
                }
                Err(a) => a,
            };
            let any = match any.downcast::<StdoutSink<std::io::Stdout>>() {
                Ok(s) => {
                    set.stdout = Some(*s);
                    continue;
                }
                Err(a) => a,
            };
            let any = match any.downcast::<ArchiveSink>() {
                Ok(s) => {
                    set.archive = Some(*s);
                    continue;
                }
                Err(a) => a,
            };
            let any = match any.downcast::<MqttSink>() {
                Ok(s) => {
                    set.mqtt = Some(*s);
                    continue;
                }
                Err(a) => a,
            };
            if let Ok(s) = any.downcast::<DashboardSink>() {
                set.dashboard = Some(*s);
            }
            // The daemon builds every sink itself, so nothing else is in its lists.
        }
        set
    }

    /// Flush and say goodbye: SIGTERM, or the end of the source.
    pub fn shutdown(self) {
        crate::pipeline::output::shutdown(&mut self.into_list());
    }
}

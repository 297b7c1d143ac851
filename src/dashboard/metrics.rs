//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4).
//! Every series carries a `device` label, so the device view and the fleet
//! view expose the same names.

use crate::report::Stats;
use std::fmt::Write;

/// One device's figures.
pub struct Row<'a> {
    pub device: &'a str,
    pub up: bool,
    pub stats: &'a Stats,
}

/// Escape a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(rows: &[Row<'_>]) -> String {
    let mut s = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Row<'_>) -> f64| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in rows {
            let _ = writeln!(s, "{name}{{device=\"{}\"}} {}", label(r.device), fmt(value(r)));
        }
    };
    family("edgeseg_up", "gauge", "1 while the device is online (fleet: retained MQTT status).", &|r| r.up as u8 as f64);
    family("edgeseg_frames_total", "counter", "Frames judged.", &|r| r.stats.frames as f64);
    family("edgeseg_pass_total", "counter", "Frames judged pass.", &|r| r.stats.pass as f64);
    family("edgeseg_fail_total", "counter", "Frames judged fail.", &|r| r.stats.fail as f64);
    family("edgeseg_dropped_total", "counter", "Frames replaced while inference was busy (newest wins).", &|r| r.stats.dropped as f64);
    family("edgeseg_corrupt_total", "counter", "Frames that could not be decoded.", &|r| r.stats.corrupt as f64);
    family("edgeseg_sink_overflow_total", "counter", "Messages sinks had to discard.", &|r| r.stats.sink_overflow as f64);
    family("edgeseg_fps", "gauge", "Frames judged per second, recent.", &|r| r.stats.fps);
    family("edgeseg_uptime_seconds", "gauge", "Seconds since start.", &|r| r.stats.uptime_s);
    let _ = writeln!(s, "# HELP edgeseg_defects_total Defect findings per class.\n# TYPE edgeseg_defects_total counter");
    for r in rows {
        for (class, n) in &r.stats.defects {
            let _ = writeln!(s, "edgeseg_defects_total{{device=\"{}\",class=\"{}\"}} {n}", label(r.device), label(class));
        }
    }
    let _ = writeln!(s, "# HELP edgeseg_stage_latency_ms Median latency per pipeline stage, recent frames.\n# TYPE edgeseg_stage_latency_ms gauge");
    for r in rows {
        let l = &r.stats.latency_median;
        for (stage, v) in [
            ("capture", l.capture_ms),
            ("queue", l.queue_ms),
            ("preprocess", l.preprocess_ms),
            ("infer", l.infer_ms),
            ("decode", l.decode_ms),
            ("emit", l.emit_ms),
        ] {
            let _ = writeln!(s, "edgeseg_stage_latency_ms{{device=\"{}\",stage=\"{stage}\"}} {}", label(r.device), fmt(v));
        }
    }
    s
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series() {
        let mut stats = Stats { frames: 10, pass: 7, fail: 3, fps: 9.5, ..Stats::default() };
        stats.defects.insert("scratch".into(), 4);
        stats.latency_median.infer_ms = 12.5;
        let text = render(&[Row { device: "line\"1", up: true, stats: &stats }]);
        assert!(text.contains("edgeseg_frames_total{device=\"line\\\"1\"} 10"), "{text}");
        assert!(text.contains("edgeseg_defects_total{device=\"line\\\"1\",class=\"scratch\"} 4"));
        assert!(text.contains("edgeseg_stage_latency_ms{device=\"line\\\"1\",stage=\"infer\"} 12.5"));
        assert!(text.contains("edgeseg_up{device=\"line\\\"1\"} 1"));
        assert!(text.contains("# TYPE edgeseg_fail_total counter"));
    }
}

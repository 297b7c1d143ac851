//! Bounds of every duration and rate in a board config, checked before anything
//! runs (`edgeseg run --check` included): a value that passes converts to a
//! `Duration`, and to an `Instant` deadline, without overflow or panic.
//! The keys' meanings are in `boards/README.md`; the errors name the key and
//! the fix (`Config::load` adds the file).

use super::Config;
use crate::source::SourceConfig;
use anyhow::{bail, Result};
use std::ops::RangeInclusive;
use std::time::Duration;

/// `pipeline.stats_interval_s`: from ten a second to once a day.
pub const STATS_INTERVAL_S: RangeInclusive<f64> = 0.1..=86_400.0;
/// `pipeline.stall_timeout_s`: from a second to a day.
pub const STALL_TIMEOUT_S: RangeInclusive<f64> = 1.0..=86_400.0;
/// `source.fps` of a replay (`dir`, `sample`) when not 0: one frame in 100 s to 1000 a second.
pub const REPLAY_FPS: RangeInclusive<f64> = 0.01..=1000.0;
/// `source.fps` of a camera (0 = the driver's rate).
pub const CAMERA_FPS: RangeInclusive<u32> = 0..=1000;
/// `source.frame_timeout_ms` (0 = wait forever): at most an hour.
pub const FRAME_TIMEOUT_MS: RangeInclusive<u64> = 0..=3_600_000;
/// `source.reconnect_max_s`: at most an hour between reopen attempts.
pub const RECONNECT_MAX_S: RangeInclusive<u64> = 0..=3_600;

/// Every duration and rate of `c`.
pub fn check(c: &Config) -> Result<()> {
    seconds("pipeline.stats_interval_s", c.pipeline.stats_interval_s, &STATS_INTERVAL_S, "5.0")?;
    seconds("pipeline.stall_timeout_s", c.pipeline.stall_timeout_s, &STALL_TIMEOUT_S, "30.0")?;
    match &c.source {
        SourceConfig::Sample(s) => replay_fps(s.fps),
        SourceConfig::Dir(d) => replay_fps(d.fps),
        SourceConfig::V4l2(v) => {
            within("source.fps", v.fps, &CAMERA_FPS, "frames per second", "30, or 0 for the driver's rate")?;
            within("source.frame_timeout_ms", v.frame_timeout_ms, &FRAME_TIMEOUT_MS, "milliseconds", "5000, or 0 to wait forever")?;
            within("source.reconnect_max_s", v.reconnect_max_s, &RECONNECT_MAX_S, "seconds", "10")
        }
        SourceConfig::Stdin(_) => Ok(()),
    }
}

fn seconds(key: &str, value: f64, range: &RangeInclusive<f64>, example: &str) -> Result<()> {
    if !(value.is_finite() && range.contains(&value)) {
        bail!("key {key} = {value} is out of range: it must be {} to {} seconds; fix: e.g. {key} = {example}", range.start(), range.end());
    }
    Ok(())
}

fn replay_fps(fps: f64) -> Result<()> {
    if fps == 0.0 || (fps.is_finite() && REPLAY_FPS.contains(&fps)) {
        return Ok(());
    }
    bail!(
        "key source.fps = {fps} is out of range: it must be 0 (as fast as inference takes frames) or {} to {} frames per second; fix: e.g. source.fps = 5",
        REPLAY_FPS.start(),
        REPLAY_FPS.end()
    )
}

fn within<T: PartialOrd + std::fmt::Display>(key: &str, value: T, range: &RangeInclusive<T>, unit: &str, example: &str) -> Result<()> {
    if !range.contains(&value) {
        bail!("key {key} = {value} is out of range: it must be {} to {} {unit}; fix: e.g. {key} = {example}", range.start(), range.end());
    }
    Ok(())
}

/// Seconds as a `Duration` for a value `check` bounded; a value out of every
/// bound (only reachable from code that skipped the check) saturates at a day
/// rather than panicking.
pub fn duration_s(secs: f64) -> Duration {
    const DAY: Duration = Duration::from_secs(86_400);
    Duration::try_from_secs_f64(secs).map_or(DAY, |d| d.min(DAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> String {
        match Config::parse(body) {
            Ok(_) => String::new(),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn model_activation_and_threshold_are_checked() {
        assert_eq!(parse("[model]\nactivation = \"none\"\nbinary_threshold = 0.3\n"), "");
        let e = parse("[model]\nactivation = \"relu\"\n");
        assert!(e.contains("model.activation") && e.contains("\"softmax\""), "{e}");
        for bad in ["0.0", "1.0", "-0.5", "nan", "inf"] {
            let e = parse(&format!("[model]\nbinary_threshold = {bad}\n"));
            assert!(e.contains("model.binary_threshold"), "{bad}: {e}");
        }
    }

    /// Each value passed `run --check` before and then panicked converting to a Duration
    /// (or adding one to `Instant::now()`).
    #[test]
    fn values_that_panicked_at_run_time_are_refused_with_key_and_fix() {
        let cases = [
            ("[pipeline]\nstats_interval_s = inf\n", "pipeline.stats_interval_s"),
            ("[pipeline]\nstats_interval_s = 1e19\n", "pipeline.stats_interval_s"),
            ("[pipeline]\nstats_interval_s = nan\n", "pipeline.stats_interval_s"),
            ("[pipeline]\nstall_timeout_s = 0\n", "pipeline.stall_timeout_s"),
            ("[source]\nkind = \"sample\"\nfps = 1e-300\n", "source.fps"),
            ("[source]\nkind = \"dir\"\npath = \"x\"\nfps = 1e-300\n", "source.fps"),
            ("[source]\nkind = \"dir\"\npath = \"x\"\nfps = -1\n", "source.fps"),
            ("[source]\nkind = \"dir\"\npath = \"x\"\nfps = inf\n", "source.fps"),
            ("[source]\nkind = \"v4l2\"\nreconnect_max_s = 18446744073709551615\n", "source.reconnect_max_s"),
            ("[source]\nkind = \"v4l2\"\nframe_timeout_ms = 18446744073709551615\n", "source.frame_timeout_ms"),
        ];
        for (body, key) in cases {
            let e = parse(body);
            assert!(e.contains(key) && e.contains("fix:") && e.contains("out of range"), "{body}: {e}");
        }
        for ok in ["[pipeline]\nstats_interval_s = 0.1\n", "[source]\nkind = \"sample\"\nfps = 0\n", "[source]\nkind = \"sample\"\nfps = 0.01\n"] {
            assert_eq!(parse(ok), "", "{ok}");
        }
    }

    #[test]
    fn every_accepted_extreme_converts_without_panic() {
        for s in [*STATS_INTERVAL_S.start(), *STATS_INTERVAL_S.end(), *STALL_TIMEOUT_S.end(), 1.0 / REPLAY_FPS.start()] {
            let _ = std::time::Instant::now() + duration_s(s);
        }
        assert_eq!(duration_s(f64::INFINITY), Duration::from_secs(86_400));
        assert_eq!(duration_s(f64::NAN), Duration::from_secs(86_400));
    }
}

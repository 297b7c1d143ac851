//! Linux GPIO character device backend (gpiocdev, uAPI v2 with v1 fallback).
//!
//! Chips are found by path (`/dev/gpiochip0`), name (`gpiochip0`) or label
//! (`pinctrl-bcm2711`, what `gpiodetect` prints), because the number of a chip
//! changes between boards and kernels while its label does not. Lines are found
//! by name (the device tree's `gpio-line-names`) or offset.

use super::{check_free, find_line, Edge, InputPin, LineId, LineSummary, OutputPin};
use anyhow::{bail, Context, Result};
use gpiocdev::line::{Direction, EdgeDetection, EdgeKind, Value};
use gpiocdev::{Chip, Request};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Who we are in `gpioinfo`'s consumer column.
const CONSUMER: &str = "edgeseg";

/// A chip as `edgeseg probe` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ChipListing {
    pub path: String,
    pub name: String,
    pub label: String,
    pub lines: Vec<LineSummary>,
}

impl ChipListing {
    /// `gpiochip0 "pinctrl-bcm2711"`, for messages.
    pub fn describe(&self) -> String {
        format!("{} \"{}\"", self.name, self.label)
    }
}

fn read_chip(path: &Path) -> Result<ChipListing> {
    let chip = Chip::from_path(path).with_context(|| format!("cannot open GPIO chip {}", path.display()))?;
    let info = chip.info().with_context(|| format!("cannot read chip info of {}", path.display()))?;
    let mut lines = Vec::with_capacity(info.num_lines as usize);
    for offset in 0..info.num_lines {
        let li = chip.line_info(offset).with_context(|| format!("cannot read line {offset} of {}", path.display()))?;
        lines.push(LineSummary {
            offset,
            name: li.name,
            consumer: li.consumer,
            used: li.used,
            direction: if li.direction == Direction::Output { "output" } else { "input" },
        });
    }
    Ok(ChipListing { path: chip.path().display().to_string(), name: chip.name(), label: info.label, lines })
}

/// Every GPIO chip on this machine with its lines. No chips (a PC, a container, CI) is an empty list;
/// a chip that cannot be read (permissions) is skipped with a warning naming it.
pub fn list_chips() -> Result<Vec<ChipListing>> {
    // gpiocdev scans /dev; a missing /dev would be an odd container, and means "no chips".
    let paths: Vec<PathBuf> = gpiocdev::chip::chips().unwrap_or_default();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        match read_chip(&p) {
            Ok(c) => out.push(c),
            Err(e) => log::warn!("{e:#}; fix: run as a user in the gpio group (or root)"),
        }
    }
    Ok(out)
}

/// Which of `chips` `spec` means: a name (`gpiochip0`) or a label (`pinctrl-bcm2711`).
pub fn match_chip<'a>(chips: &'a [ChipListing], spec: &str) -> Option<&'a ChipListing> {
    chips.iter().find(|c| c.name == spec).or_else(|| chips.iter().find(|c| c.label == spec))
}

/// Open the chip `spec` (path, name or label) and read its lines. `key` is the config key, for messages.
pub fn find_chip(spec: &str, key: &str) -> Result<ChipListing> {
    if spec.starts_with('/') {
        return read_chip(Path::new(spec)).map_err(|e| {
            anyhow::anyhow!("key {key}: {e:#}; fix: run `edgeseg probe` to list GPIO chips (or check permissions on {spec})")
        });
    }
    let chips = list_chips()?;
    if let Some(c) = match_chip(&chips, spec) {
        return Ok(c.clone());
    }
    // A name can be a symlink to another chip (/dev/gpiochip0 on some Pi 5 images): listing shows
    // only the canonical chips, so try the node itself.
    let node = Path::new("/dev").join(spec);
    if !spec.contains('/') && node.exists() {
        return read_chip(&node).map_err(|e| anyhow::anyhow!("key {key}: {e:#}; fix: run `edgeseg probe` to list GPIO chips"));
    }
    let found = if chips.is_empty() {
        "none: this machine has no GPIO character devices".to_string()
    } else {
        chips.iter().map(ChipListing::describe).collect::<Vec<_>>().join(", ")
    };
    bail!("key {key}: no GPIO chip named or labelled \"{spec}\" (found: {found}); fix: run `edgeseg probe` to list chips, or use chip = \"sim\" to simulate")
}

fn resolve(spec: &str, id: &LineId, key_chip: &str, key_line: &str) -> Result<(ChipListing, u32)> {
    let chip = find_chip(spec, key_chip)?;
    let desc = chip.describe();
    let offset = find_line(&chip.lines, id, &desc, key_line)?;
    check_free(&chip.lines, offset, &desc, key_line)?;
    Ok((chip, offset))
}

/// An output line held through the character device; released (and left as is) on drop.
pub struct ChardevOutput {
    req: Request,
    offset: u32,
    what: String,
}

impl ChardevOutput {
    /// Request line `id` of chip `chip` as an output, initially inactive. `key_chip`/`key_line` are the config keys.
    pub fn open(chip: &str, id: &LineId, active_low: bool, key_chip: &str, key_line: &str) -> Result<ChardevOutput> {
        let (c, offset) = resolve(chip, id, key_chip, key_line)?;
        let mut b = Request::builder();
        b.on_chip(&c.path).with_consumer(CONSUMER).with_line(offset).as_output(Value::Inactive);
        if active_low {
            b.as_active_low();
        }
        let what = format!("line {offset} of {}", c.describe());
        let req = b.request().with_context(|| format!("key {key_line}: cannot request {what} as an output; fix: check permissions (gpio group) and that no other program holds it"))?;
        Ok(ChardevOutput { req, offset, what })
    }
}

impl OutputPin for ChardevOutput {
    fn set_active(&mut self, active: bool) -> Result<()> {
        let v = if active { Value::Active } else { Value::Inactive };
        self.req.set_value(self.offset, v).with_context(|| format!("setting {}", self.what))?;
        Ok(())
    }
}

/// An input line with both edges detected and the kernel's debounce applied.
pub struct ChardevInput {
    req: Request,
    offset: u32,
    what: String,
}

impl ChardevInput {
    /// Request line `id` of chip `chip` as an edge-detecting input. A zero `debounce` turns debouncing off.
    pub fn open(chip: &str, id: &LineId, active_low: bool, debounce: Duration, key_chip: &str, key_line: &str) -> Result<ChardevInput> {
        let (c, offset) = resolve(chip, id, key_chip, key_line)?;
        let mut b = Request::builder();
        b.on_chip(&c.path).with_consumer(CONSUMER).with_line(offset).as_input().with_edge_detection(EdgeDetection::BothEdges);
        if !debounce.is_zero() {
            b.with_debounce_period(debounce);
        }
        if active_low {
            b.as_active_low();
        }
        let what = format!("line {offset} of {}", c.describe());
        let req = b.request().with_context(|| {
            format!("key {key_line}: cannot request {what} as an edge-detecting input; fix: check permissions (gpio group), that no other program holds it, and that the chip supports edge events")
        })?;
        Ok(ChardevInput { req, offset, what })
    }
}

impl InputPin for ChardevInput {
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>> {
        if !self.req.wait_edge_event(timeout).with_context(|| format!("waiting for an edge on {}", self.what))? {
            return Ok(None);
        }
        let ev = self.req.read_edge_event().with_context(|| format!("reading an edge of {}", self.what))?;
        Ok(Some(match ev.kind {
            EdgeKind::Rising => Edge::Rising,
            EdgeKind::Falling => Edge::Falling,
        }))
    }

    fn is_active(&mut self) -> Result<bool> {
        let v = self.req.value(self.offset).with_context(|| format!("reading {}", self.what))?;
        Ok(v == Value::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(name: &str, label: &str) -> ChipListing {
        ChipListing { path: format!("/dev/{name}"), name: name.into(), label: label.into(), lines: vec![] }
    }

    #[test]
    fn chips_match_by_name_then_label() {
        let chips = [listing("gpiochip0", "pinctrl-bcm2711"), listing("gpiochip1", "raspberrypi-exp-gpio")];
        assert_eq!(match_chip(&chips, "gpiochip1").unwrap().label, "raspberrypi-exp-gpio");
        assert_eq!(match_chip(&chips, "pinctrl-bcm2711").unwrap().name, "gpiochip0");
        assert!(match_chip(&chips, "gpiochip7").is_none());
    }

    #[test]
    fn a_missing_chip_label_names_the_key_and_the_fix() {
        // On a board that has this label the lookup succeeds, which is also fine.
        if let Err(e) = find_chip("no-such-chip-label", "sinks.gpio.chip") {
            let e = format!("{e:#}");
            assert!(e.contains("sinks.gpio.chip") && e.contains("no-such-chip-label") && e.contains("found:") && e.contains("edgeseg probe"), "{e}");
        }
    }

    #[test]
    fn a_missing_chip_path_names_the_path_and_the_key() {
        let e = format!("{:#}", find_chip("/dev/gpiochip-does-not-exist", "sinks.gpio.chip").unwrap_err());
        assert!(e.contains("/dev/gpiochip-does-not-exist") && e.contains("sinks.gpio.chip") && e.contains("edgeseg probe"), "{e}");
        let e = format!("{:#}", ChardevOutput::open("/dev/gpiochip-does-not-exist", &LineId::Offset(1), false, "sinks.gpio.chip", "sinks.gpio.reject_line").err().unwrap());
        assert!(e.contains("/dev/gpiochip-does-not-exist"), "{e}");
    }

    #[test]
    fn listing_chips_never_fails_without_chips() {
        assert!(list_chips().is_ok());
    }
}

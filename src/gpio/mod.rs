//! GPIO lines behind traits (as embedded-hal does), so the same reject/ready/
//! trigger logic runs on a real Linux GPIO character device, a simulated chip
//! and a test double.

pub mod chardev;
pub mod sim;

use anyhow::Result;
use serde::Deserialize;
use std::time::Duration;

/// A line driven by us.
pub trait OutputPin: Send {
    /// Drive the line active (`true`) or inactive; active-low is handled by the backend.
    fn set_active(&mut self, active: bool) -> Result<()>;
}

/// An edge seen on an input line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    Rising,
    Falling,
}

/// A line we read (trigger input).
pub trait InputPin: Send {
    /// Wait up to `timeout` for an edge; `None` on timeout. Debounce is the backend's job
    /// (the chardev uses the kernel's debounce period).
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>>;
    /// Current level (true = active).
    fn is_active(&mut self) -> Result<bool>;
}

/// Which line: by name (as the board's device tree names it, e.g. "GPIO17") or offset.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LineId {
    Offset(u32),
    Name(String),
}

impl std::fmt::Display for LineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineId::Offset(o) => write!(f, "offset {o}"),
            LineId::Name(n) => write!(f, "\"{n}\""),
        }
    }
}

/// What a chip says about one of its lines: the input of line lookup and of `edgeseg probe`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineSummary {
    pub offset: u32,
    /// Empty when the device tree gives the line no name.
    pub name: String,
    /// Who holds the line ("" when free or when the holder gave no name).
    pub consumer: String,
    pub used: bool,
    /// "input" or "output".
    pub direction: &'static str,
}

/// Find `id` among a chip's lines. `chip` names the chip for messages ("gpiochip0 \"pinctrl-bcm2711\""),
/// `key` the config key that asked for the line. A name that is not found but parses as a number is
/// taken as an offset, so `reject_line = "17"` works as well as `reject_line = 17`.
pub fn find_line(lines: &[LineSummary], id: &LineId, chip: &str, key: &str) -> Result<u32> {
    let by_offset = |offset: u32| -> Result<u32> {
        if lines.iter().any(|l| l.offset == offset) {
            Ok(offset)
        } else {
            anyhow::bail!(
                "key {key}: {chip} has no line at offset {offset} (it has {} lines, offsets 0..{}); fix: run `edgeseg probe` to list the lines",
                lines.len(),
                lines.len().saturating_sub(1)
            )
        }
    };
    match id {
        LineId::Offset(o) => by_offset(*o),
        LineId::Name(name) => {
            if let Some(line) = lines.iter().find(|l| l.name == *name) {
                return Ok(line.offset);
            }
            if let Ok(o) = name.trim().parse::<u32>() {
                return by_offset(o);
            }
            let named: Vec<&str> = lines.iter().filter(|l| !l.name.is_empty()).map(|l| l.name.as_str()).take(8).collect();
            let hint = if named.is_empty() {
                "its lines have no names, use an offset".to_string()
            } else {
                format!("names there look like {}", named.join(", "))
            };
            anyhow::bail!("key {key}: {chip} has no line named \"{name}\" ({hint}); fix: run `edgeseg probe` to list the lines")
        }
    }
}

/// Refuse a line another program holds, with a message that says who (the kernel would only say EBUSY).
pub fn check_free(lines: &[LineSummary], offset: u32, chip: &str, key: &str) -> Result<()> {
    match lines.iter().find(|l| l.offset == offset) {
        Some(l) if l.used => anyhow::bail!(
            "key {key}: line {offset}{} on {chip} is in use by \"{}\"; fix: stop that program (or its device-tree overlay) or choose another line",
            if l.name.is_empty() { String::new() } else { format!(" ({})", l.name) },
            if l.consumer.is_empty() { "another consumer" } else { &l.consumer }
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<LineSummary> {
        ["ID_SDA", "GPIO17", "", "GPIO27"]
            .iter()
            .enumerate()
            .map(|(i, n)| LineSummary {
                offset: i as u32,
                name: n.to_string(),
                consumer: if i == 3 { "kernel-led".into() } else { String::new() },
                used: i == 3,
                direction: "input",
            })
            .collect()
    }

    #[test]
    fn finds_lines_by_name_offset_and_numeric_name() {
        let l = lines();
        assert_eq!(find_line(&l, &LineId::Name("GPIO17".into()), "chip", "k").unwrap(), 1);
        assert_eq!(find_line(&l, &LineId::Offset(2), "chip", "k").unwrap(), 2);
        assert_eq!(find_line(&l, &LineId::Name("2".into()), "chip", "k").unwrap(), 2);
    }

    #[test]
    fn missing_lines_name_the_key_and_the_fix() {
        let l = lines();
        let e = find_line(&l, &LineId::Name("GPIO99".into()), "gpiochip0 \"x\"", "sinks.gpio.reject_line").unwrap_err().to_string();
        assert!(e.contains("sinks.gpio.reject_line") && e.contains("GPIO99") && e.contains("GPIO17") && e.contains("edgeseg probe"), "{e}");
        let e = find_line(&l, &LineId::Offset(40), "gpiochip0", "k").unwrap_err().to_string();
        assert!(e.contains("offset 40") && e.contains("4 lines"), "{e}");
    }

    #[test]
    fn busy_lines_name_their_holder() {
        let l = lines();
        assert!(check_free(&l, 1, "chip", "k").is_ok());
        let e = check_free(&l, 3, "chip", "sinks.gpio.ready_line").unwrap_err().to_string();
        assert!(e.contains("kernel-led") && e.contains("GPIO27") && e.contains("ready_line"), "{e}");
    }
}

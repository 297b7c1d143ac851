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

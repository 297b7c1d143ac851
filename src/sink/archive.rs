//! Archive of failing frames (filled in below).
use serde::Deserialize;
use std::path::PathBuf;

/// `[sinks.archive]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    pub dir: PathBuf,
}

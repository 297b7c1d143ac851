//! Archive of failing frames: for each, the frame, its overlay and its report
//! (`.jpg`, `.overlay.jpg`, `.json`) in one folder, under a size quota; when it
//! would be exceeded the oldest entries go first. `store.rs` says which files
//! are the archive's and in what order they were written.
//!
//! Each entry is encoded in memory first (reused buffers), so its size is
//! known before anything touches the disk: an entry larger than the whole
//! quota is not written (a loud warning says so), and room is made before
//! writing. A write that fails (an image JPEG cannot hold, a full disk) leaves
//! no partial file and is counted (`Sink::overflow`).

mod store;

use super::{FramePixels, Sink};
use crate::report::{FrameReport, Verdict};
use anyhow::{bail, Context, Result};
use image::RgbImage;
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use store::Entry;

/// `quota_mib` below this is refused at check time (a camera frame with its overlay is often 0.2-2 MiB).
pub const MIN_QUOTA_MIB: f64 = 1.0;
/// And above this (1 TiB): a unit slip.
pub const MAX_QUOTA_MIB: f64 = 1024.0 * 1024.0;
/// Seconds between two warnings about frames too large for the quota.
const TOO_BIG_WARN_EVERY: Duration = Duration::from_secs(60);

/// `[sinks.archive]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Directory for archived frames (created if missing), relative to the config file.
    pub dir: PathBuf,
    /// Size quota in MiB; the oldest frames are deleted beyond it.
    #[serde(default = "default_quota")]
    pub quota_mib: f64,
    /// Archive passing frames too (every frame; mind the quota).
    #[serde(default)]
    pub all_frames: bool,
    /// JPEG quality (1-100) of the stored images.
    #[serde(default = "default_quality")]
    pub jpeg_quality: u8,
}

fn default_quota() -> f64 {
    512.0
}
fn default_quality() -> u8 {
    90
}

impl ArchiveConfig {
    /// What can be checked without the disk (`run --check` does).
    pub fn check(&self) -> Result<()> {
        let q = self.quota_mib;
        if !(q.is_finite() && (MIN_QUOTA_MIB..=MAX_QUOTA_MIB).contains(&q)) {
            bail!(
                "key sinks.archive.quota_mib = {q} is out of range: it must be {MIN_QUOTA_MIB} to {MAX_QUOTA_MIB} MiB \
                 (below 1 MiB not even one camera frame with its overlay fits); fix: a size in MiB, e.g. 512"
            );
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            bail!("key sinks.archive.jpeg_quality = {}; fix: 1 to 100", self.jpeg_quality);
        }
        Ok(())
    }
}

pub struct ArchiveSink {
    dir: PathBuf,
    quota_bytes: u64,
    all_frames: bool,
    quality: u8,
    /// Stored entries, oldest first.
    entries: VecDeque<Entry>,
    total: u64,
    next_seq: u64,
    /// Reused encoding buffers: the frame, its overlay, its report.
    jpeg: Vec<u8>,
    overlay_jpeg: Vec<u8>,
    json: Vec<u8>,
    /// Frames that could not be written (encoding or disk errors).
    failed: u64,
    /// Frames larger than the whole quota, not written.
    too_big: u64,
    last_too_big_warn: Option<Instant>,
}

impl ArchiveSink {
    pub fn open(config: &ArchiveConfig, base: &Path, _classes: &[String]) -> Result<ArchiveSink> {
        config.check()?;
        let dir = crate::source::resolve_path(base, &config.dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("key sinks.archive.dir: cannot create {}; fix: a writable directory", dir.display()))?;
        let scanned = store::scan(&dir).with_context(|| format!("key sinks.archive.dir: {}; fix: a readable and writable directory", dir.display()))?;
        if scanned.debris > 0 {
            log::info!("archive {}: removed {} file(s) of writes an earlier run did not finish", dir.display(), scanned.debris);
        }
        let total = scanned.entries.iter().map(|e| e.bytes).sum();
        let mut sink = ArchiveSink {
            dir,
            quota_bytes: (config.quota_mib * 1024.0 * 1024.0) as u64,
            all_frames: config.all_frames,
            quality: config.jpeg_quality,
            entries: scanned.entries.into(),
            total,
            next_seq: scanned.next_seq,
            jpeg: Vec::new(),
            overlay_jpeg: Vec::new(),
            json: Vec::new(),
            failed: 0,
            too_big: 0,
            last_too_big_warn: None,
        };
        sink.make_room(0);
        Ok(sink)
    }

    /// Delete the oldest entries until `incoming` more bytes fit under the quota.
    fn make_room(&mut self, incoming: u64) {
        while self.total.saturating_add(incoming) > self.quota_bytes {
            let Some(old) = self.entries.pop_front() else { break };
            store::remove_entry(&self.dir, &old.stem);
            self.total = self.total.saturating_sub(old.bytes);
            log::debug!("archive: removed {} to stay under the quota", old.stem);
        }
    }

    pub fn stored(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the stored entries take.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Frames not archived because writing failed, and because one was larger than the quota.
    pub fn not_archived(&self) -> (u64, u64) {
        (self.failed, self.too_big)
    }

    /// Encode the frame, its overlay and its report into the reused buffers.
    fn encode(&mut self, report: &FrameReport, pixels: &FramePixels<'_>) -> Result<u64> {
        encode_jpeg(pixels.image, self.quality, &mut self.jpeg)?;
        self.overlay_jpeg.clear();
        if let Some(overlay) = pixels.overlay {
            encode_jpeg(overlay, self.quality, &mut self.overlay_jpeg)?;
        }
        self.json.clear();
        serde_json::to_writer_pretty(&mut self.json, report)?;
        Ok((self.jpeg.len() + self.overlay_jpeg.len() + self.json.len()) as u64)
    }

    /// The image files, then the report: the report is what makes an entry count.
    fn write(&self, stem: &str) -> Result<()> {
        let parts = [(".jpg", &self.jpeg), (".overlay.jpg", &self.overlay_jpeg), (".json", &self.json)];
        for (suffix, bytes) in parts {
            if suffix == ".overlay.jpg" && bytes.is_empty() {
                continue;
            }
            store::write_atomic(&self.dir, &format!("{stem}{suffix}"), bytes)?;
        }
        Ok(())
    }

    fn warn_too_big(&mut self, frame: u64, bytes: u64) {
        self.too_big += 1;
        if self.last_too_big_warn.is_some_and(|t| t.elapsed() < TOO_BIG_WARN_EVERY) {
            return;
        }
        self.last_too_big_warn = Some(Instant::now());
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        log::warn!(
            "archive {}: frame {frame} needs {:.2} MiB (image, overlay, report) but the whole quota is {:.2} MiB: not archived \
             ({} frame(s) so far); fix: raise sinks.archive.quota_mib to at least {}",
            self.dir.display(),
            mib(bytes),
            mib(self.quota_bytes),
            self.too_big,
            (mib(bytes) * 20.0).ceil()
        );
    }
}

fn encode_jpeg(img: &RgbImage, quality: u8, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut *out, quality)
        .encode_image(img)
        .with_context(|| format!("cannot encode a {}x{} frame as JPEG", img.width(), img.height()))
}

impl Sink for ArchiveSink {
    fn name(&self) -> &str {
        "archive"
    }

    fn emit(&mut self, report: &FrameReport, pixels: &FramePixels<'_>) -> Result<()> {
        if report.verdict == Verdict::Pass && !self.all_frames {
            return Ok(());
        }
        let bytes = match self.encode(report, pixels) {
            Ok(b) => b,
            Err(e) => {
                self.failed += 1;
                return Err(e.context(format!("archive: frame {} not archived", report.frame)));
            }
        };
        if bytes > self.quota_bytes {
            self.warn_too_big(report.frame, bytes);
            return Ok(());
        }
        self.make_room(bytes);
        let stem = store::stem(self.next_seq, report.frame);
        self.next_seq += 1;
        if let Err(e) = self.write(&stem) {
            store::remove_entry(&self.dir, &stem);
            self.failed += 1;
            return Err(e.context(format!("archive: frame {} not archived ({} so far)", report.frame, self.failed)));
        }
        self.total += bytes;
        self.entries.push_back(Entry { stem, bytes });
        Ok(())
    }

    fn overflow(&self) -> u64 {
        self.failed + self.too_big
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

//! Archive of failing frames: for each, `STEM.jpg` (the frame), `STEM.overlay.jpg`
//! and `STEM.json` (the frame report) in one directory, under a size quota:
//! when it is exceeded the oldest frames go first. STEM is
//! `<capture time µs>_<frame number>`, so names sort by time and survive restarts.

use super::{FramePixels, Sink};
use crate::report::{FrameReport, Verdict};
use anyhow::{bail, Context, Result};
use image::RgbImage;
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// `[sinks.archive]`.
#[derive(Clone, Debug, Deserialize)]
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

pub struct ArchiveSink {
    dir: PathBuf,
    quota_bytes: u64,
    all_frames: bool,
    quality: u8,
    /// Stored frames, oldest first: (stem, bytes of its files).
    entries: VecDeque<(String, u64)>,
    total: u64,
}

impl ArchiveSink {
    pub fn open(config: &ArchiveConfig, base: &Path, _classes: &[String]) -> Result<ArchiveSink> {
        if config.quota_mib.is_nan() || config.quota_mib <= 0.0 {
            bail!("key sinks.archive.quota_mib = {}; fix: a size in MiB above 0, e.g. 512", config.quota_mib);
        }
        if !(1..=100).contains(&config.jpeg_quality) {
            bail!("key sinks.archive.jpeg_quality = {}; fix: 1 to 100", config.jpeg_quality);
        }
        let dir = crate::source::resolve_path(base, &config.dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("key sinks.archive.dir: cannot create {}; fix: a writable directory", dir.display()))?;
        let mut sink = ArchiveSink {
            dir,
            quota_bytes: (config.quota_mib * 1024.0 * 1024.0) as u64,
            all_frames: config.all_frames,
            quality: config.jpeg_quality,
            entries: VecDeque::new(),
            total: 0,
        };
        sink.scan()?;
        sink.enforce_quota();
        Ok(sink)
    }

    /// Pick up what an earlier run archived, so the quota covers it too.
    fn scan(&mut self) -> Result<()> {
        let mut by_stem: BTreeMap<String, u64> = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = archive_stem(&name) else { continue };
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            *by_stem.entry(stem.to_string()).or_default() += len;
        }
        for (stem, bytes) in by_stem {
            self.total += bytes;
            self.entries.push_back((stem, bytes));
        }
        Ok(())
    }

    fn enforce_quota(&mut self) {
        while self.total > self.quota_bytes {
            let Some((stem, bytes)) = self.entries.pop_front() else { break };
            for suffix in [".jpg", ".overlay.jpg", ".json"] {
                let _ = std::fs::remove_file(self.dir.join(format!("{stem}{suffix}")));
            }
            self.total = self.total.saturating_sub(bytes);
            log::debug!("archive: removed {stem} to stay under the quota");
        }
    }

    fn write_jpeg(&self, path: &Path, img: &RgbImage) -> Result<u64> {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = std::io::BufWriter::new(file);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, self.quality)
            .encode_image(img)
            .with_context(|| format!("cannot write {}", path.display()))?;
        drop(w);
        Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
    }

    pub fn stored(&self) -> usize {
        self.entries.len()
    }
}

/// `123_4.jpg` / `123_4.overlay.jpg` / `123_4.json` → `123_4`.
fn archive_stem(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".overlay.jpg").or_else(|| name.strip_suffix(".jpg")).or_else(|| name.strip_suffix(".json"))?;
    let (t, n) = stem.split_once('_')?;
    (t.bytes().all(|b| b.is_ascii_digit()) && n.bytes().all(|b| b.is_ascii_digit())).then_some(stem)
}

impl Sink for ArchiveSink {
    fn name(&self) -> &str {
        "archive"
    }

    fn emit(&mut self, report: &FrameReport, pixels: &FramePixels<'_>) -> Result<()> {
        if report.verdict == Verdict::Pass && !self.all_frames {
            return Ok(());
        }
        let stem = format!("{:016}_{}", report.captured_unix_us, report.frame);
        let mut bytes = self.write_jpeg(&self.dir.join(format!("{stem}.jpg")), pixels.image)?;
        if let Some(overlay) = pixels.overlay {
            bytes += self.write_jpeg(&self.dir.join(format!("{stem}.overlay.jpg")), overlay)?;
        }
        let json_path = self.dir.join(format!("{stem}.json"));
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(&json_path, &json).with_context(|| format!("cannot write {}", json_path.display()))?;
        bytes += json.len() as u64;
        self.total += bytes;
        self.entries.push_back((stem, bytes));
        self.enforce_quota();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_report(seq: u64) -> FrameReport {
        FrameReport { frame: seq, captured_unix_us: 1_700_000_000_000_000 + seq, verdict: Verdict::Fail, ..FrameReport::default() }
    }

    #[test]
    fn keeps_failing_frames_under_quota_oldest_out() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]));
        let pixels = FramePixels { image: &img, overlay: Some(&img) };
        // Measure one entry, then set the quota to hold about three.
        let config = ArchiveConfig { dir: dir.path().join("a"), quota_mib: 100.0, all_frames: false, jpeg_quality: 90 };
        let mut sink = ArchiveSink::open(&config, Path::new("."), &[]).unwrap();
        sink.emit(&fail_report(0), &pixels).unwrap();
        let one = sink.total;
        sink.emit(&FrameReport::default(), &pixels).unwrap(); // a pass: not archived
        assert_eq!(sink.stored(), 1);
        let quota_mib = (one * 3 + one / 2) as f64 / (1024.0 * 1024.0);
        let config = ArchiveConfig { quota_mib, ..config };
        let mut sink = ArchiveSink::open(&config, Path::new("."), &[]).unwrap();
        assert_eq!(sink.stored(), 1, "picks up what was archived before");
        for seq in 1..6 {
            sink.emit(&fail_report(seq), &pixels).unwrap();
        }
        assert_eq!(sink.stored(), 3);
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("a")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names.len(), 9);
        assert!(names[0].ends_with("_3.jpg"), "oldest kept is frame 3: {names:?}");
    }

    #[test]
    fn bad_quota_names_the_key() {
        let config = ArchiveConfig { dir: "x".into(), quota_mib: 0.0, all_frames: false, jpeg_quality: 90 };
        let err = ArchiveSink::open(&config, Path::new("."), &[]).err().unwrap().to_string();
        assert!(err.contains("sinks.archive.quota_mib") && err.contains("fix"), "{err}");
    }
}

//! The archive folder: which files are the archive's, in what order they were
//! written, and writing them so that a failure leaves nothing half-written.
//!
//! An entry is `edgeseg-<seq>-f<frame>.jpg`, `.overlay.jpg` (optional) and
//! `.json`, where `<seq>` is the archive's own counter (12 digits, continued
//! across restarts from the highest number found). Eviction follows `<seq>`,
//! never the wall clock: a board without a real-time clock that steps back at
//! boot still deletes its oldest frames first. An entry counts only once its
//! `.json` exists (written last, by rename), so files the archive did not
//! write, a phone photo `20231005_142311.jpg` among them, are neither counted
//! nor deleted.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const PREFIX: &str = "edgeseg-";
/// Temporary names: hidden, and never matching an entry.
const TMP_PREFIX: &str = ".edgeseg-";
const TMP_SUFFIX: &str = ".tmp";
pub const SUFFIXES: [&str; 3] = [".jpg", ".overlay.jpg", ".json"];

/// One stored frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub stem: String,
    pub bytes: u64,
}

/// The stem of the entry numbered `seq` for `frame`.
pub fn stem(seq: u64, frame: u64) -> String {
    format!("{PREFIX}{seq:012}-f{frame}")
}

/// `edgeseg-000000000042-f17.overlay.jpg` → (`edgeseg-000000000042-f17`, 42).
fn parse_name(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_suffix(".overlay.jpg").or_else(|| name.strip_suffix(".jpg")).or_else(|| name.strip_suffix(".json"))?;
    let (seq, frame) = stem.strip_prefix(PREFIX)?.split_once("-f")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(seq) && digits(frame)).then_some(())?;
    Some((stem, seq.parse().ok()?))
}

/// `<capture µs>_<frame>`, the names of edgeseg 0.1's archive.
fn parse_legacy(name: &str) -> Option<(&str, u64, u64)> {
    let stem = name.strip_suffix(".json")?;
    let (t, n) = stem.split_once('_')?;
    Some((stem, t.parse().ok()?, n.parse().ok()?))
}

/// What `scan` found: the entries oldest first, and the next free number.
pub struct Scanned {
    pub entries: Vec<Entry>,
    pub next_seq: u64,
    /// Interrupted writes of an earlier run (a `.jpg` without its `.json`, temporary files), removed.
    pub debris: usize,
}

/// Read the folder. Entries of edgeseg 0.1 (`<µs>_<frame>.*`) are adopted when
/// their `.json` is a frame report with that capture time and frame number
/// (so a stray file of the same shape is not), and count as older than all others.
pub fn scan(dir: &Path) -> Result<Scanned> {
    let mut ours: BTreeMap<u64, (String, u64, bool)> = BTreeMap::new();
    let mut legacy: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut debris = 0;
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        sizes.insert(name.clone(), len);
        if name.starts_with(TMP_PREFIX) && name.ends_with(TMP_SUFFIX) {
            debris += remove(&dir.join(&name)) as usize;
        } else if let Some((stem, seq)) = parse_name(&name) {
            let e = ours.entry(seq).or_insert_with(|| (stem.to_string(), 0, false));
            e.1 += len;
            e.2 |= name.ends_with(".json");
        } else if let Some((stem, t, n)) = parse_legacy(&name) {
            if legacy_report_matches(&dir.join(&name), t, n) {
                legacy.insert((t, n), stem.to_string());
            }
        }
    }
    let mut entries = Vec::new();
    for stem in legacy.into_values() {
        let bytes = SUFFIXES.iter().filter_map(|s| sizes.get(&format!("{stem}{s}"))).sum();
        entries.push(Entry { stem, bytes });
    }
    let next_seq = ours.keys().next_back().map_or(0, |s| s + 1);
    for (stem, bytes, complete) in ours.into_values() {
        if complete {
            entries.push(Entry { stem, bytes });
        } else {
            debris += remove_entry(dir, &stem);
        }
    }
    Ok(Scanned { entries, next_seq, debris })
}

fn legacy_report_matches(json: &Path, captured_unix_us: u64, frame: u64) -> bool {
    // A frame report is a few KiB to a few MiB; anything far larger is not one.
    let small = std::fs::metadata(json).is_ok_and(|m| m.len() <= 64 << 20);
    let doc = small.then(|| std::fs::read(json).ok()).flatten().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    doc.is_some_and(|d| d["captured_unix_us"].as_u64() == Some(captured_unix_us) && d["frame"].as_u64() == Some(frame))
}

fn remove(path: &Path) -> bool {
    std::fs::remove_file(path).is_ok()
}

/// Delete an entry's files; how many there were.
pub fn remove_entry(dir: &Path, stem: &str) -> usize {
    SUFFIXES.iter().filter(|s| remove(&dir.join(format!("{stem}{s}")))).count()
}

/// Write `bytes` to `dir/name` through a temporary name and a rename, so the
/// name never holds a partial file; on failure nothing is left behind.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = dir.join(tmp_name(name));
    let target = dir.join(name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes)).and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        remove(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", target.display()));
    }
    Ok(())
}

/// The temporary name `write_atomic` uses for `name` (tests put a trap there).
pub fn tmp_name(name: &str) -> String {
    format!("{TMP_PREFIX}{}{TMP_SUFFIX}", name.trim_start_matches(PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(stem(42, 17), "edgeseg-000000000042-f17");
        assert_eq!(parse_name("edgeseg-000000000042-f17.overlay.jpg"), Some(("edgeseg-000000000042-f17", 42)));
        assert_eq!(parse_name("edgeseg-000000000042-f17.json"), Some(("edgeseg-000000000042-f17", 42)));
        for other in ["20231005_142311.jpg", "edgeseg-x-f1.jpg", "edgeseg-1-f.jpg", "edgeseg-1-f2.png", "IMG_0001.jpg"] {
            assert_eq!(parse_name(other), None, "{other}");
        }
        assert_eq!(tmp_name("edgeseg-000000000042-f17.jpg"), ".edgeseg-000000000042-f17.jpg.tmp");
    }
}

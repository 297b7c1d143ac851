//! Replay image files (PNG/JPEG) as a camera would deliver them: paced at
//! `fps`, optionally looping. The demo's sample frames are compiled into the
//! binary, so `edgeseg run` needs no files besides the model.

use super::{FrameSource, Next, Pacer};
use crate::frame::{Frame, PixelFormat};
use crate::imageio::expand_inputs;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::Read;
use std::path::PathBuf;

/// `[source] kind = "dir"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirConfig {
    /// A directory of images, one image, or a glob such as `frames/*.jpg`.
    pub path: PathBuf,
    /// Frames per second (0 = as fast as inference takes them).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Start again from the first image after the last.
    #[serde(default, rename = "loop")]
    pub repeat: bool,
}

/// `[source] kind = "sample"`: the bundled frames.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    #[serde(default = "default_fps")]
    pub fps: f64,
    #[serde(default = "default_true", rename = "loop")]
    pub repeat: bool,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig { fps: default_fps(), repeat: true }
    }
}

fn default_fps() -> f64 {
    5.0
}
fn default_true() -> bool {
    true
}

/// Synthetic test frames (seed 0, test split) shipped inside the binary.
pub const SAMPLES: &[(&str, &[u8])] = &[
    ("000000_pcb.png", include_bytes!("../../samples/images/000000_pcb.png")),
    ("000002_brushed_metal.png", include_bytes!("../../samples/images/000002_brushed_metal.png")),
    ("000003_woven_fabric.png", include_bytes!("../../samples/images/000003_woven_fabric.png")),
    ("000004_wood_grain.png", include_bytes!("../../samples/images/000004_wood_grain.png")),
    ("000006_wood_grain.png", include_bytes!("../../samples/images/000006_wood_grain.png")),
    ("000008_pcb.png", include_bytes!("../../samples/images/000008_pcb.png")),
    ("000010_brushed_metal.png", include_bytes!("../../samples/images/000010_brushed_metal.png")),
    ("000011_cast_surface.png", include_bytes!("../../samples/images/000011_cast_surface.png")),
];

enum Files {
    Embedded,
    Paths(Vec<PathBuf>),
}

pub struct DirSource {
    files: Files,
    label: String,
    next_index: usize,
    seq: u64,
    repeat: bool,
    pacer: Pacer,
}

impl DirSource {
    pub fn samples(config: &SampleConfig) -> Result<DirSource> {
        Ok(DirSource {
            files: Files::Embedded,
            label: format!("{} bundled sample frames", SAMPLES.len()),
            next_index: 0,
            seq: 0,
            repeat: config.repeat,
            pacer: Pacer::new(config.fps),
        })
    }

    pub fn open(config: &DirConfig, base: &std::path::Path) -> Result<DirSource> {
        let path = super::resolve_path(base, &config.path);
        let files = expand_glob(&path).with_context(|| format!("key source.path = {}", config.path.display()))?;
        if files.is_empty() {
            bail!("key source.path: no PNG or JPEG files in {}; fix: point it at a folder of images or a glob like frames/*.jpg", path.display());
        }
        Ok(DirSource {
            label: format!("{} ({} images)", path.display(), files.len()),
            files: Files::Paths(files),
            next_index: 0,
            seq: 0,
            repeat: config.repeat,
            pacer: Pacer::new(config.fps),
        })
    }

    fn len(&self) -> usize {
        match &self.files {
            Files::Embedded => SAMPLES.len(),
            Files::Paths(p) => p.len(),
        }
    }
}

/// A directory, a file, or a glob with `*`/`?` in the last path component.
fn expand_glob(path: &std::path::Path) -> Result<Vec<PathBuf>> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.contains(['*', '?']) {
        return expand_inputs(&[path.to_path_buf()]);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| glob_match(&name, &n.to_string_lossy())))
        .collect();
    out.sort();
    Ok(out)
}

/// Shell-style match of `*` (any run) and `?` (one character).
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl FrameSource for DirSource {
    fn describe(&self) -> String {
        format!("replay {}{}", self.label, if self.repeat { ", looping" } else { "" })
    }

    fn lossless(&self) -> bool {
        !self.pacer.is_paced()
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next> {
        if self.next_index >= self.len() {
            if !self.repeat {
                return Ok(Next::End);
            }
            self.next_index = 0;
        }
        self.pacer.wait();
        let i = self.next_index;
        self.next_index += 1;
        // The frame "arrives" now; reading the file is part of capture latency.
        frame.stamp_now();
        frame.data.clear();
        match &self.files {
            Files::Embedded => {
                let (name, bytes) = SAMPLES[i];
                frame.data.extend_from_slice(bytes);
                frame.set_origin(name);
            }
            Files::Paths(paths) => {
                let path = &paths[i];
                // A file that vanished or cannot be read becomes an empty (corrupt)
                // frame: counted and skipped downstream, the replay goes on.
                if let Err(e) = std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut frame.data)) {
                    log::warn!("cannot read {}: {e}", path.display());
                    frame.data.clear();
                }
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                frame.set_origin(name);
            }
        }
        frame.format = PixelFormat::Encoded;
        frame.width = 0;
        frame.height = 0;
        frame.seq = self.seq;
        frame.kernel_ts_us = None;
        self.seq += 1;
        Ok(Next::Frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob_match("*.jpg", "a.jpg"));
        assert!(!glob_match("*.jpg", "a.png"));
        assert!(glob_match("f??.png", "f01.png"));
        assert!(glob_match("*", "x"));
        assert!(!glob_match("a*b", "acbd"));
    }

    #[test]
    fn samples_loop_with_increasing_sequence() {
        let mut s = DirSource::samples(&SampleConfig { fps: 0.0, repeat: true }).unwrap();
        let mut f = Frame::with_capacity(0);
        for i in 0..(SAMPLES.len() as u64 + 2) {
            assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
            assert_eq!(f.seq, i);
            assert!(f.data.starts_with(b"\x89PNG"));
        }
    }
}

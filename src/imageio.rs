//! Reading input images and finding them in directories, with errors that
//! name the file and the fix.

use anyhow::{anyhow, bail, Context, Result};
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// Extensions `infer` and `eval` pick up from a directory.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Files given on the command line, with directories expanded to their images
/// (sorted by name, not recursive).
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("cannot list directory {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if found.is_empty() {
                bail!("directory {} holds no .png/.jpg/.jpeg images; fix: point at a folder of images", input.display());
            }
            found.sort();
            out.extend(found);
        } else if input.exists() {
            out.push(input.clone());
        } else {
            bail!("input {} does not exist; fix: check the path (bundled samples are in samples/)", input.display());
        }
    }
    Ok(out)
}

/// Decode an image file, saying which file failed and why.
pub fn read_image(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read image {}: {e}", path.display()))?;
    let format = image::guess_format(&bytes).map_err(|_| {
        anyhow!("{} is not a PNG or JPEG image (unknown file signature); fix: pass PNG or JPEG files", path.display())
    })?;
    image::load_from_memory_with_format(&bytes, format).map_err(|e| {
        anyhow!("{} is not a readable {format:?} image ({e}); fix: re-export or remove the file", path.display())
    })
}

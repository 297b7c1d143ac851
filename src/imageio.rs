//! Reading input images and finding them in directories, with errors that
//! name the file and the fix; and how big an image from outside may be.
//!
//! Every decoder of outside images (replayed files, MJPEG on stdin, dashboard
//! uploads, `infer`/`eval` inputs) checks the size in the header against
//! `check_size` before allocating pixels, and runs under `decoder_limits`:
//! a 69-byte PNG can claim 8192x7500 pixels, and a 200 KB one can really hold
//! them, which took 42 s and 850 MB before these limits.

use anyhow::{anyhow, bail, Context, Result};
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// Longest side accepted: 8K, the widest area-scan and line-scan sensors of inspection cameras.
pub const MAX_SIDE: u32 = 8192;
/// Most pixels accepted: 32 Mpx (8192x4096), above the largest area-scan sensors (31 Mpx) and
/// 96 MiB as RGB; a frame the size of the one that took 42 s (8192x7500) is refused.
pub const MAX_PIXELS: u64 = 8192 * 4096;
/// Most a decoder may allocate besides the pixels it delivers (its own row and
/// component buffers, decompressed metadata), in bytes.
pub const MAX_DECODER_ALLOC: u64 = 256 << 20;

/// Refuse a `width`x`height` image before any pixel is allocated.
pub fn check_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        bail!("image size {width}x{height} is empty");
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        bail!(
            "image size {width}x{height} exceeds the limit of {MAX_SIDE} pixels a side and {} Mpx in all; fix: send camera-sized images (scale down or tile larger ones)",
            MAX_PIXELS >> 20
        );
    }
    Ok(())
}

/// Width and height from a PNG's IHDR chunk (signature, chunk length, "IHDR", width, height),
/// for `check_size` before the PNG decoder sizes its row buffers from them. None when `data`
/// does not start like a PNG.
pub fn png_size(data: &[u8]) -> Option<(u32, u32)> {
    let ihdr = data.get(..24).filter(|h| h.starts_with(b"\x89PNG\r\n\x1a\n") && &h[12..16] == b"IHDR")?;
    let be = |at: usize| u32::from_be_bytes([ihdr[at], ihdr[at + 1], ihdr[at + 2], ihdr[at + 3]]);
    Some((be(16), be(20)))
}

/// The `image` crate's limits matching `check_size`, for decoders that allocate on their own.
pub fn decoder_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    limits
}

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

/// Run a decoder of outside bytes, turning a panic inside it into an error.
///
/// The image crates are not panic-free on hostile input: zune-jpeg 0.5.15's AVX2
/// IDCT unwraps an out-of-range row slice on a 619-byte JPEG found by
/// `cargo fuzz run compressed_frame` (fuzz/seeds/compressed_frame/zune_idct_panic.jpg).
/// A frame, an upload or a file must cost an error, not the thread. The panic
/// hook still prints the panic once to stderr; the caller counts the frame as corrupt.
pub fn contain_decoder_panic<T>(kind: &str, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(panic) => {
            let why = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
            bail!("corrupt {kind} data: the decoder failed on it ({why})")
        }
    }
}

/// Decode an image file, saying which file failed and why. Sizes beyond `check_size` are
/// refused from the header, before the pixels are allocated.
pub fn read_image(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read image {}: {e}", path.display()))?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decode a PNG or JPEG held in memory; `name` says which image in errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<DynamicImage> {
    let format = image::guess_format(bytes).map_err(|_| anyhow!("{name} is not a PNG or JPEG image (unknown file signature); fix: pass PNG or JPEG files"))?;
    let reader = |limits: image::Limits| {
        let mut r = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    let unreadable = |e: image::ImageError| anyhow!("{name} is not a readable {format:?} image ({e}); fix: re-export or remove the file");
    if let Some((width, height)) = png_size(bytes) {
        check_size(width, height).with_context(|| format!("image {name}"))?;
    }
    // The header alone, under the allocation cap, so that the size gets edgeseg's own error.
    let mut header_only = decoder_limits();
    (header_only.max_image_width, header_only.max_image_height) = (None, None);
    let (width, height) = reader(header_only).into_dimensions().map_err(unreadable)?;
    check_size(width, height).with_context(|| format!("image {name}"))?;
    contain_decoder_panic(&format!("{format:?}"), || reader(decoder_limits()).decode().map_err(unreadable)).with_context(|| format!("image {name}"))
}

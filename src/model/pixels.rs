//! Frame bytes → RGB pixels, in a buffer reused frame after frame.
//!
//! Raw camera formats (GREY, RGB24, YUYV) convert with no allocation at all.
//! JPEG (MJPEG cameras, stdin streams) and PNG (replayed files) decode through
//! the `image` crate's decoders straight into the reused buffer; only the
//! decoders' own small tables are allocated per frame.
//!
//! Compressed frames come from outside (files, stdin, uploads): their size is
//! checked from the header against `imageio::check_size` before a pixel is
//! allocated, and buffers a larger frame grew are given back when a smaller one
//! follows, so one oversized image does not keep its memory.

use crate::frame::{Frame, PixelFormat};
use crate::imageio::{check_size, contain_decoder_panic, decoder_limits, png_size};
use anyhow::{bail, Context, Result};
use image::codecs::{jpeg::JpegDecoder, png::PngDecoder};
use image::{ColorType, ImageDecoder, RgbImage};
use std::io::Cursor;

/// Freeing at least this much in one go is worth handing back to the OS (`heap::give_back`).
const GIVE_BACK_BYTES: usize = 16 << 20;

/// Reused decode buffers.
#[derive(Default)]
pub struct FrameDecoder {
    scratch: Vec<u8>,
}

/// Make `img` `w`×`h`, reallocating only when the size changes. When that frees a large
/// buffer (the frame before was much bigger), the memory goes back to the OS.
fn ensure_size(img: &mut RgbImage, w: u32, h: u32) {
    if img.dimensions() != (w, h) {
        let freed = img.len();
        *img = RgbImage::new(w, h);
        if freed >= GIVE_BACK_BYTES && freed > 2 * img.len() {
            crate::model::heap::give_back();
        }
    }
}

/// BT.601 limited-range YCbCr → RGB, the conversion V4L2 cameras' YUYV uses.
#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [clamp(c + 409 * e), clamp(c - 100 * d - 208 * e), clamp(c + 516 * d)]
}

impl FrameDecoder {
    /// Decode `frame` into `img` (resized as needed). An error means the frame
    /// is corrupt or truncated: the caller counts it and skips the frame.
    pub fn decode(&mut self, frame: &Frame, img: &mut RgbImage) -> Result<()> {
        let (w, h) = (frame.width, frame.height);
        let need = |bpp: usize| -> Result<()> {
            let expected = w as usize * h as usize * bpp;
            if w == 0 || h == 0 || frame.data.len() < expected {
                bail!("{:?} frame of {}x{} has {} bytes, expected {expected}", frame.format, w, h, frame.data.len());
            }
            Ok(())
        };
        match frame.format {
            PixelFormat::Gray8 => {
                need(1)?;
                ensure_size(img, w, h);
                for (px, &g) in img.chunks_exact_mut(3).zip(&frame.data) {
                    px.copy_from_slice(&[g, g, g]);
                }
            }
            PixelFormat::Rgb24 => {
                need(3)?;
                ensure_size(img, w, h);
                let n = img.len();
                img.copy_from_slice(&frame.data[..n]);
            }
            PixelFormat::Yuyv => {
                need(2)?;
                if w % 2 != 0 {
                    bail!("YUYV frame width {w} is odd");
                }
                ensure_size(img, w, h);
                for (px, yuyv) in img.chunks_exact_mut(6).zip(frame.data.chunks_exact(4)) {
                    let (y0, u, y1, v) = (yuyv[0], yuyv[1], yuyv[2], yuyv[3]);
                    px[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
                    px[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
                }
            }
            PixelFormat::Mjpeg | PixelFormat::Encoded => contain_decoder_panic("compressed frame", || self.decode_compressed(&frame.data, img))?,
        }
        Ok(())
    }

    fn decode_compressed(&mut self, data: &[u8], img: &mut RgbImage) -> Result<()> {
        if data.is_empty() {
            bail!("empty frame");
        }
        if data.starts_with(&[0xFF, 0xD8]) {
            let decoder = JpegDecoder::new(Cursor::new(data)).context("corrupt JPEG header")?;
            self.read_into(decoder, img, "JPEG")
        } else if data.starts_with(b"\x89PNG") {
            // The PNG decoder sizes row buffers from the header as it opens: check the size first.
            if let Some((w, h)) = png_size(data) {
                check_size(w, h).context("PNG refused")?;
            }
            // Opening reads the chunks before the pixels under the allocation cap.
            let mut open = decoder_limits();
            (open.max_image_width, open.max_image_height) = (None, None);
            let decoder = PngDecoder::with_limits(Cursor::new(data), open).context("corrupt PNG header")?;
            self.read_into(decoder, img, "PNG")
        } else {
            bail!("neither JPEG nor PNG (starts with {:02x?})", &data[..data.len().min(4)])
        }
    }

    fn read_into<D: ImageDecoder>(&mut self, mut decoder: D, img: &mut RgbImage, kind: &str) -> Result<()> {
        let (w, h) = decoder.dimensions();
        check_size(w, h).with_context(|| format!("{kind} refused"))?;
        decoder.set_limits(decoder_limits()).with_context(|| format!("{kind} refused"))?;
        let color = decoder.color_type();
        let n = decoder.total_bytes() as usize;
        ensure_size(img, w, h);
        self.read_pixels(decoder, color, n, img).with_context(|| format!("corrupt {kind} data"))
    }

    fn read_pixels<D: ImageDecoder>(&mut self, decoder: D, color: ColorType, n: usize, img: &mut RgbImage) -> Result<()> {
        match color {
            ColorType::Rgb8 => decoder.read_image(img)?,
            ColorType::L8 | ColorType::La8 | ColorType::Rgba8 => {
                // Keep the buffer's capacity frame to frame, but not beyond what this size needs.
                if self.scratch.capacity() > n {
                    self.scratch.truncate(n);
                    self.scratch.shrink_to(n);
                }
                self.scratch.resize(n, 0);
                decoder.read_image(&mut self.scratch)?;
                let bpp = color.bytes_per_pixel() as usize;
                for (px, src) in img.chunks_exact_mut(3).zip(self.scratch.chunks_exact(bpp)) {
                    match bpp {
                        1 | 2 => px.copy_from_slice(&[src[0]; 3]),
                        _ => px.copy_from_slice(&src[..3]),
                    }
                }
            }
            // 16-bit and other rare layouts: let `image` convert (allocates; not a camera format).
            _ => {
                let dynamic = image::DynamicImage::from_decoder(decoder)?;
                *img = dynamic.to_rgb8();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(format: PixelFormat, w: u32, h: u32, data: Vec<u8>) -> Frame {
        let mut f = Frame::with_capacity(0);
        f.format = format;
        f.width = w;
        f.height = h;
        f.data = data;
        f
    }

    #[test]
    fn yuyv_grey_and_rgb_convert() {
        let mut d = FrameDecoder::default();
        let mut img = RgbImage::new(1, 1);
        // Y=235 (white), U=V=128 → white in limited range.
        d.decode(&frame(PixelFormat::Yuyv, 2, 1, vec![235, 128, 16, 128]), &mut img).unwrap();
        assert_eq!(img.as_raw(), &vec![255, 255, 255, 0, 0, 0]);
        d.decode(&frame(PixelFormat::Gray8, 2, 1, vec![7, 9]), &mut img).unwrap();
        assert_eq!(img.as_raw(), &vec![7, 7, 7, 9, 9, 9]);
        d.decode(&frame(PixelFormat::Rgb24, 1, 1, vec![1, 2, 3]), &mut img).unwrap();
        assert_eq!(img.as_raw(), &vec![1, 2, 3]);
    }

    #[test]
    fn short_and_corrupt_frames_are_errors_not_panics() {
        let mut d = FrameDecoder::default();
        let mut img = RgbImage::new(1, 1);
        assert!(d.decode(&frame(PixelFormat::Yuyv, 4, 4, vec![0; 5]), &mut img).is_err());
        assert!(d.decode(&frame(PixelFormat::Mjpeg, 0, 0, vec![0xFF, 0xD8, 0xFF, 0xD9]), &mut img).is_err());
        assert!(d.decode(&frame(PixelFormat::Encoded, 0, 0, b"hello".to_vec()), &mut img).is_err());
        assert!(d.decode(&frame(PixelFormat::Encoded, 0, 0, vec![]), &mut img).is_err());
    }

    #[test]
    fn jpeg_round_trip_and_truncation() {
        let src = RgbImage::from_fn(32, 16, |x, y| image::Rgb([(x * 8) as u8, (y * 16) as u8, 128]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&src).unwrap();
        let mut d = FrameDecoder::default();
        let mut img = RgbImage::new(1, 1);
        d.decode(&frame(PixelFormat::Mjpeg, 0, 0, jpeg.clone()), &mut img).unwrap();
        assert_eq!(img.dimensions(), (32, 16));
        let half = jpeg[..jpeg.len() / 3].to_vec();
        assert!(d.decode(&frame(PixelFormat::Mjpeg, 0, 0, half), &mut img).is_err());
    }
}

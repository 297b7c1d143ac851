//! An MJPEG byte stream (concatenated JPEG images), as `rpicam-vid --codec
//! mjpeg -o -`, `ffmpeg -f mjpeg -` or a GStreamer `jpegenc ! fdsink` writes it.
//! Frames are cut where each JPEG's structure ends (`jpeg_split`: segments by
//! their length, so an EXIF thumbnail's own end marker does not cut the frame);
//! bytes between frames are skipped. A frame larger than `max_frame_bytes` is
//! dropped, and bytes that break JPEG's structure end the frame as corrupt; the
//! reader resynchronises at the next start marker.

use super::jpeg_split::{Found, JpegSplitter};
use super::{FrameSource, Next};
use crate::frame::{Frame, PixelFormat};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};

/// `[source] kind = "stdin"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Largest JPEG accepted; bigger ones are dropped as corrupt.
    #[serde(default = "default_max")]
    pub max_frame_bytes: usize,
}

impl Default for StdinConfig {
    fn default() -> Self {
        StdinConfig { max_frame_bytes: default_max() }
    }
}

fn default_max() -> usize {
    16 << 20
}

pub struct MjpegStream<R: Read + Send> {
    reader: BufReader<R>,
    label: String,
    max_frame_bytes: usize,
    seq: u64,
    splitter: JpegSplitter,
}

impl MjpegStream<std::io::Stdin> {
    pub fn stdin(config: &StdinConfig) -> Self {
        MjpegStream::new(std::io::stdin(), "stdin", config.max_frame_bytes)
    }
}

impl<R: Read + Send> MjpegStream<R> {
    pub fn new(reader: R, label: &str, max_frame_bytes: usize) -> Self {
        MjpegStream { reader: BufReader::with_capacity(1 << 16, reader), label: label.to_string(), max_frame_bytes, seq: 0, splitter: JpegSplitter::default() }
    }

    /// Feed the splitter from the reader until it finds something or the stream ends (None);
    /// `keep` gets every consumed run of bytes.
    fn scan(&mut self, mut keep: impl FnMut(&[u8])) -> Result<Option<Found>> {
        loop {
            let buf = self.reader.fill_buf().with_context(|| format!("reading MJPEG from {}", self.label))?;
            if buf.is_empty() {
                return Ok(None);
            }
            let (n, found) = self.splitter.feed(buf);
            keep(&buf[..n]);
            self.reader.consume(n);
            if found.is_some() {
                return Ok(found);
            }
        }
    }
}

impl<R: Read + Send> FrameSource for MjpegStream<R> {
    fn describe(&self) -> String {
        format!("MJPEG stream on {}", self.label)
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next> {
        // Find the start marker, unless the last frame ended at the start of this one.
        while !self.splitter.in_image() {
            if self.scan(|_| {})?.is_none() {
                return Ok(Next::End);
            }
        }
        frame.stamp_now();
        frame.data.clear();
        frame.data.extend_from_slice(&[0xFF, 0xD8]);
        let max = self.max_frame_bytes;
        let mut oversized = false;
        let found = self.scan(|run| {
            if oversized {
                return;
            }
            if frame.data.len() + run.len() > max {
                oversized = true;
                frame.data.clear();
                return;
            }
            frame.data.extend_from_slice(run);
        })?;
        if oversized {
            log::warn!("{}: JPEG frame over {max} bytes, dropped", self.label);
        }
        match found {
            Some(Found::End) => {}
            // The next image's start marker is not part of this one.
            Some(Found::Restart) => {
                if frame.data.ends_with(&[0xFF, 0xD8]) {
                    frame.data.truncate(frame.data.len() - 2);
                }
                log::debug!("{}: JPEG frame without an end marker before the next start", self.label);
            }
            Some(Found::Broken) => log::debug!("{}: bytes that are not JPEG structure inside a frame", self.label),
            // Stream ended inside a frame: hand over what we have (it fails to decode and is
            // counted as corrupt); the next call finds the end of the stream.
            None => self.splitter = JpegSplitter::default(),
            // Not produced inside an image.
            Some(Found::Start) => {}
        }
        frame.format = PixelFormat::Mjpeg;
        frame.width = 0;
        frame.height = 0;
        frame.seq = self.seq;
        frame.kernel_ts_us = None;
        frame.set_origin(&self.label);
        self.seq += 1;
        Ok(Next::Frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_concatenated_jpegs_and_skips_garbage() {
        let a = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 1, 2, 0xFF, 0x00, 3, 0xFF, 0xD9];
        let b = [0xFF, 0xD8, 0xFF, 0xD9];
        let mut stream = Vec::new();
        stream.extend_from_slice(b"junk");
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0, 0]);
        stream.extend_from_slice(&b);
        let mut s = MjpegStream::new(std::io::Cursor::new(stream), "test", 1024);
        let mut f = Frame::with_capacity(0);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(f.data, a);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!((f.data.as_slice(), f.seq), (&b[..], 1));
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::End);
    }

    #[test]
    fn a_jpeg_with_an_exif_thumbnail_is_one_frame() {
        let jpeg = |w: u32, h: u32| {
            let src = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 5) as u8, 77]));
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&src).unwrap();
            out
        };
        let thumb = jpeg(16, 12);
        let main = jpeg(64, 48);
        // SOI, APP1 "Exif" holding the thumbnail (its own SOI ... EOI), then the main image's segments.
        let mut exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
        exif.extend_from_slice(&u16::try_from(2 + 6 + thumb.len()).unwrap().to_be_bytes());
        exif.extend_from_slice(b"Exif\0\0");
        exif.extend_from_slice(&thumb);
        exif.extend_from_slice(&main[2..]);
        let mut stream = exif.clone();
        stream.extend_from_slice(&main);
        let mut s = MjpegStream::new(std::io::Cursor::new(stream), "test", 1 << 20);
        let mut f = Frame::with_capacity(0);
        let mut decoder = crate::model::pixels::FrameDecoder::default();
        let mut img = image::RgbImage::new(1, 1);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(f.data, exif, "the whole EXIF JPEG is one frame");
        decoder.decode(&f, &mut img).unwrap();
        assert_eq!(img.dimensions(), (64, 48));
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(f.data, main);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::End);
    }

    #[test]
    fn a_truncated_frame_does_not_swallow_the_next() {
        let mut stream = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22];
        let b = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 9, 0xFF, 0xD9];
        stream.extend_from_slice(&b);
        let mut s = MjpegStream::new(std::io::Cursor::new(stream), "test", 1024);
        let mut f = Frame::with_capacity(0);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(f.data, [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22]);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(f.data, b);
    }

    #[test]
    fn a_stream_ending_inside_a_frame_ends() {
        let mut s = MjpegStream::new(std::io::Cursor::new(vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 1, 2]), "test", 1024);
        let mut f = Frame::with_capacity(0);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::End);
    }

    #[test]
    fn oversized_frame_is_emptied_not_buffered_without_bound() {
        let mut stream = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        stream.extend(std::iter::repeat_n(7u8, 5000));
        stream.extend_from_slice(&[0xFF, 0xD9]);
        let mut s = MjpegStream::new(std::io::Cursor::new(stream), "test", 100);
        let mut f = Frame::with_capacity(0);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert!(f.data.len() <= 100);
    }
}

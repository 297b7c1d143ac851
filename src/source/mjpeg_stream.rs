//! An MJPEG byte stream (concatenated JPEG images), as `rpicam-vid --codec
//! mjpeg -o -`, `ffmpeg -f mjpeg -` or a GStreamer `jpegenc ! fdsink` writes it.
//! Frames are cut at JPEG's start (FF D8) and end (FF D9) markers; bytes between
//! frames are skipped. A frame larger than `max_frame_bytes` is dropped and the
//! reader resynchronises at the next start marker.

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
}

impl MjpegStream<std::io::Stdin> {
    pub fn stdin(config: &StdinConfig) -> Self {
        MjpegStream::new(std::io::stdin(), "stdin", config.max_frame_bytes)
    }
}

impl<R: Read + Send> MjpegStream<R> {
    pub fn new(reader: R, label: &str, max_frame_bytes: usize) -> Self {
        MjpegStream { reader: BufReader::with_capacity(1 << 16, reader), label: label.to_string(), max_frame_bytes, seq: 0 }
    }

    /// Next byte, or None at end of stream.
    fn byte(&mut self) -> Result<Option<u8>> {
        let buf = self.reader.fill_buf().with_context(|| format!("reading MJPEG from {}", self.label))?;
        let Some(&b) = buf.first() else { return Ok(None) };
        self.reader.consume(1);
        Ok(Some(b))
    }
}

impl<R: Read + Send> FrameSource for MjpegStream<R> {
    fn describe(&self) -> String {
        format!("MJPEG stream on {}", self.label)
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next> {
        // Find the start marker.
        let mut prev = 0u8;
        loop {
            match self.byte()? {
                None => return Ok(Next::End),
                Some(0xD8) if prev == 0xFF => break,
                Some(b) => prev = b,
            }
        }
        frame.stamp_now();
        frame.data.clear();
        frame.data.extend_from_slice(&[0xFF, 0xD8]);
        let mut prev = 0u8;
        let mut oversized = false;
        loop {
            let Some(b) = self.byte()? else {
                // Stream ended inside a frame: hand over what we have; it fails
                // to decode and is counted as corrupt.
                break;
            };
            if !oversized {
                frame.data.push(b);
                if frame.data.len() > self.max_frame_bytes {
                    log::warn!("{}: JPEG frame over {} bytes, dropped", self.label, self.max_frame_bytes);
                    oversized = true;
                    frame.data.clear();
                }
            }
            if prev == 0xFF && b == 0xD9 {
                break;
            }
            // In entropy-coded data FF is followed by 00 (stuffing) or a restart
            // marker, so FF D9 only ever means end of image.
            prev = b;
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
        let a = [0xFF, 0xD8, 1, 2, 0xFF, 0x00, 3, 0xFF, 0xD9];
        let b = [0xFF, 0xD8, 9, 0xFF, 0xD9];
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
    fn oversized_frame_is_emptied_not_buffered_without_bound() {
        let mut stream = vec![0xFF, 0xD8];
        stream.extend(std::iter::repeat_n(7u8, 5000));
        stream.extend_from_slice(&[0xFF, 0xD9]);
        let mut s = MjpegStream::new(std::io::Cursor::new(stream), "test", 100);
        let mut f = Frame::with_capacity(0);
        assert_eq!(s.next_frame(&mut f).unwrap(), Next::Frame);
        assert!(f.data.len() <= 100);
    }
}

//! A captured frame: pixels as the source delivered them, plus where and when
//! they came from. Frames are recycled through a pool, so `data` and `origin`
//! keep their capacity and steady-state capture allocates nothing.

use std::time::{SystemTime, UNIX_EPOCH};

/// How `Frame::data` is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// 8-bit luma, `width*height` bytes (V4L2 GREY).
    Gray8,
    /// Packed R,G,B, `width*height*3` bytes (V4L2 RGB3).
    Rgb24,
    /// Packed Y0 U Y1 V, `width*height*2` bytes (V4L2 YUYV).
    Yuyv,
    /// One JPEG image (V4L2 MJPG, or an MJPEG stream on stdin).
    Mjpeg,
    /// A whole image file (PNG or JPEG) whose size is known only after decoding.
    Encoded,
}

impl PixelFormat {
    /// Bytes per pixel of the packed raw formats; None for compressed ones.
    pub fn bytes_per_pixel(self) -> Option<usize> {
        match self {
            PixelFormat::Gray8 => Some(1),
            PixelFormat::Rgb24 => Some(3),
            PixelFormat::Yuyv => Some(2),
            PixelFormat::Mjpeg | PixelFormat::Encoded => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Frame {
    /// Sequence number from the source (V4L2's `sequence`, or a counter).
    pub seq: u64,
    /// Wall-clock capture time, microseconds since the Unix epoch.
    pub captured_unix_us: u64,
    /// The driver's timestamp (CLOCK_MONOTONIC, microseconds), when the source has one.
    pub kernel_ts_us: Option<u64>,
    /// Pixel size; 0 for `Encoded` frames until decoded.
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub data: Vec<u8>,
    /// Where the frame came from: a file name, a device path.
    pub origin: String,
}

impl Frame {
    /// An empty frame whose buffer can already hold `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Frame {
        Frame {
            seq: 0,
            captured_unix_us: 0,
            kernel_ts_us: None,
            width: 0,
            height: 0,
            format: PixelFormat::Encoded,
            data: Vec::with_capacity(capacity),
            origin: String::with_capacity(256),
        }
    }

    /// Copy `origin` in without giving up the buffer's capacity.
    pub fn set_origin(&mut self, origin: &str) {
        self.origin.clear();
        self.origin.push_str(origin);
    }

    /// Stamp the wall-clock capture time.
    pub fn stamp_now(&mut self) {
        self.captured_unix_us = unix_us_now();
    }
}

pub fn unix_us_now() -> u64 {
    // A clock before 1970 is a misconfigured board; report 0 rather than fail.
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

//! Properties of the decoders of outside bytes, checked on arbitrary input: by
//! the cargo-fuzz targets in `fuzz/` (long runs) and by `tests/fuzz_smoke.rs`
//! (a seeded, bounded run in every `cargo test`). Each function panics when a
//! property fails, which is what both harnesses report; on any input they must
//! otherwise return normally: bad bytes are errors, never panics.

use crate::frame::{Frame, PixelFormat};
use crate::imageio::{check_size, decode_image};
use crate::model::pixels::FrameDecoder;
use crate::source::jpeg_split::JpegSplitter;
use crate::source::mjpeg_stream::MjpegStream;
use crate::source::v4l2::frame_copy::copy_packed;
use crate::source::{FrameSource, Next};
use image::RgbImage;
use std::io::Read;

/// A small seeded generator (xorshift64*): the same inputs on every run. Shared by the
/// seeded twins of the fuzz targets (tests/fuzz_smoke.rs, tests/fuzz_inputs.rs, the
/// dashboard's parsers) so that none of them carries its own.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    /// True once in `one_in` calls, on average.
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    /// `seed` changed in 1 to 8 places: a byte flipped, set, inserted or
    /// removed, or one of `tokens` spliced in.
    pub fn mutate(&mut self, seed: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..1 + self.below(8) {
            let at = self.below(v.len() + 1);
            match self.below(5) {
                0 if at < v.len() => v[at] ^= 1 << self.below(8),
                1 if at < v.len() => v[at] = self.next_u64() as u8,
                2 => v.insert(at, self.next_u64() as u8),
                3 if at < v.len() => {
                    v.remove(at);
                }
                _ => {
                    let t = tokens[self.below(tokens.len())];
                    v.splice(at..at, t.iter().copied());
                }
            }
        }
        v
    }
}

/// Largest frame the MJPEG property uses, small so that oversized frames are exercised too.
const MJPEG_MAX: usize = 4096;

/// A reader handing out at most `step` bytes per read, to vary how the stream is chunked.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn mjpeg_frames(data: &[u8], step: usize) -> Vec<Vec<u8>> {
    let mut stream = MjpegStream::new(Trickle { data, step }, "fuzz", MJPEG_MAX);
    let mut frame = Frame::with_capacity(0);
    let mut frames = Vec::new();
    // Each frame consumes at least its two start-marker bytes, so this bound is never the stop.
    for _ in 0..=data.len() / 2 {
        match stream.next_frame(&mut frame) {
            Ok(Next::Frame) => frames.push(frame.data.clone()),
            Ok(Next::End) => return frames,
            Ok(Next::Missing) => panic!("an MJPEG stream is never a missing camera"),
            Err(e) => panic!("reading from memory cannot fail: {e:#}"),
        }
    }
    panic!("the MJPEG stream did not end after {} frames from {} bytes", frames.len(), data.len());
}

/// The MJPEG splitter: the stream always ends, every frame starts with SOI (or is empty when it
/// was oversized) and stays within the size limit, frames appear in the order of the input, and
/// how the input is chunked changes nothing.
pub fn mjpeg_stream(data: &[u8]) {
    let frames = mjpeg_frames(data, usize::MAX);
    let mut rest = data;
    for f in &frames {
        assert!(f.len() <= MJPEG_MAX, "frame of {} bytes over the limit", f.len());
        if f.is_empty() {
            continue;
        }
        assert!(f.starts_with(&[0xFF, 0xD8]), "frame does not start with SOI");
        // A frame's bytes are a run of the input, after the previous frame's.
        let at = rest.windows(f.len()).position(|w| w == f.as_slice());
        let at = at.unwrap_or_else(|| panic!("a frame of {} bytes is not a run of the input after the previous frame", f.len()));
        rest = &rest[at + f.len()..];
    }
    for step in [1, 3, 64] {
        assert_eq!(mjpeg_frames(data, step), frames, "reading {step} bytes at a time changed the frames");
    }
    // Feeding the splitter directly in any chunking finds the same events.
    let events = |chunk: usize| {
        let mut s = JpegSplitter::default();
        let mut out = Vec::new();
        let mut pos = 0;
        for piece in data.chunks(chunk) {
            let mut at = 0;
            while at < piece.len() {
                let (n, found) = s.feed(&piece[at..]);
                assert!(n <= piece.len() - at);
                assert!(n > 0 || found.is_some(), "feed made no progress");
                at += n;
                if let Some(f) = found {
                    out.push((pos + at, f));
                }
            }
            pos += piece.len();
        }
        out
    };
    if !data.is_empty() {
        assert_eq!(events(1), events(data.len()), "splitter events depend on chunking");
    }
}

/// Images within the limits but above this many pixels are not decoded here: the code path is
/// the same as for small ones, and a fuzzer would spend its time filling large buffers.
const FUZZ_DECODE_PIXELS: u64 = 1 << 20;

/// A compressed frame (PNG or JPEG from a file, stdin or an upload): decoding returns an image
/// within the size limits or an error; the same bytes through `imageio::decode_image` (what
/// `infer` and `eval` use) agree on the size.
pub fn compressed_frame(data: &[u8]) {
    let claimed = image::ImageReader::new(std::io::Cursor::new(data)).with_guessed_format().ok().and_then(|r| r.into_dimensions().ok());
    if let Some((w, h)) = claimed {
        if check_size(w, h).is_ok() && u64::from(w) * u64::from(h) > FUZZ_DECODE_PIXELS {
            return;
        }
    }
    let mut frame = Frame::with_capacity(0);
    frame.format = PixelFormat::Encoded;
    frame.data.extend_from_slice(data);
    let mut img = RgbImage::new(1, 1);
    let decoded = FrameDecoder::default().decode(&frame, &mut img);
    if decoded.is_ok() {
        let (w, h) = img.dimensions();
        assert!(check_size(w, h).is_ok(), "a {w}x{h} image passed the decoder's limits");
    }
    if let Ok(image) = decode_image(data, "fuzz") {
        assert!(check_size(image.width(), image.height()).is_ok(), "decode_image passed {}x{}", image.width(), image.height());
        if decoded.is_ok() {
            assert_eq!((image.width(), image.height()), img.dimensions(), "the two decoders disagree on the size");
        }
    }
}

/// A V4L2 buffer → packed frame → RGB: the first 7 bytes choose the format (GREY, YUYV, RGB24),
/// width, height (1..=64) and bytes per line (0..=255); the rest is the driver's buffer. The copy
/// never exceeds the packed size, and a decoded image has the frame's size.
pub fn raw_frame(data: &[u8]) {
    let Some((head, buffer)) = data.split_first_chunk::<7>() else { return };
    let format = [PixelFormat::Gray8, PixelFormat::Yuyv, PixelFormat::Rgb24][usize::from(head[0] % 3)];
    let mut frame = Frame::with_capacity(0);
    frame.format = format;
    frame.width = u32::from(head[1] % 64) + 1;
    frame.height = u32::from(head[2] % 64) + 1;
    let bytes_per_line = u32::from(u16::from_le_bytes([head[3], head[4]]) % 256);
    copy_packed(&mut frame, buffer, bytes_per_line);
    let bpp = format.bytes_per_pixel().unwrap_or(1);
    let packed = frame.width as usize * frame.height as usize * bpp;
    assert!(frame.data.len() <= packed, "{} bytes copied for a {packed}-byte image", frame.data.len());
    assert_eq!(frame.data.len() % (frame.width as usize * bpp), 0, "a partial line was copied");
    let mut img = RgbImage::new(1, 1);
    if FrameDecoder::default().decode(&frame, &mut img).is_ok() {
        assert_eq!(img.dimensions(), (frame.width, frame.height));
        assert_eq!(frame.data.len(), packed, "a short frame decoded");
    }
}

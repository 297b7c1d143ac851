//! Image bombs: a few bytes claiming a huge image must be refused from the header, quickly and
//! without allocating its pixels, on every path outside images take (frames from files, stdin and
//! uploads through `FrameDecoder`; `infer`/`eval` inputs through `imageio`); and memory freed after
//! something large goes back to the OS instead of staying with the process.
//!
//! A counting global allocator records the peak of live heap bytes. One #[test] only: the
//! counter and the RSS are process-wide.

use edgeseg::frame::{Frame, PixelFormat};
use edgeseg::imageio::decode_image;
use edgeseg::model::heap;
use edgeseg::model::pixels::FrameDecoder;
use image::RgbImage;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct PeakCounting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for PeakCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: PeakCounting = PeakCounting;

/// Peak live heap bytes above the current level while `f` runs, and how long it took.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base, start.elapsed())
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A valid-looking PNG of `width`x`height` RGB whose only data is one stored zlib block of
/// one zero byte: 69 bytes in all, like the one that cost +240 MB.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter method, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // zlib header, one final stored block holding one zero byte, Adler-32 of that byte.
    chunk(&mut png, b"IDAT", &[0x78, 0x01, 0x01, 0x01, 0x00, 0xFE, 0xFF, 0, 0x00, 0x01, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A real 16x16 JPEG whose frame header (SOF0) is patched to claim `width`x`height`.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut j = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut j).encode_image(&RgbImage::new(16, 16)).unwrap();
    let sof = j.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG has SOF0");
    // FF C0, length (2), precision (1), height (2), width (2).
    j[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    j
}

fn frame(data: &[u8]) -> Frame {
    let mut f = Frame::with_capacity(0);
    f.format = PixelFormat::Encoded;
    f.data.extend_from_slice(data);
    f
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm has a resident field");
    pages * 4096
}

#[test]
fn image_bombs_are_refused_from_the_header_and_memory_goes_back() {
    let small_png = png_claiming(8192, 7500);
    assert_eq!(small_png.len(), 69);
    let bombs: [(&str, Vec<u8>); 4] = [
        ("69-byte PNG claiming 8192x7500", small_png),
        ("PNG claiming 100000x10", png_claiming(100_000, 10)),
        ("PNG claiming 2147483647x2147483647", png_claiming(i32::MAX as u32, i32::MAX as u32)),
        ("JPEG header claiming 65000x65000", jpeg_claiming(65000, 65000)),
    ];
    let mut decoder = FrameDecoder::default();
    let mut img = RgbImage::new(64, 48);
    for (what, bytes) in &bombs {
        // Frames from files, stdin and dashboard uploads.
        let f = frame(bytes);
        let (result, peak, took) = peak_during(|| decoder.decode(&f, &mut img));
        let e = format!("{:#}", result.expect_err(what));
        assert!(e.contains("exceeds the limit") && e.contains("fix:"), "{what}: {e}");
        assert!(peak < 1 << 20, "{what}: {peak} bytes allocated while refusing it");
        assert!(took < Duration::from_millis(200), "{what}: refusing took {took:?}");
        assert_eq!(img.dimensions(), (64, 48), "{what}: the frame buffer was resized for a refused image");
        // `infer`, `eval` and `bench` inputs.
        let (result, peak, _) = peak_during(|| decode_image(bytes, what));
        let e = format!("{:#}", result.expect_err(what));
        assert!(e.contains("exceeds the limit"), "{what}: {e}");
        assert!(peak < 1 << 20, "{what}: {peak} bytes allocated by decode_image while refusing it");
    }

    // A camera-sized image still decodes.
    let mut ok = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(RgbImage::new(640, 480)).write_to(&mut ok, image::ImageFormat::Png).unwrap();
    decoder.decode(&frame(ok.get_ref()), &mut img).expect("a 640x480 PNG decodes");
    assert_eq!(img.dimensions(), (640, 480));

    // Memory freed after something large goes back to the OS with heap::give_back, even where
    // glibc would keep it: freed blocks between live ones (a request's buffers freed while the
    // small allocations made after them live on) are not trimmed by glibc on its own.
    heap::retain_freed_tensors();
    let mut big = Vec::new();
    let mut small = Vec::new();
    for i in 0..64u8 {
        big.push(vec![i | 1; 4 << 20]);
        small.push(vec![i; 64]);
    }
    let touched: usize = big.iter().map(|b| b[b.len() / 2] as usize).sum();
    assert!(touched > 0);
    let with_blocks = rss_bytes();
    drop(big);
    let kept = rss_bytes();
    heap::give_back();
    let after = rss_bytes();
    eprintln!("RSS: {} MiB with 256 MiB of blocks, {} MiB after freeing them, {} MiB after give_back", with_blocks >> 20, kept >> 20, after >> 20);
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(after + (128 << 20) < kept, "give_back returned too little: {} MiB -> {} MiB", kept >> 20, after >> 20);
    }
    drop(small);
}

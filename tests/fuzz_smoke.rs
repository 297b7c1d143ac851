//! The fuzz targets' properties (`edgeseg::fuzzing`, run for long by cargo-fuzz in `fuzz/`)
//! on a seeded, bounded stream of mutated inputs, so every `cargo test` exercises them:
//! valid seeds (PNGs of every colour type, JPEGs, an MJPEG stream with an EXIF thumbnail,
//! raw camera buffers) with bytes flipped, inserted, deleted, spliced and truncated.
//! Each target runs for at most a second. `EDGESEG_FUZZ_SEEDS=DIR` also writes the seeds
//! to DIR/<target>/ (how fuzz/seeds was made).

use edgeseg::frame::{Frame, PixelFormat};
use edgeseg::fuzzing::{self, Rng};
use edgeseg::model::pixels::FrameDecoder;
use image::{DynamicImage, ImageFormat, RgbImage};
use std::io::Cursor;
use std::time::{Duration, Instant};

/// Byte sequences that matter to the decoders under test.
const TOKENS: [&[u8]; 8] = [b"\xFF\xD8", b"\xFF\xD9", b"\xFF\x00", b"\xFF\xDA\x00\x02", b"\xFF\xE1\xFF\xFF", b"\xFF\xFF", b"IDAT", b"\x00\x00\xFF\xFF"];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(d.len() + 1);
        let last = d.len().saturating_sub(1);
        match rng.below(6) {
            0 if !d.is_empty() => d[at.min(last)] ^= 1 << rng.below(8),
            1 if !d.is_empty() => d[at.min(last)] = rng.next_u64() as u8,
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                d.splice(at..at, t.iter().copied());
            }
            3 => {
                let end = (at + rng.below(64)).min(d.len());
                d.drain(at..end);
            }
            4 => d.truncate(at),
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let run = &other[from..(from + rng.below(256)).min(other.len())];
                d.splice(at..at, run.iter().copied());
            }
        }
    }
    d
}

/// Run `check` on the seeds, then on mutations until `budget` is spent; returns how many ran.
fn run(name: &str, seeds: &[Vec<u8>], budget: Duration, check: fn(&[u8])) -> u64 {
    if let Some(dir) = std::env::var_os("EDGESEG_FUZZ_SEEDS") {
        let dir = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
        }
    }
    for s in seeds {
        check(s);
    }
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    let start = Instant::now();
    let mut n = seeds.len() as u64;
    // At least 1000 inputs however loaded the machine, then on until the budget is spent.
    while n < 200_000 && (n < 1000 || start.elapsed() < budget) {
        let input = if rng.below(16) == 0 { (0..rng.below(512)).map(|_| rng.next_u64() as u8).collect() } else { mutate(&mut rng, seeds) };
        check(&input);
        n += 1;
    }
    eprintln!("{name}: {n} inputs in {:.2} s", start.elapsed().as_secs_f64());
    n
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encoding a small test image");
    out.into_inner()
}

fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 13) as u8, (y * 7) as u8, ((x + y) * 5) as u8]))
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(picture(w, h)), ImageFormat::Jpeg)
}

/// A JPEG whose APP1 (EXIF) segment holds a whole thumbnail JPEG.
fn jpeg_with_thumbnail() -> Vec<u8> {
    let thumb = jpeg(8, 8);
    let main = jpeg(24, 16);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&u16::try_from(8 + thumb.len()).unwrap().to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&thumb);
    out.extend_from_slice(&main[2..]);
    out
}

fn compressed_seeds() -> Vec<Vec<u8>> {
    let rgb = DynamicImage::ImageRgb8(picture(12, 9));
    vec![
        encode(rgb.clone(), ImageFormat::Png),
        encode(DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Png),
        encode(DynamicImage::ImageLumaA8(rgb.to_luma_alpha8()), ImageFormat::Png),
        encode(DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Png),
        encode(DynamicImage::ImageRgb16(rgb.to_rgb16()), ImageFormat::Png),
        jpeg(12, 9),
        encode(DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Jpeg),
        jpeg_with_thumbnail(),
    ]
}

#[test]
fn mjpeg_splitter_properties_hold_on_mutated_streams() {
    let mut stream = jpeg(16, 8);
    stream.extend_from_slice(b"\0\0garbage");
    stream.extend_from_slice(&jpeg_with_thumbnail());
    stream.extend_from_slice(&jpeg(8, 8));
    let seeds = vec![stream, jpeg_with_thumbnail(), b"\xFF\xD8\xFF\xDA\x00\x02\x12\xFF\x00\xFF\xD3\x34\xFF\xD9".to_vec()];
    run("mjpeg_stream", &seeds, Duration::from_secs(1), fuzzing::mjpeg_stream);
}

#[test]
fn frame_decoders_return_errors_not_panics_on_mutated_images() {
    run("compressed_frame", &compressed_seeds(), Duration::from_secs(1), fuzzing::compressed_frame);
}

#[test]
fn v4l2_buffer_conversion_properties_hold_on_random_buffers() {
    // format, width, height, bytes per line (two bytes), two unused, then the buffer.
    let raw = |head: [u8; 7], len: usize| {
        let mut v = head.to_vec();
        v.extend((0..len).map(|i| (i * 31 % 256) as u8));
        v
    };
    let seeds = vec![raw([0, 7, 4, 16, 0, 0, 0], 64), raw([1, 9, 3, 40, 0, 0, 0], 120), raw([2, 5, 5, 15, 0, 0, 0], 75), raw([1, 3, 2, 0, 0, 0, 0], 10)];
    run("raw_frame", &seeds, Duration::from_secs(1), fuzzing::raw_frame);
}

/// Found by `cargo fuzz run compressed_frame` (2026-12-07): zune-jpeg 0.5.15's AVX2 IDCT
/// unwraps an out-of-range row on this 619-byte JPEG. Both decoders must return an error
/// (before: `edgeseg infer` died with the panic, and a frame or upload took its thread).
#[test]
fn jpeg_that_panics_the_decoder_crate_is_an_error() {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/compressed_frame/zune_idct_panic.jpg")).unwrap();
    let file = edgeseg::imageio::decode_image(&data, "crash.jpg");
    let mut frame = Frame::with_capacity(0);
    frame.format = PixelFormat::Encoded;
    frame.data.extend_from_slice(&data);
    let mut img = RgbImage::new(1, 1);
    let camera = FrameDecoder::default().decode(&frame, &mut img);
    // Other CPUs take other IDCTs, which may decode this garbage to some image.
    let avx2 = cfg!(target_arch = "x86_64") && {
        #[cfg(target_arch = "x86_64")]
        let detected = std::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let detected = false;
        detected
    };
    if avx2 {
        let e = format!("{:#}", file.unwrap_err());
        assert!(e.contains("crash.jpg") && e.contains("decoder failed"), "{e}");
        assert!(format!("{:#}", camera.unwrap_err()).contains("decoder failed"));
    }
}

//! A driver buffer → a packed `Frame`.
//!
//! Drivers may pad every line of a raw image (`bytesperline` > width × bytes per
//! pixel: ISPs and capture cards align lines to 32 or 64 bytes). `Frame` holds
//! raw images packed, so the padding is dropped line by line while copying out
//! of the driver's buffer; that copy happens anyway, and reuses the frame's
//! capacity, so it allocates nothing in the steady state.

use crate::frame::Frame;

/// Copy `data` (one dequeued buffer of `format`) into `frame.data`. Raw formats are packed to
/// `width * bytes_per_pixel` per line, reading lines `bytes_per_line` apart (0, or less than a
/// packed line, means packed). A buffer too short for its lines yields the complete lines only:
/// the decoder then counts the frame as corrupt. Compressed data is copied as is.
pub fn copy_packed(frame: &mut Frame, data: &[u8], bytes_per_line: u32) {
    frame.data.clear();
    let Some(bpp) = frame.format.bytes_per_pixel() else {
        frame.data.extend_from_slice(data);
        return;
    };
    let row = frame.width as usize * bpp;
    let stride = (bytes_per_line as usize).max(row);
    if row == 0 {
        return;
    }
    if stride == row {
        let lines = (data.len() / row).min(frame.height as usize);
        frame.data.extend_from_slice(&data[..lines * row]);
        return;
    }
    for line in data.chunks(stride).take(frame.height as usize) {
        let Some(pixels) = line.get(..row) else { break };
        frame.data.extend_from_slice(pixels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;
    use crate::model::pixels::FrameDecoder;
    use image::RgbImage;

    fn frame(format: PixelFormat, width: u32, height: u32) -> Frame {
        let mut f = Frame::with_capacity(0);
        f.format = format;
        f.width = width;
        f.height = height;
        f
    }

    /// A 3x2 GREY image with lines padded to 8 bytes (pad bytes 0xEE), as a driver aligning
    /// lines would deliver it: the padding must not shear the image.
    #[test]
    fn padded_grey_lines_are_packed() {
        let buffer = [10, 11, 12, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 20, 21, 22, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE];
        let mut f = frame(PixelFormat::Gray8, 3, 2);
        copy_packed(&mut f, &buffer, 8);
        assert_eq!(f.data, [10, 11, 12, 20, 21, 22]);
        let mut img = RgbImage::new(1, 1);
        FrameDecoder::default().decode(&f, &mut img).unwrap();
        assert_eq!(img.get_pixel(0, 1).0, [20, 20, 20], "line 2 starts at its own first pixel");
    }

    /// YUYV and RGB24 with padding: decoding the packed copy equals decoding the unpadded image.
    #[test]
    fn padded_yuyv_and_rgb_decode_like_unpadded() {
        for (format, bpp) in [(PixelFormat::Yuyv, 2usize), (PixelFormat::Rgb24, 3)] {
            let (w, h, stride) = (6u32, 5u32, 64usize);
            let row = w as usize * bpp;
            let packed: Vec<u8> = (0..row * h as usize).map(|i| (i * 37 % 251) as u8).collect();
            let mut padded = vec![0xEEu8; stride * h as usize];
            for y in 0..h as usize {
                padded[y * stride..y * stride + row].copy_from_slice(&packed[y * row..(y + 1) * row]);
            }
            let mut decoder = FrameDecoder::default();
            let (mut want, mut got) = (RgbImage::new(1, 1), RgbImage::new(1, 1));
            let mut f = frame(format, w, h);
            copy_packed(&mut f, &packed, 0);
            decoder.decode(&f, &mut want).unwrap();
            copy_packed(&mut f, &padded, stride as u32);
            assert_eq!(f.data, packed, "{format:?}");
            decoder.decode(&f, &mut got).unwrap();
            assert_eq!(got, want, "{format:?}");
        }
    }

    #[test]
    fn short_buffers_keep_whole_lines_only_and_fail_to_decode() {
        let mut f = frame(PixelFormat::Gray8, 4, 3);
        copy_packed(&mut f, &[1, 2, 3, 4, 0, 0, 5, 6, 7], 6);
        assert_eq!(f.data, [1, 2, 3, 4]);
        assert!(FrameDecoder::default().decode(&f, &mut RgbImage::new(1, 1)).is_err());
        // A line length shorter than the pixels (a driver bug) is read as packed.
        let mut f = frame(PixelFormat::Gray8, 2, 2);
        copy_packed(&mut f, &[1, 2, 3, 4], 1);
        assert_eq!(f.data, [1, 2, 3, 4]);
    }

    #[test]
    fn compressed_frames_are_copied_whole() {
        let mut f = frame(PixelFormat::Mjpeg, 640, 480);
        copy_packed(&mut f, &[0xFF, 0xD8, 1, 2, 0xFF, 0xD9], 0);
        assert_eq!(f.data, [0xFF, 0xD8, 1, 2, 0xFF, 0xD9]);
    }
}

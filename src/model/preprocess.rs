//! Image → input tensor: colour conversion, resize (stretch or letterbox),
//! normalisation and layout, in that order and in float32, exactly as
//! `scripts/dataset.py` does for training and evaluation.

use super::meta::{ColorMode, Layout, ModelMeta, ResizeMode};
use image::{imageops, DynamicImage, GrayImage, RgbImage};
use tract_onnx::prelude::*;

/// How model-input pixels map back to source pixels:
/// `source = (input - pad) / scale` on each axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    pub src_width: usize,
    pub src_height: usize,
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

/// Letterbox padding value, the one ultralytics uses.
const LETTERBOX_FILL: u8 = 114;

/// ITU-R BT.601 luma with PIL's fixed-point rounding (`Image.convert("L")`),
/// so that edgeseg and the Python tools see the same gray pixels.
#[inline]
pub fn luma_bt601(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Gray conversion as PIL: gray sources pass through, colour sources use BT.601.
pub fn to_gray(img: &DynamicImage) -> GrayImage {
    match img {
        DynamicImage::ImageLuma8(g) => g.clone(),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA16(_) => img.to_luma8(),
        _ => {
            let rgb = img.to_rgb8();
            let (w, h) = rgb.dimensions();
            let data = rgb.pixels().map(|p| luma_bt601(p[0], p[1], p[2])).collect();
            // The buffer has exactly w*h bytes: one per source pixel.
            GrayImage::from_raw(w, h, data).expect("w*h luma bytes")
        }
    }
}

/// Source pixels in the model's colour order, one plane per channel, row-major.
enum Pixels {
    Gray(GrayImage),
    Rgb(RgbImage),
}

impl Pixels {
    fn dims(&self) -> (u32, u32) {
        match self {
            Pixels::Gray(g) => g.dimensions(),
            Pixels::Rgb(c) => c.dimensions(),
        }
    }
}

fn geometry(meta: &ModelMeta, src_w: usize, src_h: usize) -> Geometry {
    let (tw, th) = (meta.width as f32, meta.height as f32);
    let (sw, sh) = (src_w as f32, src_h as f32);
    match meta.resize {
        ResizeMode::Stretch => Geometry { src_width: src_w, src_height: src_h, scale_x: tw / sw, scale_y: th / sh, pad_x: 0.0, pad_y: 0.0 },
        ResizeMode::Letterbox => {
            let s = (tw / sw).min(th / sh);
            let (nw, nh) = ((sw * s).round(), (sh * s).round());
            Geometry {
                src_width: src_w,
                src_height: src_h,
                scale_x: s,
                scale_y: s,
                pad_x: ((tw - nw) / 2.0).floor(),
                pad_y: ((th - nh) / 2.0).floor(),
            }
        }
    }
}

/// Resize (and pad) source pixels to the model input size.
fn fit(pixels: Pixels, meta: &ModelMeta, geo: &Geometry) -> Pixels {
    let (w, h) = pixels.dims();
    let (tw, th) = (meta.width as u32, meta.height as u32);
    if (w, h) == (tw, th) {
        return pixels;
    }
    let filter = imageops::FilterType::Triangle;
    match meta.resize {
        ResizeMode::Stretch => match pixels {
            Pixels::Gray(g) => Pixels::Gray(imageops::resize(&g, tw, th, filter)),
            Pixels::Rgb(c) => Pixels::Rgb(imageops::resize(&c, tw, th, filter)),
        },
        ResizeMode::Letterbox => {
            let nw = ((w as f32 * geo.scale_x).round() as u32).clamp(1, tw);
            let nh = ((h as f32 * geo.scale_y).round() as u32).clamp(1, th);
            let (px, py) = (geo.pad_x as i64, geo.pad_y as i64);
            match pixels {
                Pixels::Gray(g) => {
                    let mut canvas = GrayImage::from_pixel(tw, th, image::Luma([LETTERBOX_FILL]));
                    imageops::replace(&mut canvas, &imageops::resize(&g, nw, nh, filter), px, py);
                    Pixels::Gray(canvas)
                }
                Pixels::Rgb(c) => {
                    let fill = image::Rgb([LETTERBOX_FILL; 3]);
                    let mut canvas = RgbImage::from_pixel(tw, th, fill);
                    imageops::replace(&mut canvas, &imageops::resize(&c, nw, nh, filter), px, py);
                    Pixels::Rgb(canvas)
                }
            }
        }
    }
}

/// Build the model's input tensor from a decoded image.
pub fn preprocess(img: &DynamicImage, meta: &ModelMeta) -> (Tensor, Geometry) {
    let geo = geometry(meta, img.width() as usize, img.height() as usize);
    let pixels = match meta.color {
        ColorMode::Gray => Pixels::Gray(to_gray(img)),
        ColorMode::Rgb | ColorMode::Bgr => Pixels::Rgb(img.to_rgb8()),
    };
    let pixels = fit(pixels, meta, &geo);
    let (w, h) = (meta.width, meta.height);
    let c = meta.channels();
    let mut data = vec![0f32; c * h * w];
    // Per-channel (x/255 - mean)/std, computed in f32 like numpy does.
    let norm = |v: u8, ch: usize| (v as f32 / 255.0 - meta.mean[ch]) / meta.std[ch];
    match (&pixels, meta.layout) {
        (Pixels::Gray(g), _) => {
            for (dst, p) in data.iter_mut().zip(g.as_raw()) {
                *dst = norm(*p, 0);
            }
        }
        (Pixels::Rgb(rgb), layout) => {
            let order: [usize; 3] = if meta.color == ColorMode::Bgr { [2, 1, 0] } else { [0, 1, 2] };
            for (i, p) in rgb.pixels().enumerate() {
                for (ch, &src) in order.iter().enumerate() {
                    let v = norm(p[src], ch);
                    match layout {
                        Layout::Nchw => data[ch * h * w + i] = v,
                        Layout::Nhwc => data[i * 3 + ch] = v,
                    }
                }
            }
        }
    }
    let shape: [usize; 4] = match meta.layout {
        Layout::Nchw => [1, c, h, w],
        Layout::Nhwc => [1, h, w, c],
    };
    // The buffer was sized as the product of this shape just above.
    let tensor = Tensor::from_shape(&shape, &data).expect("buffer matches shape");
    (tensor, geo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::meta::{resolve, GraphShapes, MetaOverrides};
    use std::collections::HashMap;

    fn meta(resize: &str, color: &str) -> ModelMeta {
        let props: HashMap<String, String> = [("edgeseg.resize", resize), ("edgeseg.color", color), ("edgeseg.mean", "[0.5]"), ("edgeseg.std", "[0.25]")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = if color == "gray" { 1 } else { 3 };
        let shapes = GraphShapes { input: vec![Some(1), Some(c), Some(64), Some(64)], output: vec![Some(1), Some(2), Some(64), Some(64)] };
        resolve(&props, &shapes, &MetaOverrides::default()).unwrap()
    }

    #[test]
    fn luma_matches_pil_fixed_point() {
        // Values from PIL: Image.new("RGB", (1, 1), rgb).convert("L").getpixel((0, 0)).
        assert_eq!(luma_bt601(255, 0, 0), 76);
        assert_eq!(luma_bt601(0, 255, 0), 150);
        assert_eq!(luma_bt601(0, 0, 255), 29);
        assert_eq!(luma_bt601(10, 200, 30), 124);
        assert_eq!(luma_bt601(255, 255, 255), 255);
    }

    #[test]
    fn normalises_in_nchw() {
        let img = DynamicImage::ImageLuma8(GrayImage::from_pixel(64, 64, image::Luma([255])));
        let (t, geo) = preprocess(&img, &meta("stretch", "gray"));
        assert_eq!(t.shape(), &[1, 1, 64, 64]);
        let plain = t.try_as_plain_ram().unwrap();
        let v: &[f32] = plain.as_slice().unwrap();
        assert!(v.iter().all(|&x| (x - 2.0).abs() < 1e-6)); // (1 - 0.5) / 0.25
        assert_eq!((geo.scale_x, geo.pad_x), (1.0, 0.0));
    }

    #[test]
    fn letterbox_keeps_aspect_and_pads() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(128, 64, image::Rgb([0, 0, 0])));
        let (t, geo) = preprocess(&img, &meta("letterbox", "rgb"));
        assert_eq!(t.shape(), &[1, 3, 64, 64]);
        assert_eq!((geo.scale_x, geo.scale_y, geo.pad_x, geo.pad_y), (0.5, 0.5, 0.0, 16.0));
        let plain = t.try_as_plain_ram().unwrap();
        let v: &[f32] = plain.as_slice().unwrap();
        let fill = (114.0 / 255.0 - 0.5) / 0.25;
        assert!((v[0] - fill).abs() < 1e-6, "top padding row");
        assert!((v[32 * 64] - (-2.0)).abs() < 1e-6, "image row is black");
    }
}

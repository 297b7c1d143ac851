//! Image → input tensor: colour conversion, resize (stretch or letterbox),
//! normalisation and layout, in that order and in float32, exactly as
//! `scripts/dataset.py` does for training and evaluation.

use super::meta::{ColorMode, Layout, ModelMeta, ResizeMode};
use super::resample::Resampler;
use super::resample_cv::CvResampler;
use image::{DynamicImage, RgbImage};
#[cfg(test)]
use image::GrayImage;
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

/// Buffers reused from frame to frame, so preprocessing a stream allocates nothing.
#[derive(Default)]
pub struct PreprocessScratch {
    gray: Vec<u8>,
    resized: Vec<u8>,
    canvas: Vec<u8>,
    resampler: Resampler,
    cv_resampler: CvResampler,
}

/// The input tensor's shape for this model.
pub fn input_shape(meta: &ModelMeta) -> [usize; 4] {
    let (w, h, c) = (meta.width, meta.height, meta.channels());
    match meta.layout {
        Layout::Nchw => [1, c, h, w],
        Layout::Nhwc => [1, h, w, c],
    }
}

/// A zeroed input tensor to fill with `preprocess_into`.
pub fn new_input_tensor(meta: &ModelMeta) -> Tensor {
    let shape = input_shape(meta);
    // A zeroed f32 tensor of a concrete shape cannot fail to build.
    Tensor::zero::<f32>(&shape).expect("concrete f32 shape")
}

/// Fill `tensor` (from `new_input_tensor`) with `rgb` converted, resized, padded
/// and normalised for the model. Returns how input pixels map back to the source.
pub fn preprocess_into(rgb: &RgbImage, meta: &ModelMeta, tensor: &mut Tensor, s: &mut PreprocessScratch) -> anyhow::Result<Geometry> {
    let (sw, sh) = (rgb.width() as usize, rgb.height() as usize);
    let geo = geometry(meta, sw, sh);
    let c = meta.channels();
    let (tw, th) = (meta.width, meta.height);
    let PreprocessScratch { gray, resized, canvas, resampler, cv_resampler } = s;
    let src: &[u8] = if meta.color == ColorMode::Gray {
        gray.clear();
        gray.extend(rgb.as_raw().chunks_exact(3).map(|p| luma_bt601(p[0], p[1], p[2])));
        gray
    } else {
        rgb.as_raw()
    };
    let fitted: &[u8] = if (sw, sh) == (tw, th) {
        src
    } else {
        match meta.resize {
            ResizeMode::Stretch => {
                canvas.resize(tw * th * c, 0);
                resampler.resize(src, sw, sh, c, canvas, tw, th);
            }
            ResizeMode::Letterbox => {
                let nw = ((sw as f32 * geo.scale_x).round() as usize).clamp(1, tw);
                let nh = ((sh as f32 * geo.scale_y).round() as usize).clamp(1, th);
                let (px, py) = (geo.pad_x as usize, geo.pad_y as usize);
                resized.resize(nw * nh * c, 0);
                // Letterbox is ultralytics' convention, and ultralytics resizes with OpenCV.
                cv_resampler.resize(src, sw, sh, c, resized, nw, nh);
                canvas.clear();
                canvas.resize(tw * th * c, LETTERBOX_FILL);
                for y in 0..nh {
                    let dst = ((py + y) * tw + px) * c;
                    canvas[dst..dst + nw * c].copy_from_slice(&resized[y * nw * c..(y + 1) * nw * c]);
                }
            }
        }
        canvas
    };
    let mut view = tensor.try_as_plain_ram_mut()?;
    let data: &mut [f32] = view.as_slice_mut()?;
    if data.len() != tw * th * c {
        anyhow::bail!("input tensor holds {} values, the model needs {}", data.len(), tw * th * c);
    }
    // Per-channel (x/255 - mean)/std, computed in f32 like numpy does.
    let norm = |v: u8, ch: usize| (v as f32 / 255.0 - meta.mean[ch]) / meta.std[ch];
    let plane = tw * th;
    if c == 1 {
        for (dst, &p) in data.iter_mut().zip(fitted) {
            *dst = norm(p, 0);
        }
    } else {
        let order: [usize; 3] = if meta.color == ColorMode::Bgr { [2, 1, 0] } else { [0, 1, 2] };
        for (i, p) in fitted.chunks_exact(3).enumerate() {
            for (ch, &from) in order.iter().enumerate() {
                let v = norm(p[from], ch);
                match meta.layout {
                    Layout::Nchw => data[ch * plane + i] = v,
                    Layout::Nhwc => data[i * 3 + ch] = v,
                }
            }
        }
    }
    Ok(geo)
}

/// Build the model's input tensor from a decoded image (one-off; streams use `preprocess_into`).
pub fn preprocess(img: &DynamicImage, meta: &ModelMeta) -> (Tensor, Geometry) {
    let rgb = img.to_rgb8();
    let mut tensor = new_input_tensor(meta);
    // The tensor was made for this model just above, so its size matches.
    let geo = preprocess_into(&rgb, meta, &mut tensor, &mut PreprocessScratch::default()).expect("tensor made for this model");
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
        let shapes = GraphShapes { input: vec![Some(1), Some(c), Some(64), Some(64)], output: vec![Some(1), Some(2), Some(64), Some(64)], output_op: None };
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

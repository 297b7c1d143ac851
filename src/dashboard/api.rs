//! `POST /api/segment`: an image in, the frame report out (with the mask as
//! PNG on request; COCO RLE is always in `classes[].rle`).
//!
//! It runs on its own network instance, loaded a second time from the same
//! model file when the dashboard starts: the pipeline's instance lives on the
//! inference thread and is busy with the camera, and sharing it would stall
//! the line behind an upload. Uploads are judged one at a time.

use super::http::HttpError;
use super::state::lock;
use crate::decide::Decider;
use crate::frame::{Frame, PixelFormat};
use crate::model::Model;
use crate::pipeline::process::{FrameError, FrameProcessor, FrameResult};
use std::sync::Mutex;

struct Work {
    processor: FrameProcessor,
    result: FrameResult,
    frame: Frame,
}

pub struct Segmenter {
    work: Mutex<Work>,
}

impl Segmenter {
    pub fn new(model: Model, decider: Decider, device: &str) -> Segmenter {
        let processor = FrameProcessor::new(Box::new(model), decider, device);
        let mut frame = Frame::with_capacity(0);
        frame.format = PixelFormat::Encoded;
        Segmenter { work: Mutex::new(Work { processor, result: FrameResult::new(), frame }) }
    }

    /// Judge one uploaded image. `content_type` must be image/png or image/jpeg.
    pub fn segment(&self, content_type: Option<&str>, body: &[u8], mask_png: bool) -> Result<serde_json::Value, HttpError> {
        let ctype = upload_type(content_type)?;
        if body.is_empty() {
            return Err(HttpError::new(400, "the body is empty", "send the image file as the request body"));
        }
        let mut w = lock(&self.work);
        let Work { processor, result, frame } = &mut *w;
        frame.data.clear();
        frame.data.extend_from_slice(body);
        frame.seq += 1;
        frame.captured_unix_us = crate::frame::unix_us_now();
        frame.set_origin("upload");
        let outcome = processor.process(frame, result, 0.0, 0.0);
        frame.data = Vec::new();
        // The body (up to 16 MiB) and the decode buffers of a large image are free now: return
        // them to the OS rather than keep them for an upload that may never come.
        crate::model::heap::give_back();
        match outcome {
            Ok(()) => {}
            Err(FrameError::Corrupt(e)) => {
                return Err(HttpError::new(422, format!("the body is not a decodable image: {e:#}"), format!("send a complete {ctype} file")));
            }
            Err(FrameError::Model(e)) => {
                return Err(HttpError::new(500, format!("the model failed: {e:#}"), "check the server log; the model may not suit this image"));
            }
        }
        result.report.emitted_unix_us = crate::frame::unix_us_now();
        let mut doc = serde_json::to_value(&result.report).map_err(|e| HttpError::new(500, format!("cannot serialise the report: {e}"), "report this as a bug"))?;
        if mask_png {
            let png = mask_png_bytes(&result.map).map_err(|e| HttpError::new(500, format!("cannot encode the mask: {e}"), "report this as a bug"))?;
            doc["mask_png_base64"] = serde_json::Value::String(super::base64::encode(&png));
        }
        Ok(doc)
    }
}

/// The upload's media type, lower case, when it is one we judge (checked from the head, before the body is read).
pub fn upload_type(content_type: Option<&str>) -> Result<String, HttpError> {
    let ctype = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(ctype.as_str(), "image/png" | "image/jpeg" | "image/jpg") {
        return Err(HttpError::new(
            415,
            format!("Content-Type {:?} is not accepted", content_type.unwrap_or("(none)")),
            "send a PNG or JPEG with Content-Type: image/png or image/jpeg (curl --data-binary @part.png -H 'Content-Type: image/png')",
        ));
    }
    Ok(ctype)
}

/// The class map as an 8-bit grayscale PNG (pixel value = class id).
pub fn mask_png_bytes(map: &crate::mask::SegMap) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(enc, &map.classes, map.width as u32, map.height as u32, image::ExtendedColorType::L8)?;
    Ok(out)
}

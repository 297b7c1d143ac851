//! Harnesses that feed arbitrary bytes to the readers of outside input the
//! way the daemon and the CLI reach them: a board config, a COCO ground-truth
//! file with its RLE masks, an ONNX file's metadata, shapes and the graph the
//! load-time rewrites walk. Each must return for every input (an error is
//! fine) and never panic, abort or allocate without bound. `fuzz/` drives them
//! with cargo-fuzz (targets `config`, `coco_rle`, `onnx_meta`);
//! `tests/fuzz_inputs.rs` drives them with seeded random inputs in every `cargo test`.

use crate::model::load::declared_dims;
use crate::config::{bounds, Config};
use crate::eval::coco_file::CocoFile;
use crate::mask::rle::{decompress_counts, CocoRle};
use crate::model::meta::{self, GraphShapes, MetaOverrides};
use crate::source::{Pacer, SourceConfig};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use tract_onnx::prelude::Framework;

/// TOML → `Config::parse` (the check `run --check` runs), then what the daemon
/// derives from an accepted config before the first frame.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = Config::parse(text) else { return };
    let _ = Instant::now() + bounds::duration_s(c.pipeline.stats_interval_s);
    let _ = Instant::now() + bounds::duration_s(c.pipeline.stall_timeout_s);
    let fps = match &c.source {
        SourceConfig::Sample(s) => s.fps,
        SourceConfig::Dir(d) => d.fps,
        _ => 0.0,
    };
    let mut pacer = Pacer::new(fps);
    if pacer.is_paced() {
        // The first wait never sleeps; the second schedules `now + period`.
        pacer.wait();
        let _ = Instant::now() + bounds::duration_s(1.0 / fps);
    }
}

/// COCO JSON → `CocoFile::parse` (ids, categories, sizes), the masks decoded
/// as `eval` does, and the bytes as a compressed RLE string on their own.
pub fn coco_rle(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = decompress_counts(text);
    let path = Path::new("fuzz.json");
    let Ok(coco) = CocoFile::parse(text, path) else { return };
    for a in coco.annotations.iter().take(4) {
        let _ = a.segmentation.area();
        if let Ok(mask) = a.segmentation.decode() {
            let [h, w] = a.segmentation.size;
            let again = CocoRle::encode(&mask, w, h);
            assert_eq!(again.decode().ok().as_deref(), Some(&mask[..]), "RLE round trip");
        }
    }
    if let Some(img) = coco.images.first() {
        let _ = coco.check_image_size(path, img.id, img.width.unwrap_or(1), img.height.unwrap_or(1));
    }
}

/// ONNX bytes → protobuf, the metadata and shapes `meta::resolve` combines, and
/// the load-time rewrites of the graph (which once indexed past a node's inputs).
pub fn onnx_meta(data: &[u8]) {
    let onnx = tract_onnx::onnx();
    let Ok(mut proto) = onnx.proto_model_for_read(&mut &data[..]) else { return };
    let mut props: HashMap<String, String> = proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
    let mut shapes = GraphShapes::default();
    if let Some(g) = &proto.graph {
        shapes.input = g.input.first().map(declared_dims).unwrap_or_default();
        shapes.output = g.output.first().map(declared_dims).unwrap_or_default();
    }
    if crate::model::ultralytics::translate(&mut props).is_ok() {
        let _ = meta::resolve(&props, &shapes, &MetaOverrides::default());
    }
    if let Some(graph) = proto.graph.as_mut() {
        let provider = onnx.provider.clone();
        let resolve = move |t: &tract_onnx::pb::TensorProto| tract_onnx::tensor::load_tensor(&*provider, t, None);
        // In the loader's order: half widening, QOperator to QDQ, then the convolution rewrites.
        crate::model::half::widen(graph);
        let _ = crate::model::qop::rewrite(graph, &resolve);
        let _ = crate::model::qdq::rewrite(graph, &resolve);
        let _ = crate::model::fconv::rewrite(graph, &resolve);
    }
}


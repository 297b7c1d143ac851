//! The fuzz harnesses (`edgeseg::input_checks`, driven by cargo-fuzz in
//! `fuzz/`) on seeded random inputs, bounded to about a second each, in every
//! `cargo test`: mutated board configs, generated COCO files with RLE masks,
//! generated ONNX protobufs. A panic anywhere fails the test with the seed and
//! the input that caused it.

use edgeseg::fuzzing::Rng;
use prost::Message;
use std::time::{Duration, Instant};
use tract_onnx::pb;

const BUDGET: Duration = Duration::from_millis(1200);
const MAX_CASES: usize = 20_000;
/// Cases run however slow the machine: a loaded CI runner tests no less than this.
const MIN_CASES: usize = 200;

/// Run `check` on generated inputs: at least MIN_CASES, then on until the budget is spent;
/// report the failing input.
fn drive(name: &str, seed: u64, mut make: impl FnMut(&mut Rng) -> Vec<u8>, check: fn(&[u8])) -> usize {
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut n = 0;
    while n < MAX_CASES && (n < MIN_CASES || start.elapsed() < BUDGET) {
        let input = make(&mut rng);
        if std::panic::catch_unwind(|| check(&input)).is_err() {
            panic!("{name}: case {n} of seed {seed:#x} panicked; input ({} bytes): {:?}", input.len(), String::from_utf8_lossy(&input));
        }
        n += 1;
    }
    eprintln!("{name}: {n} cases in {:?}", start.elapsed());
    n
}

const EXTREMES: &[&str] = &[
    "inf", "-inf", "nan", "1e308", "1e-300", "-1", "0", "0.0", "18446744073709551615", "9223372036854775807", "-9223372036854775808", "1e19",
    "4294967296", "65536", "\"\"", "\"x\"", "[]", "[[0, 0], [1e308, -1]]", "true",
];

const KEYS: &[(&str, &str)] = &[
    ("pipeline", "stats_interval_s"),
    ("pipeline", "stall_timeout_s"),
    ("pipeline", "max_frames"),
    ("source", "fps"),
    ("source", "frame_timeout_ms"),
    ("source", "reconnect_max_s"),
    ("source", "buffers"),
    ("source", "width"),
    ("source", "max_frame_bytes"),
    ("model", "threads"),
    ("decide", "min_score"),
    ("decide", "min_area"),
    ("decide", "roi"),
    ("sinks.archive", "quota_mib"),
    ("sinks.archive", "jpeg_quality"),
    ("sinks.mqtt", "keep_alive_s"),
    ("sinks.mqtt", "queue_limit"),
    ("sinks.mqtt", "max_message_kib"),
    ("sinks.mqtt", "qos"),
    ("sinks.gpio", "reject_width_ms"),
    ("sinks.gpio", "heartbeat_ms"),
    ("dashboard", "stream_fps"),
    ("dashboard", "failures_kept"),
];

fn board_configs() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    v.push(String::new());
    v.push("[source]\nkind = \"sample\"\n[sinks.archive]\ndir = \"a\"\n[sinks.mqtt]\nurl = \"mqtt://h\"\n[dashboard]\n".into());
    v
}

fn mutate_config(rng: &mut Rng, bases: &[String]) -> Vec<u8> {
    let mut text = rng.pick(bases).clone();
    for _ in 0..1 + rng.below(3) {
        match rng.below(4) {
            0 => {
                // A numeric value replaced with an extreme one.
                let spots: Vec<usize> = text.match_indices(" = ").map(|(i, _)| i + 3).filter(|&i| text[i..].starts_with(|c: char| c.is_ascii_digit() || c == '-')).collect();
                if let Some(&at) = spots.get(rng.below(spots.len().max(1))) {
                    let end = text[at..].find('\n').map_or(text.len(), |e| at + e);
                    let extreme: &&str = rng.pick(EXTREMES);
                    text.replace_range(at..end, extreme);
                }
            }
            1 => {
                let (table, key) = *rng.pick(KEYS);
                text.push_str(&format!("\n[{table}]\n{key} = {}\n", rng.pick(EXTREMES)));
            }
            2 if !text.is_empty() => {
                let at = rng.below(text.len());
                if text.is_char_boundary(at) {
                    text.insert(at, *rng.pick(&['=', '[', ']', '"', '\n', '#', '.', '0', 'e']));
                }
            }
            _ => {
                let at = rng.below(text.len() + 1);
                if text.is_char_boundary(at) {
                    text.truncate(at);
                }
            }
        }
    }
    text.into_bytes()
}

#[test]
fn config_parser_survives_random_configs() {
    let bases = board_configs();
    drive("config", 0xC0FF_1CE5, |rng| mutate_config(rng, &bases), edgeseg::input_checks::config);
}

fn random_counts(rng: &mut Rng, pixels: u64) -> String {
    match rng.below(4) {
        // Runs that add up to the size: a decodable mask.
        0 if pixels < 1 << 16 => {
            let mut left = pixels as u32;
            let mut runs = Vec::new();
            while left > 0 {
                let r = (1 + rng.below(left as usize)) as u32;
                runs.push(r);
                left -= r;
            }
            edgeseg::mask::rle::compress_counts(&runs)
        }
        // Huge runs: a few characters that claim billions of pixels.
        1 => edgeseg::mask::rle::compress_counts(&[u32::MAX, u32::MAX, rng.next_u64() as u32]),
        2 => (0..rng.below(12)).map(|_| (48 + rng.below(80)) as u8 as char).filter(|c| *c != '"' && *c != '\\').collect(),
        _ => String::new(),
    }
}

fn coco_file(rng: &mut Rng) -> Vec<u8> {
    let dim = |rng: &mut Rng| -> u64 { *rng.pick(&[1, 3, 4, 7, 64, 255, 8192, 8193, 65_536, 1 << 32, u64::MAX]) };
    let (w, h) = (dim(rng), dim(rng));
    let (aw, ah) = if rng.chance(3) { (dim(rng), dim(rng)) } else { (w, h) };
    let counts = random_counts(rng, aw.saturating_mul(ah));
    let image_id = if rng.chance(8) { 99 } else { 7 };
    let category = if rng.chance(8) { 5 } else { 1 };
    let size = if rng.chance(10) { "[1]".to_string() } else { format!("[{ah}, {aw}]") };
    let doc = format!(
        r#"{{"images": [{{"id": 7, "file_name": "a.png", "width": {w}, "height": {h}}}],
           "annotations": [{{"image_id": {image_id}, "category_id": {category}, "segmentation": {{"size": {size}, "counts": "{counts}"}}}}],
           "categories": [{{"id": 1, "name": "scratch"}}]}}"#
    );
    let mut bytes = doc.into_bytes();
    if rng.chance(6) && !bytes.is_empty() {
        let at = rng.below(bytes.len());
        bytes[at] = rng.next_u64() as u8;
    }
    bytes
}

#[test]
fn coco_and_rle_reader_survives_random_files() {
    drive("coco_rle", 0x0C0C_0A11, coco_file, edgeseg::input_checks::coco_rle);
}

const META_KEYS: &[&str] = &[
    "edgeseg.task", "edgeseg.classes", "edgeseg.input_size", "edgeseg.input_layout", "edgeseg.color", "edgeseg.mean", "edgeseg.std",
    "edgeseg.output_activation", "edgeseg.resize", "edgeseg.name", "names", "imgsz", "task", "stride",
];
const META_VALUES: &[&str] = &[
    "", "0", "-1", "256x256", "0x0", "99999999999999999999x1", "18446744073709551615", "nchw", "nhwc", "gray", "rgb", "softmax", "letterbox",
    "segment", "semantic", "[\"bg\", \"a\"]", "[", "{0: 'a', 1: 'b'}", "nan", "inf,inf,inf", "1e39", "0.5,0.5", "[640, 640]", "x",
];

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let shape = pb::TensorShapeProto { dim: dims.iter().map(|&d| Dimension { value: Some(Value::DimValue(d)), ..Default::default() }).collect() };
    let tensor = pb::type_proto::Tensor { elem_type: 1, shape: Some(shape) };
    pb::ValueInfoProto { name: name.into(), r#type: Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() }), ..Default::default() }
}

fn onnx_file(rng: &mut Rng) -> Vec<u8> {
    let dim = |rng: &mut Rng| -> i64 { *rng.pick(&[-1, 0, 1, 3, 4, 16, 256, 1 << 40, i64::MAX]) };
    let rank = rng.below(6);
    let input: Vec<i64> = (0..rank).map(|_| dim(rng)).collect();
    let output: Vec<i64> = (0..rng.below(6)).map(|_| dim(rng)).collect();
    let ops = ["Conv", "ConvTranspose", "DequantizeLinear", "QuantizeLinear", "Relu", "Mul", "Cast", "Concat", "Sigmoid", "HardSigmoid", "MaxPool"];
    // QOperator ops (src/model/qop.rs), standard and com.microsoft.
    let qops = [("", "QLinearConv"), ("", "QLinearMatMul"), ("com.microsoft", "QLinearAdd"), ("com.microsoft", "QLinearMul"), ("com.microsoft", "QLinearSigmoid"), ("com.microsoft", "QLinearConcat"), ("com.microsoft", "QLinearGlobalAveragePool"), ("com.microsoft", "QGemm")];
    let names = ["x", "w", "b", "h", "y", "z", ""];
    let nodes = (0..rng.below(6))
        .map(|i| {
            let (domain, op_type) = if rng.chance(3) { *rng.pick(&qops) } else { ("", *rng.pick(&ops)) };
            pb::NodeProto {
                op_type: op_type.to_string(),
                domain: domain.to_string(),
                name: format!("n{i}"),
                input: (0..rng.below(10)).map(|_| rng.pick(&names).to_string()).collect(),
                output: (0..rng.below(3)).map(|_| rng.pick(&names).to_string()).collect(),
                ..Default::default()
            }
        })
        .collect();
    let w = pb::TensorProto { name: "w".into(), dims: vec![2, 1, 1, 1], data_type: 1, float_data: vec![1.0, 2.0], ..Default::default() };
    // A float16 initializer, sometimes shorter than its dims claim (src/model/half.rs).
    let h_bytes = if rng.chance(2) { vec![0, 60, 0, 188] } else { vec![0, 60] };
    let h = pb::TensorProto { name: "h".into(), dims: vec![2], data_type: 10, raw_data: h_bytes, ..Default::default() };
    let graph = pb::GraphProto { node: nodes, initializer: vec![w, h], input: vec![value_info("x", &input)], output: vec![value_info("y", &output)], ..Default::default() };
    let props = (0..rng.below(6))
        .map(|_| pb::StringStringEntryProto { key: rng.pick(META_KEYS).to_string(), value: rng.pick(META_VALUES).to_string() })
        .collect();
    let model = pb::ModelProto { graph: Some(graph), metadata_props: props, ir_version: 8, ..Default::default() };
    let mut bytes = model.encode_to_vec();
    if rng.chance(5) && !bytes.is_empty() {
        let at = rng.below(bytes.len());
        bytes[at] = rng.next_u64() as u8;
    }
    bytes
}

#[test]
fn onnx_metadata_reader_survives_random_models() {
    drive("onnx_meta", 0x0000_0AA5, onnx_file, edgeseg::input_checks::onnx_meta);
}

/// Every seed and every input a long cargo-fuzz run found (kept in fuzz/seeds/onnx_meta,
/// e.g. `found_bias_scale_longer_than_bias.onnx`: a 4-value scale on a longer constant
/// bias indexed past its end in the int8 rewrite) goes through the harness again.
#[test]
fn onnx_metadata_reader_survives_the_kept_fuzz_inputs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/onnx_meta");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| edgeseg::input_checks::onnx_meta(&bytes)).is_err() {
            panic!("onnx_meta panicked on {}", path.display());
        }
        n += 1;
    }
    assert!(n >= 8, "{n} kept inputs in {}", dir.display());
}

//! Bad input ends in a clear message naming the file and the fix, a non-zero
//! exit code and no panic; good inputs in the same run are still processed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn edgeseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeseg")).args(args).current_dir(root()).output().expect("run edgeseg")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, must_contain: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
    for s in must_contain {
        assert!(err.contains(s), "stderr lacks {s:?}:\n{err}");
    }
}

const MODEL: &str = "models/unet_defects.onnx";

fn first_sample() -> String {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("samples/images")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v[0].display().to_string()
}

#[test]
fn missing_model_names_the_path() {
    let o = edgeseg(&["infer", &first_sample(), "--model", "models/nope.onnx"]);
    assert_clean_failure(&o, &["models/nope.onnx", "fix:"]);
}

#[test]
fn corrupt_model_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.onnx");
    std::fs::write(&bad, b"\x08\x07this is not a protobuf \xff\xfe\x00garbage").unwrap();
    let o = edgeseg(&["inspect-model", bad.to_str().unwrap()]);
    assert_clean_failure(&o, &["broken.onnx", "fix:"]);
    // A truncated real model too.
    let bytes = std::fs::read(root().join(MODEL)).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let o = edgeseg(&["inspect-model", cut.to_str().unwrap()]);
    assert_clean_failure(&o, &["cut.onnx", "fix:"]);
}

#[test]
fn wrong_input_size_says_what_the_model_takes() {
    let o = edgeseg(&["infer", &first_sample(), "--model", MODEL, "--size", "300x300"]);
    assert_clean_failure(&o, &["wrong input size", "256x256", "300x300", "fix:"]);
}

#[test]
fn bad_flag_values_are_explained() {
    let o = edgeseg(&["infer", &first_sample(), "--model", MODEL, "--mean", "abc"]);
    assert_clean_failure(&o, &["--mean", "not a list of numbers"]);
    let o = edgeseg(&["infer", &first_sample(), "--model", MODEL, "--classes", "a,b"]);
    assert_clean_failure(&o, &["2 class names", "fix:"]);
}

#[test]
fn unreadable_image_is_skipped_and_the_rest_processed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("corrupt.png"), b"\x89PNG\r\n\x1a\n but then nothing valid").unwrap();
    std::fs::write(input.join("text.jpg"), b"hello").unwrap();
    std::fs::copy(first_sample(), input.join("good.png")).unwrap();
    let out = dir.path().join("out");
    let o = edgeseg(&["infer", input.to_str().unwrap(), "--model", MODEL, "--out", out.to_str().unwrap()]);
    assert_clean_failure(&o, &["corrupt.png", "text.jpg", "2 of 3 image(s) failed", "fix:"]);
    assert!(out.join("good.json").exists() && out.join("good.mask.png").exists() && out.join("good.overlay.png").exists());
    assert!(!out.join("corrupt.json").exists());
}

#[test]
fn missing_input_and_empty_dir() {
    let o = edgeseg(&["infer", "no/such/image.png", "--model", MODEL]);
    assert_clean_failure(&o, &["no/such/image.png", "does not exist"]);
    let dir = tempfile::tempdir().unwrap();
    let o = edgeseg(&["infer", dir.path().to_str().unwrap(), "--model", MODEL]);
    assert_clean_failure(&o, &["holds no .png/.jpg/.jpeg images"]);
}

#[test]
fn eval_without_labels_points_at_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let o = edgeseg(&["eval", "--model", MODEL, "--data", dir.path().to_str().unwrap()]);
    assert_clean_failure(&o, &["images/ and masks/", "fix:"]);
}

#[test]
fn infer_writes_reports_for_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let o = edgeseg(&["infer", "samples/images", "--model", MODEL, "--out", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n = std::fs::read_dir(root().join("samples/images")).unwrap().count();
    let jsons = std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "json").count();
    assert_eq!(jsons, n);
    let overlay = image::open(dir.path().join(Path::new(&first_sample()).file_stem().unwrap().to_str().unwrap().to_string() + ".overlay.png")).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (256, 256));
}

#[test]
fn inputs_sharing_a_name_do_not_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::copy(first_sample(), dir.path().join(sub).join("frame.png")).unwrap();
    }
    let out = dir.path().join("out");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let o = edgeseg(&["infer", a.to_str().unwrap(), b.to_str().unwrap(), "--model", MODEL, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("frame.json").exists() && out.join("frame-2.json").exists());
}

#[test]
fn bench_reports_latency_and_rejects_zero_threads() {
    let o = edgeseg(&["bench", "--model", MODEL, "--runs", "3", "--warmup", "1", "--threads", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["threads"], 2);
    assert_eq!(report["runs"], 3);
    let l = &report["latency_ms"];
    assert!(l["min"].as_f64().unwrap() > 0.0 && l["min"].as_f64() <= l["median"].as_f64());
    assert!(l["median"].as_f64() <= l["p99"].as_f64());
    let o = edgeseg(&["bench", "--model", MODEL, "--threads", "0"]);
    assert_clean_failure(&o, &["--threads"]);
}

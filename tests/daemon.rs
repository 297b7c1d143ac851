//! `edgeseg run` end to end, as an operator uses it: the embedded demo, board
//! configs with mistakes, corrupt frames, an MJPEG pipe on stdin, SIGTERM and
//! SIGHUP.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::daemon::{edgeseg, sample, write_config};

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn embedded_demo_judges_bundled_frames() {
    let out = edgeseg().args(["run", "--max-frames", "3"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = json_lines(&out.stdout);
    assert_eq!(docs.len(), 3);
    for d in &docs {
        for key in ["device", "frame", "captured_unix_us", "source", "model", "verdict", "findings", "classes", "latency"] {
            assert!(d.get(key).is_some(), "missing {key} in {d}");
        }
        assert!(d["latency"]["infer_ms"].as_f64().unwrap() > 0.0);
    }
    // The first bundled frame (a PCB with scratches) fails.
    assert_eq!(docs[0]["source"], "000000_pcb.png");
    assert_eq!(docs[0]["verdict"], "fail");
}

#[test]
fn config_mistakes_name_file_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[source]\nkind = \"dir\"\npathh = \"frames\"\n", "pathh"),
        ("[decide]\nmin_score = 3.0\n", "decide.min_score"),
        ("[decide.classes.scrach]\nmin_area = 5\n", "decide.classes.scrach"),
        ("[pipeline]\nmode = \"trigger\"\n", "pipeline.mode"),
        ("[sinks.mqtt]\nurl = \"http://127.0.0.1\"\n", "sinks.mqtt.url"),
    ];
    for (body, key) in cases {
        let cfg = write_config(dir.path(), body);
        let out = edgeseg().args(["run", "--config"]).arg(&cfg).arg("--max-frames=1").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {err}");
        assert!(err.contains("board.toml"), "names the file: {err}");
        assert!(err.contains(key), "names {key}: {err}");
        assert!(err.contains("fix"), "says the fix: {err}");
    }
    let missing = dir.path().join("missing.toml");
    std::fs::write(&missing, "[model]\npath = \"nope.onnx\"\n").unwrap();
    let out = edgeseg().args(["run", "--check", "--config"]).arg(&missing).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.path") && err.contains("nope.onnx") && err.contains("fix"), "{err}");
}

/// Issue 24 item 6: these passed `run --check` and then panicked converting to a Duration.
#[test]
fn check_refuses_durations_and_rates_that_would_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[pipeline]\nstats_interval_s = inf\n", "pipeline.stats_interval_s"),
        ("[pipeline]\nstats_interval_s = 1e19\n", "pipeline.stats_interval_s"),
        ("[source]\nkind = \"sample\"\nfps = 1e-300\n", "source.fps"),
        ("[sinks.archive]\ndir = \"a\"\nquota_mib = 0.01\n", "sinks.archive.quota_mib"),
    ];
    for (body, key) in cases {
        let cfg = write_config(dir.path(), body);
        for extra in [&["--check"][..], &["--max-frames=1"][..]] {
            let out = edgeseg().args(["run", "--config"]).arg(&cfg).args(extra).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{body} {extra:?}: {err}");
            assert!(err.contains("board.toml") && err.contains(key) && err.contains("fix:"), "{body}: {err}");
        }
    }
}

#[test]
fn corrupt_frames_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    std::fs::copy(sample("000000_pcb.png"), frames.join("a.png")).unwrap();
    std::fs::write(frames.join("b.jpg"), [0xFF, 0xD8, 0xFF, 0xDB, 1, 2, 3]).unwrap();
    let png = std::fs::read(sample("000004_wood_grain.png")).unwrap();
    std::fs::write(frames.join("c.png"), &png[..png.len() / 2]).unwrap();
    std::fs::copy(sample("000004_wood_grain.png"), frames.join("d.png")).unwrap();
    let cfg = write_config(
        dir.path(),
        "[source]\nkind = \"dir\"\npath = \"frames\"\nfps = 0\n[sinks.stdout]\nstats = true\n[pipeline]\noverlay = false\n",
    );
    let out = edgeseg().args(["run", "--config"]).arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = json_lines(&out.stdout);
    let judged: Vec<&Value> = docs.iter().filter(|d| d.get("verdict").is_some()).collect();
    let sources: Vec<&str> = judged.iter().map(|d| d["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["a.png", "d.png"]);
    let stats = &docs.last().unwrap()["stats"];
    assert_eq!((stats["frames"].as_u64(), stats["corrupt"].as_u64()), (Some(2), Some(2)), "{stats}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped"));
}

#[test]
fn mjpeg_on_stdin_is_split_into_frames() {
    let img = image::open(sample("000002_brushed_metal.png")).unwrap().to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&img).unwrap();
    // A broken frame first, then three good ones with multipart-style junk between.
    let mut stream = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 0, 0xFF, 0xD9];
    for _ in 0..3 {
        stream.extend_from_slice(b"\r\n--boundary\r\n");
        stream.extend_from_slice(&jpeg);
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[source]\nkind = \"stdin\"\n[sinks.stdout]\nstats = true\n");
    let mut child = edgeseg().args(["run", "--config"]).arg(&cfg).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = json_lines(&out.stdout);
    let stats = &docs.last().unwrap()["stats"];
    // A live source: when the pipe is faster than inference the newest frame
    // wins, so frames are judged, dropped or corrupt, 4 in all; the last good
    // frame is always judged.
    let judged = stats["frames"].as_u64().unwrap();
    assert!(judged >= 1 && judged + stats["dropped"].as_u64().unwrap() + stats["corrupt"].as_u64().unwrap() == 4, "{stats}");
    assert!(docs.iter().filter(|d| d.get("verdict").is_some()).all(|d| d["source"] == "stdin" && d["verdict"] == "fail"));
}

/// Read JSON lines from a running daemon until `pred` holds or time runs out.
fn read_until(lines: &mut impl Iterator<Item = std::io::Result<String>>, limit: Duration, mut pred: impl FnMut(&Value) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        match lines.next() {
            Some(Ok(l)) => {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    if pred(&v) {
                        return true;
                    }
                }
            }
            _ => return false,
        }
    }
    false
}

#[test]
fn sighup_reloads_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[device]\nname = \"line-a\"\n[source]\nkind = \"sample\"\nfps = 20\n[sinks.stdout]\n");
    let mut child = edgeseg().args(["run", "--config"]).arg(&cfg).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id().to_string();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(read_until(&mut lines, Duration::from_secs(60), |v| v["device"] == "line-a"));

    // A broken config on SIGHUP is refused; the daemon keeps running as before.
    std::fs::write(&cfg, "[device\nname = ").unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(read_until(&mut lines, Duration::from_secs(30), |v| v["device"] == "line-a"));

    write_config(dir.path(), "[device]\nname = \"line-b\"\n[source]\nkind = \"sample\"\nfps = 20\n[sinks.stdout]\n");
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(read_until(&mut lines, Duration::from_secs(60), |v| v["device"] == "line-b"), "reloaded config takes effect");

    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "SIGTERM did not stop the daemon");
        // Keep reading so the daemon never blocks on a full pipe.
        let _ = lines.next();
    };
    assert!(status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("reload failed") && err.contains("SIGTERM"), "{err}");
}

#[test]
fn daemon_publishes_to_a_real_mosquitto() {
    let broker = support::mosquitto::Mosquitto::start();
    let sub = support::mosquitto::Subscriber::start(broker.port, "edgeseg/#", false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[device]\nname = \"cell-7\"\n[source]\nkind = \"sample\"\nfps = 0\n[pipeline]\nmax_frames = 3\n[sinks.mqtt]\nurl = \"{}\"\n",
            broker.url()
        ),
    );
    let out = edgeseg().args(["run", "--config"]).arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = sub.wait_until(Duration::from_secs(10), "3 detections and offline", |g| {
        g.iter().filter(|r| r.topic == "edgeseg/cell-7/detections").count() == 3
            && g.iter().any(|r| r.topic == "edgeseg/cell-7/status" && r.json()["state"] == "offline")
    });
    let frames: Vec<u64> = got.iter().filter(|r| r.topic.ends_with("/detections")).map(|r| r.json()["frame"].as_u64().unwrap()).collect();
    assert_eq!(frames, [0, 1, 2]);
    let first = got.iter().find(|r| r.topic.ends_with("/detections")).unwrap().json();
    assert_eq!((first["device"].as_str(), first["model"].as_str()), (Some("cell-7"), Some("unet-defects")));
    assert!(first["classes"][0]["rle"]["counts"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(got.iter().any(|r| r.topic == "edgeseg/cell-7/status" && r.json()["state"] == "online"));
    assert!(got.iter().any(|r| r.topic == "edgeseg/cell-7/stats" && r.json()["frames"] == 3));
}

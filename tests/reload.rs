//! SIGHUP reloads that cannot be completed (issue 24 items 4, 5, 20): the new
//! config passes the check, but its source, a sink or its model cannot be
//! opened. The daemon logs why and the old pipeline keeps judging; SIGTERM
//! still stops it.

mod support;

use std::path::Path;
use std::time::Duration;
use support::daemon::{write_config, write_config_with_model, Daemon};
use support::mosquitto::{Mosquitto, Subscriber};

const SAMPLE: &str = "[source]\nkind = \"sample\"\nfps = 20\n[sinks.stdout]\n";

fn on(device: &str, body: &str) -> String {
    format!("[device]\nname = \"{device}\"\n{body}")
}

/// The daemon judges frames of `device` after `from` reports.
fn judges_on(d: &mut Daemon, device: &str, from: usize) {
    d.wait_reports(Duration::from_secs(60), &format!("frames of {device}"), |r| r.iter().skip(from).filter(|v| v["device"] == device).count() >= 2);
}

/// Reload with `body`; it must fail with `reason` in the log and leave `device` judging.
fn refused(d: &mut Daemon, dir: &Path, body: &str, reason: &str, device: &str) {
    refused_after(d, || drop(write_config(dir, body)), reason, device);
}

fn refused_after(d: &mut Daemon, write: impl FnOnce(), reason: &str, device: &str) {
    let failures = d.log().matches("reload failed").count();
    write();
    let seen = d.reports().len();
    d.signal("-HUP");
    let start = std::time::Instant::now();
    while d.log().matches("reload failed").count() == failures {
        assert!(start.elapsed() < Duration::from_secs(60), "no reload failure logged:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log();
    let line = log.lines().rfind(|l| l.contains("reload failed")).unwrap_or("").to_string();
    assert!(line.contains(reason), "the failure says why ({reason}): {line}");
    judges_on(d, device, seen);
}

/// Issue 24 item 4: a missing replay folder or an archive folder that cannot be
/// created stopped the old pipeline and ended the daemon.
#[test]
fn a_source_or_archive_that_cannot_be_opened_keeps_the_old_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &on("line-a", SAMPLE));
    let mut d = Daemon::start(&cfg);
    judges_on(&mut d, "line-a", 0);

    refused(&mut d, dir.path(), &on("line-b", "[source]\nkind = \"dir\"\npath = \"no-such-folder\"\n[sinks.stdout]\n"), "no-such-folder", "line-a");
    std::fs::write(dir.path().join("a-file"), b"not a folder").unwrap();
    refused(&mut d, dir.path(), &on("line-b", &format!("{SAMPLE}[sinks.archive]\ndir = \"a-file/archive\"\n")), "sinks.archive", "line-a");

    // A good reload still goes through afterwards.
    write_config(dir.path(), &on("line-b", SAMPLE));
    let seen = d.reports().len();
    d.signal("-HUP");
    judges_on(&mut d, "line-b", seen);
    assert!(d.terminate(Duration::from_secs(20)).success());
}

/// Issue 24 item 4: the broker refusing the new login (same client id, so the
/// old connection is handed over first) ended the daemon. Now the old
/// connection comes back and goes on publishing.
#[test]
fn an_mqtt_login_the_broker_refuses_keeps_the_old_pipeline() {
    let broker = Mosquitto::start_with_password("edge", "s3cret-pass");
    let sub = Subscriber::start_with_login(broker.port, "edgeseg/#", "edge", "s3cret-pass");
    let dir = tempfile::tempdir().unwrap();
    let mqtt = |pass: &str| format!("[sinks.mqtt]\nurl = \"{}\"\nusername = \"edge\"\npassword = \"{pass}\"\n", broker.url());
    let cfg = write_config(dir.path(), &on("line-a", &format!("{SAMPLE}{}", mqtt("s3cret-pass"))));
    let mut d = Daemon::start(&cfg);
    judges_on(&mut d, "line-a", 0);
    refused(&mut d, dir.path(), &on("line-a", &format!("[pipeline]\nstats_interval_s = 2\n{SAMPLE}{}", mqtt("wrong"))), "refused the login", "line-a");
    // Published after the failed reload, over the restored connection.
    let last = d.reports().last().unwrap()["frame"].as_u64().unwrap();
    sub.wait_until(Duration::from_secs(30), "detections after the failed reload", |g| {
        g.iter().any(|r| r.topic == "edgeseg/line-a/detections" && r.json()["frame"].as_u64() > Some(last))
    });
    assert!(d.terminate(Duration::from_secs(20)).success());
}

/// Issue 24 item 4: a GPIO line that is busy (here: the new config asks for one
/// line as reject and ready line, by name and by offset) ended the daemon.
#[test]
fn a_busy_gpio_line_keeps_the_old_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let gpio = |lines: &str| format!("[sinks.gpio]\nchip = \"sim\"\n{lines}");
    let cfg = write_config(dir.path(), &on("line-a", &format!("{SAMPLE}{}", gpio("reject_line = \"GPIO17\"\n"))));
    let mut d = Daemon::start(&cfg);
    judges_on(&mut d, "line-a", 0);
    refused(&mut d, dir.path(), &on("line-b", &format!("{SAMPLE}{}", gpio("reject_line = \"GPIO18\"\nready_line = 18\n"))), "in use", "line-a");
    // The old lines were requested again: a reload back to them works.
    write_config(dir.path(), &on("line-c", &format!("{SAMPLE}{}", gpio("reject_line = \"GPIO17\"\nready_line = 18\n"))));
    let seen = d.reports().len();
    d.signal("-HUP");
    judges_on(&mut d, "line-c", seen);
    assert!(d.terminate(Duration::from_secs(20)).success());
}

/// The committed model with its first `Conv` cut to one input (data, no weights).
fn malformed_model(dir: &Path) -> std::path::PathBuf {
    use prost::Message;
    let bytes = std::fs::read(support::daemon::model()).unwrap();
    let mut proto = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let conv = graph.node.iter_mut().find(|n| n.op_type == "Conv").unwrap();
    conv.input.truncate(1);
    let path = dir.join("malformed.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    path
}

/// Issue 24 item 5: `inspect-model` on it panicked (exit 101) in the convolution rewrite.
#[test]
fn a_conv_with_one_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = malformed_model(dir.path());
    let out = support::daemon::edgeseg().args(["inspect-model"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("malformed.onnx") && err.contains("Conv") && err.contains("1 input") && err.contains("fix:"), "{err}");
}

/// Found by tests/fuzz_inputs.rs: a node writing the same tensor as a `Conv` was taken
/// for the `Conv` by the rewrite, and indexing its weights panicked.
#[test]
fn a_tensor_written_by_two_nodes_is_a_clear_error() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(support::daemon::model()).unwrap();
    let mut proto = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let conv = graph.node.iter().position(|n| n.op_type == "Conv").unwrap();
    let clash = tract_onnx::pb::NodeProto {
        op_type: "Relu".into(),
        input: vec![graph.node[conv].input[0].clone()],
        output: vec![graph.node[conv].output[0].clone()],
        ..Default::default()
    };
    graph.node.insert(conv, clash);
    let bad = dir.path().join("twice.onnx");
    std::fs::write(&bad, proto.encode_to_vec()).unwrap();
    let out = support::daemon::edgeseg().args(["inspect-model"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("twice.onnx") && err.contains("produced by two nodes") && err.contains("fix:"), "{err}");
}

/// Issue 24 item 5: a reload with that model panicked the signal thread, and the
/// daemon then ignored SIGTERM until SIGKILL.
#[test]
fn a_reload_with_a_malformed_model_leaves_the_daemon_running_and_stoppable() {
    let dir = tempfile::tempdir().unwrap();
    let bad = malformed_model(dir.path());
    let cfg = write_config(dir.path(), &on("line-a", SAMPLE));
    let mut d = Daemon::start(&cfg);
    judges_on(&mut d, "line-a", 0);
    refused_after(&mut d, || drop(write_config_with_model(dir.path(), &bad, &on("line-b", SAMPLE))), "1 input", "line-a");
    assert!(d.terminate(Duration::from_secs(20)).success());
}

fn jpeg(name: &str) -> Vec<u8> {
    let img = image::open(support::daemon::sample(name)).unwrap().to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out
}

/// Issue 24 item 20: the previous capture thread was left running on reload.
/// With stdin it stayed blocked in a read, took the next frame written and
/// threw it away (a camera stayed open, and the new pipeline found it busy).
/// Now a reload that keeps the source hands it over, thread and all.
#[test]
fn a_reload_hands_the_capture_over_without_losing_a_frame() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let body = |dev: &str| on(dev, "[source]\nkind = \"stdin\"\n[sinks.stdout]\n[pipeline]\noverlay = false\n");
    let cfg = write_config(dir.path(), &body("line-a"));
    let mut cmd = support::daemon::edgeseg();
    cmd.args(["run", "--config"]).arg(&cfg).stdin(std::process::Stdio::piped());
    let mut d = Daemon::spawn(&mut cmd);
    let mut stdin = d.child.stdin.take().unwrap();
    let frame = jpeg("000002_brushed_metal.png");
    stdin.write_all(&frame).unwrap();
    d.wait_reports(Duration::from_secs(60), "the first frame", |r| r.len() == 1);
    write_config(dir.path(), &body("line-b"));
    let pipelines = d.pipelines();
    d.signal("-HUP");
    d.wait_log_count(Duration::from_secs(60), "] source: ", pipelines + 1);
    for n in 2..=3 {
        stdin.write_all(&frame).unwrap();
        stdin.flush().unwrap();
        let r = d.wait_reports(Duration::from_secs(60), &format!("frame {n} after the reload"), |r| r.len() == n);
        assert_eq!(r[n - 1]["device"], "line-b");
    }
    let frames: Vec<u64> = d.reports().iter().map(|r| r["frame"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[1] > w[0]), "frame numbers go on across the reload: {frames:?}");
    drop(stdin);
    assert!(d.terminate(Duration::from_secs(20)).success());
}

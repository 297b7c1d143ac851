//! The MQTT sink against a real Mosquitto (started per test on a free
//! loopback port) and a separate subscriber. `docs/mqtt.md` is the schema
//! these tests check.

mod support;

use edgeseg::mask::{BBox, ClassRegion, CocoRle, Component};
use edgeseg::report::{FrameReport, Finding, StageLatency, Stats, Verdict};
use edgeseg::sink::mqtt::{MqttConfig, MqttSink};
use edgeseg::sink::{FramePixels, Sink};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::mosquitto::{wait_status, Mosquitto, Received, Subscriber};

fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// A failing frame with one class region (two components, real RLE) and a finding.
fn report(device: &str, frame: u64) -> FrameReport {
    let (w, h) = (8usize, 6usize);
    let mut mask = vec![false; w * h];
    for (x, y) in [(1, 1), (2, 1), (1, 2), (6, 4)] {
        mask[y * w + x] = true;
    }
    let region = ClassRegion {
        id: 1,
        name: "scratch".into(),
        area: 4,
        bbox: BBox { x: 1, y: 1, w: 6, h: 4 },
        score: 0.87,
        components: vec![
            Component { class_id: 1, area: 3, bbox: BBox { x: 1, y: 1, w: 2, h: 2 } },
            Component { class_id: 1, area: 1, bbox: BBox { x: 6, y: 4, w: 1, h: 1 } },
        ],
        rle: CocoRle::encode(&mask, w, h),
    };
    FrameReport {
        device: device.into(),
        frame,
        captured_unix_us: 1_700_000_000_000_000 + frame,
        kernel_ts_us: Some(42),
        emitted_unix_us: 1_700_000_000_100_000 + frame,
        source: format!("frame{frame:06}.png"),
        width: w,
        height: h,
        model: "unet_defects".into(),
        verdict: Verdict::Fail,
        findings: vec![Finding { class_id: 1, class: "scratch".into(), score: 0.87, area: 3, bbox: BBox { x: 1, y: 1, w: 2, h: 2 } }],
        classes: vec![region],
        latency: StageLatency { capture_ms: 1.0, queue_ms: 0.5, preprocess_ms: 2.0, infer_ms: 30.0, decode_ms: 1.5, emit_ms: 0.2 },
        ..FrameReport::default()
    }
}

fn emit(sink: &mut MqttSink, device: &str, frame: u64) {
    let img = image::RgbImage::new(1, 1);
    sink.emit(&report(device, frame), &FramePixels { image: &img, overlay: None }).unwrap();
}

fn config(url: &str) -> MqttConfig {
    MqttConfig::new(url)
}

// --- schema checks (docs/mqtt.md) -------------------------------------------

fn req<'a>(v: &'a Value, key: &str, doc: &str) -> &'a Value {
    v.get(key).unwrap_or_else(|| panic!("{doc}: required field {key:?} missing in {v}"))
}
fn is_uint(v: &Value) -> bool {
    v.as_u64().is_some()
}
fn is_box(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.len() == 4 && a.iter().all(is_uint))
}

fn check_detections(v: &Value) {
    let d = "detections";
    for k in ["frame", "captured_unix_us", "emitted_unix_us", "width", "height"] {
        assert!(is_uint(req(v, k, d)), "{d}.{k} must be an unsigned integer: {v}");
    }
    for k in ["device", "source", "model"] {
        assert!(req(v, k, d).is_string(), "{d}.{k} must be a string");
    }
    if let Some(k) = v.get("kernel_ts_us") {
        assert!(is_uint(k));
    }
    assert!(["semantic", "instance"].contains(&req(v, "task", d).as_str().unwrap()));
    assert!(["pass", "fail"].contains(&req(v, "verdict", d).as_str().unwrap()));
    for f in req(v, "findings", d).as_array().expect("findings array") {
        assert!(is_uint(req(f, "class_id", "finding")) && req(f, "class", "finding").is_string());
        assert!(req(f, "score", "finding").is_f64() && is_uint(req(f, "area", "finding")) && is_box(req(f, "bbox", "finding")));
    }
    for c in req(v, "classes", d).as_array().expect("classes array") {
        assert!(is_uint(req(c, "id", "class")) && req(c, "name", "class").is_string() && is_uint(req(c, "area", "class")));
        assert!(is_box(req(c, "bbox", "class")) && req(c, "score", "class").is_f64());
        for p in req(c, "components", "class").as_array().expect("components array") {
            assert!(is_uint(req(p, "class_id", "component")) && is_uint(req(p, "area", "component")) && is_box(req(p, "bbox", "component")));
        }
        let rle = req(c, "rle", "class");
        let size = req(rle, "size", "rle").as_array().expect("rle.size array");
        assert!(size.len() == 2 && size.iter().all(is_uint));
        assert!(req(rle, "counts", "rle").is_string());
        // The RLE decodes to the region's area.
        let parsed: CocoRle = serde_json::from_value(rle.clone()).unwrap();
        assert_eq!(parsed.area().unwrap(), c["area"].as_u64().unwrap());
    }
    let lat = req(v, "latency", d);
    for k in ["capture_ms", "queue_ms", "preprocess_ms", "infer_ms", "decode_ms", "emit_ms"] {
        assert!(req(lat, k, "latency").is_number(), "latency.{k}");
    }
}

fn check_status(v: &Value, state: &str, device: &str) {
    assert_eq!(req(v, "state", "status"), state);
    assert_eq!(req(v, "device", "status"), device);
    assert!(req(v, "version", "status").is_string());
    assert!(is_uint(req(v, "since_unix_us", "status")));
    if let Some(m) = v.get("model") {
        assert!(m.is_string());
    }
    if state == "offline" {
        assert!(["shutdown", "lost"].contains(&req(v, "reason", "status").as_str().unwrap()));
    }
}

fn check_stats(v: &Value) {
    let d = "stats";
    assert!(req(v, "device", d).is_string());
    for k in ["frames", "pass", "fail", "dropped", "corrupt", "sink_overflow"] {
        assert!(is_uint(req(v, k, d)), "stats.{k}");
    }
    assert!(req(v, "uptime_s", d).is_number() && req(v, "fps", d).is_number());
    assert!(req(v, "defects", d).as_object().expect("defects object").values().all(is_uint));
    assert!(req(v, "latency_median", d).is_object());
}

/// Frame numbers of the detections received, first occurrences only (QoS 1
/// may deliver a message twice across a reconnect).
fn frames_in_order(got: &[Received], topic: &str) -> Vec<u64> {
    let mut seen = HashSet::new();
    got.iter().filter(|r| r.topic == topic).map(|r| r.json()["frame"].as_u64().unwrap()).filter(|f| seen.insert(*f)).collect()
}

// --- tests --------------------------------------------------------------------

#[test]
fn payloads_match_documented_schema() {
    init_log();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "edgeseg/#", false);
    let mut sink = MqttSink::connect_with_model(&config(&broker.url()), "line1-cam", Some("unet_defects")).unwrap();
    assert!(sink.is_connected());
    emit(&mut sink, "line1-cam", 7);
    let mut stats = Stats { device: "line1-cam".into(), uptime_s: 12.5, frames: 10, pass: 9, fail: 1, fps: 3.2, ..Stats::default() };
    stats.defects.insert("scratch".into(), 1);
    sink.stats(&stats).unwrap();
    assert!(sink.flush(Duration::from_secs(5)));

    let got = sub.wait_until(Duration::from_secs(5), "status, detections, stats", |g| {
        ["status", "detections", "stats"].iter().all(|t| g.iter().any(|r| r.topic == format!("edgeseg/line1-cam/{t}")))
    });
    let det: Vec<_> = got.iter().filter(|r| r.topic == "edgeseg/line1-cam/detections").collect();
    assert_eq!(det.len(), 1);
    assert!(!det[0].retain, "detections are not retained");
    let v = det[0].json();
    check_detections(&v);
    assert_eq!(v["frame"], 7);
    assert_eq!(v["classes"][0]["rle"], serde_json::to_value(&report("x", 7).classes[0].rle).unwrap());
    let status = got.iter().find(|r| r.topic == "edgeseg/line1-cam/status").unwrap();
    check_status(&status.json(), "online", "line1-cam");
    assert_eq!(status.json()["model"], "unet_defects");
    let st = got.iter().find(|r| r.topic == "edgeseg/line1-cam/stats").unwrap().json();
    check_stats(&st);
    assert_eq!(st["defects"]["scratch"], 1);

    // stats = false publishes none.
    let mut quiet = MqttSink::connect(&MqttConfig { stats: false, client_id: Some("quiet".into()), ..config(&broker.url()) }, "quiet").unwrap();
    quiet.stats(&stats).unwrap();
    quiet.shutdown().unwrap();
    sink.shutdown().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(sub.on("edgeseg/quiet/stats").is_empty());
}

/// Runs inside a child process (see `last_will_marks_killed_process_offline`):
/// connects, publishes one frame, says READY and waits to be killed.
#[test]
#[ignore = "helper run as a child process by last_will_marks_killed_process_offline"]
fn child_sink_process() {
    let Ok(url) = std::env::var("EDGESEG_MQTT_CHILD_URL") else { return };
    let mut sink = MqttSink::connect(&MqttConfig { keep_alive_s: 5, ..config(&url) }, "child").unwrap();
    emit(&mut sink, "child", 1);
    assert!(sink.flush(Duration::from_secs(5)));
    println!("READY");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn last_will_marks_killed_process_offline() {
    use std::io::BufRead;
    init_log();
    let broker = Mosquitto::start();
    let topic = "edgeseg/child/status";
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_sink_process", "--nocapture", "--test-threads=1"])
        .env("EDGESEG_MQTT_CHILD_URL", broker.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.map(|l| l.contains("READY")).unwrap_or(false)), "child never got ready");
    let online = wait_status(broker.port, topic, "online", Duration::from_secs(3));
    check_status(&online, "online", "child");

    // SIGKILL: no DISCONNECT, no offline message from the sink; the broker
    // notices the closed socket and publishes the will.
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    let offline = wait_status(broker.port, topic, "offline", Duration::from_secs(5));
    check_status(&offline, "offline", "child");
    assert_eq!(offline["reason"], "lost");
    eprintln!("last will seen {:?} after kill", t.elapsed());
}

#[test]
fn clean_shutdown_publishes_offline() {
    init_log();
    let broker = Mosquitto::start();
    let topic = "edgeseg/cam2/status";
    let mut sink = MqttSink::connect(&config(&broker.url()), "cam2").unwrap();
    check_status(&wait_status(broker.port, topic, "online", Duration::from_secs(3)), "online", "cam2");
    emit(&mut sink, "cam2", 1);
    sink.shutdown().unwrap();
    assert!(!sink.is_connected());
    let v = wait_status(broker.port, topic, "offline", Duration::from_secs(3));
    check_status(&v, "offline", "cam2");
    assert_eq!(v["reason"], "shutdown", "explicit offline, not the will");
    assert!(broker.log().contains("disconnected"), "clean DISCONNECT expected in the broker log");
}

/// Publishes 3×150 frames: before, during and after a broker outage; returns
/// (frames received in order of first arrival, messages received, queued at
/// the stop, broker-acknowledged frames at the stop).
fn run_outage(stop: fn(&mut Mosquitto), device: &str) -> (Vec<u64>, usize, usize, u64) {
    init_log();
    let mut broker = Mosquitto::start();
    // A persistent subscriber session: messages published while it is still
    // reconnecting after the restart wait for it in the broker.
    let sub = Subscriber::start(broker.port, "edgeseg/#", true);
    let topic = format!("edgeseg/{device}/detections");
    let mut sink = MqttSink::connect(&config(&broker.url()), device).unwrap();
    let n = 150u64;
    for f in 0..n {
        emit(&mut sink, device, f);
    }
    // Stop right away: part of these is still unacknowledged in the sink.
    stop(&mut broker);
    let queued_at_stop = sink.queued();
    for f in n..2 * n {
        emit(&mut sink, device, f);
    }
    std::thread::sleep(Duration::from_millis(700));
    assert!(!sink.is_connected());
    // Acks are in order; the first message acked was the `online` status.
    let acked_frames = sink.delivered().saturating_sub(1);
    let restarted_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    broker.restart();
    for f in 2 * n..3 * n {
        emit(&mut sink, device, f);
    }
    let t = Instant::now();
    // Everything the broker had not acknowledged before the stop must arrive.
    let got = sub.wait_until(Duration::from_secs(12), "every frame the broker had not acknowledged", |g| {
        let seen: HashSet<u64> = frames_in_order(g, &topic).into_iter().collect();
        (acked_frames..3 * n).all(|f| seen.contains(&f))
    });
    drop(got);
    std::thread::sleep(Duration::from_millis(100));
    let got = sub.got.lock().unwrap().clone();
    let frames = frames_in_order(&got, &topic);
    let total = got.iter().filter(|r| r.topic == topic).count();
    assert_eq!(sink.overflow(), 0);
    assert!(sink.connects() >= 2, "reconnected");
    assert!(queued_at_stop > 0, "the stop hit while frames were still unacknowledged");
    // `online` was re-published after the reconnect: the retained status a new
    // subscriber gets is an `online` whose connection came up after the restart.
    // (Asking the long-lived subscriber is racy: whether it sees the live
    // publish or only a retained copy depends on who reconnects first.)
    let status = format!("edgeseg/{device}/status");
    let fresh = Subscriber::start(broker.port, &status, false);
    fresh.wait_until(Duration::from_secs(10), "a retained online from after the restart", |g| {
        g.iter().any(|r| r.retain && r.json()["state"] == "online" && r.json()["since_unix_us"].as_u64().is_some_and(|t| t >= restarted_us))
    });
    sink.shutdown().unwrap();
    eprintln!(
        "{device}: {} of {} frames received, in order ({} messages incl. {} QoS1 duplicates); {queued_at_stop} queued/unacknowledged \
         at the stop, {acked_frames} acknowledged by then; all delivered {:?} after the restart; connects {}",
        frames.len(),
        3 * n,
        total,
        total - frames.len(),
        t.elapsed(),
        sink.connects()
    );
    (frames, total, queued_at_stop, acked_frames)
}

/// What the sink guarantees across a broker outage: every frame the broker
/// had not acknowledged when it went down arrives after the restart, and all
/// arrive in order (duplicates removed). Frames the broker had acknowledged
/// but not yet passed to the subscriber can die with the broker (its RST can
/// even discard them from the subscriber's socket); no client can prevent that.
fn check_outage(frames: &[u64], acked: u64, device: &str) {
    let mut sorted = frames.to_vec();
    sorted.sort_unstable();
    assert_eq!(frames, sorted, "in order");
    let missing: Vec<u64> = (0..450).filter(|f| sorted.binary_search(f).is_err()).collect();
    assert!(missing.iter().all(|&f| f < acked), "only broker-acknowledged frames may be lost with the broker: missing {missing:?}, acked {acked}");
    eprintln!("{device}: {} frames acknowledged by the broker before it went down were lost with it: {missing:?}", missing.len());
}

/// Broker stopped with SIGTERM and restarted on the same port mid-run.
#[test]
fn broker_restart_resends_everything_unacknowledged() {
    let (frames, _, _, acked) = run_outage(Mosquitto::terminate, "press");
    check_outage(&frames, acked, "press");
}

/// Broker SIGKILLed (crash, power cut) and restarted on the same port mid-run.
#[test]
fn broker_crash_resends_everything_unacknowledged() {
    let (frames, _, _, acked) = run_outage(Mosquitto::kill, "lathe");
    check_outage(&frames, acked, "lathe");
}

#[test]
fn full_offline_queue_drops_oldest_and_counts() {
    init_log();
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "edgeseg/#", true);
    broker.kill();
    let topic = "edgeseg/oven/detections";
    let limit = 10;
    let mut sink = MqttSink::connect(&MqttConfig { queue_limit: limit, ..config(&broker.url()) }, "oven").unwrap();
    assert!(!sink.is_connected());
    assert!(sink.last_error().unwrap().contains("unreachable"));
    for f in 0..25 {
        emit(&mut sink, "oven", f);
    }
    assert_eq!(sink.overflow(), 15, "25 frames into a queue of 10");
    assert_eq!(sink.queued(), limit);
    broker.restart();
    let got = sub.wait_until(Duration::from_secs(15), "the 10 newest frames", |g| frames_in_order(g, topic).len() >= limit);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(frames_in_order(&sub.got.lock().unwrap(), topic), (15..25).collect::<Vec<_>>(), "the oldest 15 were dropped");
    drop(got);
    sink.shutdown().unwrap();
}

#[test]
fn username_password_login() {
    init_log();
    let broker = Mosquitto::start_with_password("edge", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let good = MqttConfig { username: Some("edge".into()), password_file: Some(pw), ..config(&broker.url()) };
    let mut sink = MqttSink::connect(&good, "auth").unwrap();
    assert!(sink.is_connected());
    emit(&mut sink, "auth", 1);
    assert!(sink.flush(Duration::from_secs(3)));
    sink.shutdown().unwrap();

    for bad in [
        MqttConfig { username: Some("edge".into()), password: Some("wrong".into()), client_id: Some("bad1".into()), ..config(&broker.url()) },
        MqttConfig { client_id: Some("bad2".into()), ..config(&broker.url()) },
    ] {
        let t = Instant::now();
        let err = MqttSink::connect(&bad, "auth").err().expect("wrong credentials must fail").to_string();
        assert!(err.contains("refused the login") && err.contains("sinks.mqtt.username") && err.contains("fix:"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}

#[test]
fn bad_url_names_key_and_fix() {
    let err = MqttSink::connect(&config("http://127.0.0.1:1883"), "dev").err().unwrap().to_string();
    assert!(err.contains("sinks.mqtt.url") && err.contains("mqtt://host:1883") && err.contains("fix:"), "{err}");
    let err = edgeseg::config::Config::parse("[sinks.mqtt]\nurl = \"broker:1883\"\n").err().unwrap().to_string();
    assert!(err.contains("sinks.mqtt.url") && err.contains("fix:"), "{err}");
    let err = edgeseg::config::Config::parse("[sinks.mqtt]\nurl = \"mqtt://h\"\nqso = 1\n").err().unwrap().to_string();
    assert!(err.contains("qso"), "{err}");
    edgeseg::config::Config::parse("[sinks.mqtt]\nurl = \"mqtts://broker.example\"\nqos = 2\n").unwrap();
}

//! The dashboard's HTTP API against a real `edgeseg run` (sample frames at
//! 10 FPS, `[dashboard]` on a free loopback port with a token): every
//! endpoint, bad uploads answered 4xx with a message, the token required.
//! The fleet view against a real Mosquitto and two daemons.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::dashboard::{assert_error, daemon, get, http, parse, post, sample, spawn, Daemon, FleetView, TOKEN};
use support::mosquitto::Mosquitto;

#[test]
fn every_endpoint_and_bad_uploads() {
    let d = daemon("");
    let p = d.port;

    // Auth: nothing, a wrong token, basic auth with any user and the token.
    let r = http(p, "GET", "/api/status", &[], b"");
    assert_error(&r, 401, "dashboard.token");
    assert!(r.head.contains("WWW-Authenticate: Basic"), "{}", r.head);
    assert_eq!(http(p, "GET", "/api/stats", &[("Authorization", "Bearer wrong-token-xx")], b"").status, 401);
    let basic = format!("Basic {}", edgeseg::dashboard::base64::encode(format!("anyone:{TOKEN}").as_bytes()));
    assert_eq!(http(p, "GET", "/api/status", &[("Authorization", &basic)], b"").status, 200);
    let basic_wrong = format!("Basic {}", edgeseg::dashboard::base64::encode(b"anyone:nope"));
    assert_eq!(http(p, "GET", "/api/status", &[("Authorization", &basic_wrong)], b"").status, 401);

    // The page and its files, embedded.
    let page = get(p, "/");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<script src=\"/app.js\">"));
    for (path, ctype) in [("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        let r = get(p, path);
        assert_eq!(r.status, 200);
        assert!(r.head.contains(ctype), "{}", r.head);
    }

    let status = get(p, "/api/status").json();
    assert_eq!(status["mode"], "device");
    assert_eq!(status["model"]["classes"][0], "background");
    assert!(status["board"]["config"].as_str().unwrap().ends_with("board.toml"));

    // Counters move while the source runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let s = get(p, "/api/stats").json();
        if s["frames"].as_u64().unwrap() >= 2 {
            break s;
        }
        assert!(Instant::now() < deadline, "no frames judged: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let later = loop {
        std::thread::sleep(Duration::from_millis(300));
        let s = get(p, "/api/stats").json();
        if s["frames"].as_u64() > first["frames"].as_u64() {
            break s;
        }
        assert!(Instant::now() < deadline, "frames stay at {}", first["frames"]);
    };
    assert_eq!(later["frames"].as_u64().unwrap(), later["pass"].as_u64().unwrap() + later["fail"].as_u64().unwrap());
    assert!(later["latency_median"]["infer_ms"].as_f64().unwrap() > 0.0);

    let latency = get(p, "/api/latency").json();
    assert!(latency.as_array().unwrap().len() >= 2 && latency[0]["infer_ms"].as_f64().unwrap() > 0.0);

    // Failing frames are kept with their overlays (the first sample fails).
    let fails = get(p, "/api/failures").json();
    let f0 = &fails[0];
    assert!(f0["findings"].as_array().is_some_and(|f| !f.is_empty()), "{fails}");
    let img = get(p, f0["image"].as_str().unwrap());
    assert_eq!(img.status, 200);
    assert!(img.body.starts_with(&[0xFF, 0xD8]), "a JPEG");
    assert_eq!(get(p, "/api/failures/999999.jpg").status, 404);

    // One stream frame, and the MJPEG stream itself.
    let frame = get(p, "/api/frame.jpg");
    assert_eq!(frame.status, 200);
    assert!(frame.body.starts_with(&[0xFF, 0xD8]));
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /api/stream.mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.windows(14).filter(|w| w == b"--edgesegframe").count() < 3 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended: {:?}", String::from_utf8_lossy(&got[..got.len().min(300)]));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got[..200]).contains("multipart/x-mixed-replace; boundary=edgesegframe"));
    drop(s);

    // Server-Sent Events: per-frame reports.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").unwrap();
    let mut got = String::new();
    while !got.contains("event: frame\ndata: {") || !got[got.find("event: frame").unwrap()..].contains("\n\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "events ended: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("text/event-stream"));
    let data = got.split("event: frame\ndata: ").nth(1).unwrap().split('\n').next().unwrap();
    let report: Value = serde_json::from_str(data).unwrap();
    assert!(report["verdict"] == "pass" || report["verdict"] == "fail");
    drop(s);

    // Prometheus text.
    let m = get(p, "/metrics");
    assert!(m.head.contains("text/plain; version=0.0.4"));
    let text = String::from_utf8_lossy(&m.body);
    for series in ["edgeseg_frames_total{device=", "edgeseg_fail_total{", "edgeseg_defects_total{device=", "stage=\"infer\"", "edgeseg_up{"] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }

    // POST /api/segment: a PNG and a JPEG in, the report out, mask as PNG on request.
    let png = std::fs::read(sample("000000_pcb.png")).unwrap();
    let r = post(p, "/api/segment?mask=png", "image/png", &png);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["verdict"], "fail");
    assert!(j["classes"][0]["rle"]["counts"].is_string());
    let mask = edgeseg::dashboard::base64::decode(j["mask_png_base64"].as_str().unwrap()).unwrap();
    let mask = image::load_from_memory(&mask).unwrap();
    assert_eq!((mask.width(), mask.height()), (j["width"].as_u64().unwrap() as u32, j["height"].as_u64().unwrap() as u32));
    let rgb = image::load_from_memory(&png).unwrap().to_rgb8();
    let mut jpeg = Vec::new();
    rgb.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let r = post(p, "/api/segment", "image/jpeg", &jpeg);
    assert_eq!(r.status, 200);
    assert!(r.json().get("mask_png_base64").is_none());

    // Bad uploads: 4xx with a message and a fix.
    assert_error(&post(p, "/api/segment", "text/plain", b"hello"), 415, "Content-Type");
    assert_error(&post(p, "/api/segment", "image/png", b"this is not a png"), 422, "not a decodable image");
    assert_error(&post(p, "/api/segment", "image/png", &png[..png.len() / 3]), 422, "not a decodable image");
    assert_error(&post(p, "/api/segment", "image/png", b""), 400, "empty");
    // Too large: refused from the headers, before the body is sent.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: image/png\r\nContent-Length: 17000000\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_error(&parse(&raw), 413, "limit");

    // Wrong method, unknown path, malformed request.
    let r = http(p, "GET", "/api/segment", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_error(&r, 405, "not allowed");
    assert!(r.head.contains("Allow: POST"));
    assert_error(&get(p, "/nope"), 404, "no such page");
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.write_all(b"NONSENSE\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_error(&parse(&raw), 400, "malformed");
}

#[test]
fn config_requires_token_beyond_loopback() {
    let err = edgeseg::config::Config::parse("[dashboard]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err().to_string();
    assert!(err.contains("dashboard.token") && err.contains("fix"), "{err}");
    assert!(edgeseg::config::Config::parse("[dashboard]\nlisten = \"0.0.0.0:8080\"\ntoken = \"0123456789abcdef\"\n").is_ok());
    assert!(edgeseg::config::Config::parse("[dashboard]\nlisten = \"127.0.0.1:8080\"\n").is_ok());
    for (body, key) in [
        ("[dashboard]\nlisten = \"8080\"\n", "dashboard.listen"),
        ("[dashboard]\ntoken = \"short\"\n", "dashboard.token"),
        ("[dashboard]\nstream_fps = 0\n", "dashboard.stream_fps"),
        ("[dashboard]\nfailures_kept = 0\n", "dashboard.failures_kept"),
        ("[dashboard]\nport = 8080\n", "port"),
    ] {
        let err = edgeseg::config::Config::parse(body).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("fix"), "{body}: {err}");
    }
    // The embedded demo serves the dashboard on loopback; a file without [dashboard] does not.
    let demo = edgeseg::config::Config::embedded_default();
    assert_eq!(demo.dashboard.as_ref().map(|d| d.listen.as_str()), Some("127.0.0.1:8080"));
    assert!(edgeseg::config::Config::parse("").unwrap().dashboard.is_none());

    // The fleet command checks the same rule.
    let out = Command::new(env!("CARGO_BIN_EXE_edgeseg")).args(["dashboard", "--mqtt", "mqtt://127.0.0.1:1", "--listen", "0.0.0.0:0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--token") && err.contains("fix"), "{err}");
}

#[test]
fn fleet_view_lists_devices_and_marks_stopped_ones_offline() {
    let broker = Mosquitto::start();
    let mqtt = |name: &str| format!("[device]\nname = \"{name}\"\n[source]\nkind = \"sample\"\nfps = 5\n[pipeline]\nstats_interval_s = 1\n[sinks.mqtt]\nurl = \"{}\"\n", broker.url());
    let (mut a, _da) = spawn(&["run"], &mqtt("cam-a"));
    let (b, _db) = spawn(&["run"], &mqtt("cam-b"));
    let _b = Daemon { child: b, port: 0, _dir: tempfile::tempdir().unwrap() };
    let fleet = FleetView::start(&broker.url());
    let port = fleet.port;
    let devices = |want: &dyn Fn(&[Value]) -> bool, what: &str| -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = http(port, "GET", "/api/status", &[], b"").json();
            assert_eq!(s["mode"], "fleet");
            let list = s["devices"].as_array().cloned().unwrap_or_default();
            if want(&list) {
                return list;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let online = |l: &[Value], n: &str| l.iter().any(|d| d["device"] == n && d["online"] == true && d["stats"]["frames"].as_u64().unwrap_or(0) > 0);
    devices(&|l| online(l, "cam-a") && online(l, "cam-b"), "both devices online with frames");
    let _ = Command::new("kill").arg("-TERM").arg(a.child_id_string()).status();
    let _ = a.wait();
    let list = devices(&|l| l.iter().any(|d| d["device"] == "cam-a" && d["online"] == false), "cam-a offline");
    assert!(list.iter().any(|d| d["device"] == "cam-b" && d["online"] == true));
    let m = http(port, "GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("edgeseg_up{device=\"cam-a\"} 0") && text.contains("edgeseg_up{device=\"cam-b\"} 1"), "{text}");
    assert_eq!(http(port, "POST", "/api/segment", &[], b"").status, 404);
    drop(fleet);
}

trait ChildId {
    fn child_id_string(&self) -> String;
}
impl ChildId for Child {
    fn child_id_string(&self) -> String {
        self.id().to_string()
    }
}

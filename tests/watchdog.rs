//! systemd `Type=notify` with `WatchdogSec=` (boards/edgeseg.service), spoken
//! over a unix datagram socket the test binds as systemd would, and a camera
//! absent at start (issue 24: "a pipeline that stops judging is noticed and
//! restarted; a camera absent at start is waited for with backoff").

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::daemon::{edgeseg, write_config, Daemon};
use support::mosquitto::{free_port, retained, Mosquitto};

/// The service manager's end: every datagram with the time it came.
struct Systemd {
    _dir: tempfile::TempDir,
    path: String,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Systemd {
    fn listen() -> Systemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify").display().to_string();
        let sock = UnixDatagram::bind(&path).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                g.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        });
        Systemd { _dir: dir, path, got }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    fn wait(&self, limit: Duration, what: &str, pred: impl Fn(&[(Instant, String)]) -> bool) {
        let start = Instant::now();
        while !pred(&self.messages()) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}; got {:?}", self.messages().iter().map(|m| &m.1).collect::<Vec<_>>());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pings_since(&self, t: Instant) -> usize {
        self.messages().iter().filter(|(at, m)| *at >= t && m == "WATCHDOG=1").count()
    }
}

fn jpeg() -> Vec<u8> {
    let img = image::open(support::daemon::sample("000002_brushed_metal.png")).unwrap().to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out
}

#[test]
fn ready_then_watchdog_only_while_frames_are_judged() {
    let systemd = Systemd::listen();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[source]\nkind = \"stdin\"\n[sinks.stdout]\n[pipeline]\noverlay = false\nstall_timeout_s = 2\n");
    let mut cmd = edgeseg();
    cmd.args(["run", "--config"]).arg(&cfg).stdin(std::process::Stdio::piped());
    cmd.env("NOTIFY_SOCKET", &systemd.path).env("WATCHDOG_USEC", "400000");
    let mut d = Daemon::spawn(&mut cmd);
    let mut stdin = d.child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(systemd.messages().iter().all(|(_, m)| !m.contains("READY=1")), "not ready before the first frame");
    stdin.write_all(&jpeg()).unwrap();
    d.wait_reports(Duration::from_secs(60), "the first frame", |r| r.len() == 1);
    systemd.wait(Duration::from_secs(5), "READY=1 and pings", |m| m.iter().any(|x| x.1 == "READY=1") && m.iter().filter(|x| x.1 == "WATCHDOG=1").count() >= 3);

    // The camera goes silent (the pipe stays open): after the stall limit the pings stop.
    systemd.wait(Duration::from_secs(10), "the stall", |m| m.iter().any(|x| x.1.starts_with("STATUS=stalled")));
    let stalled_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(systemd.pings_since(stalled_at), 0, "no WATCHDOG=1 while stalled");
    assert!(d.log().contains("stalled"), "{}", d.log());

    // Frames again: pings again.
    let resumed = Instant::now();
    stdin.write_all(&jpeg()).unwrap();
    d.wait_reports(Duration::from_secs(60), "the next frame", |r| r.len() == 2);
    systemd.wait(Duration::from_secs(5), "pings after progress", |_| systemd.pings_since(resumed) >= 2);
    drop(stdin);
    systemd.wait(Duration::from_secs(20), "STOPPING=1 at the end", |m| m.iter().any(|x| x.1.starts_with("STOPPING=1")));
}

fn http_get(port: u16, path: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Before: `v4l2 ...: cannot open`, exit 1 (systemd restarted it every 2 s, forever).
#[test]
fn a_camera_missing_at_start_is_waited_for_and_reported() {
    let broker = Mosquitto::start();
    let systemd = Systemd::listen();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[device]\nname = \"cam-9\"\n[source]\nkind = \"v4l2\"\ndevice = \"/dev/video-edgeseg-test-missing\"\nreconnect_max_s = 1\n\
             [sinks.mqtt]\nurl = \"{}\"\n[dashboard]\nlisten = \"127.0.0.1:{port}\"\n",
            broker.url()
        ),
    );
    let mut cmd = edgeseg();
    cmd.args(["run", "--config"]).arg(&cfg).env("NOTIFY_SOCKET", &systemd.path).env("WATCHDOG_USEC", "1000000");
    let mut d = Daemon::spawn(&mut cmd);
    d.wait_log(Duration::from_secs(60), "camera missing");
    // Ready (up and waiting), the watchdog fed, the status says why nothing is judged.
    systemd.wait(Duration::from_secs(10), "READY=1, pings and the status", |m| {
        m.iter().any(|x| x.1 == "READY=1") && m.iter().filter(|x| x.1 == "WATCHDOG=1").count() >= 2 && m.iter().any(|x| x.1.starts_with("STATUS=camera missing"))
    });
    let start = Instant::now();
    let status = loop {
        let s = retained(broker.port, "edgeseg/cam-9/status").map(|r| r.json());
        if s.as_ref().is_some_and(|s| s["health"] == "camera missing") {
            break s.unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "retained status: {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["state"], "online");
    assert_eq!(http_get(port, "/api/status")["health"], "camera missing");
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.child.try_wait().unwrap().is_none(), "still waiting, not exited:\n{}", d.log());
    assert!(d.terminate(Duration::from_secs(10)).success(), "{}", d.log());
}

//! A daemon or fleet view with its dashboard, and raw HTTP/1.1 to it.

#![allow(dead_code)]

use super::mosquitto::free_port;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123";

pub fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet_defects.onnx")
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/images").join(name)
}

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(args: &[&str], body: &str) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("board.toml");
    std::fs::write(&cfg, format!("[model]\npath = {:?}\n{body}", model().display().to_string())).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_edgeseg"))
        .args(args)
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    (child, dir)
}

pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port} after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn daemon(extra: &str) -> Daemon {
    let port = free_port();
    let body = format!("[source]\nkind = \"sample\"\nfps = 10\n[dashboard]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n{extra}");
    let (child, dir) = spawn(&["run"], &body);
    wait_listening(port);
    Daemon { child, port, _dir: dir }
}

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One raw HTTP/1.1 request; reads until the server closes.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

pub fn parse(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    Response { status, head, body: raw[split + 4..].to_vec() }
}

pub fn get(port: u16, path: &str) -> Response {
    http(port, "GET", path, &[("Authorization", &format!("Bearer {TOKEN}"))], b"")
}

pub fn post(port: u16, path: &str, ctype: &str, body: &[u8]) -> Response {
    http(port, "POST", path, &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Type", ctype)], body)
}

pub fn assert_error(r: &Response, status: u16, says: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    let error = j["error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "error {error:?} should mention {says:?}");
    assert!(!j["fix"].as_str().unwrap_or_default().is_empty(), "a fix is given: {j}");
}


/// `edgeseg dashboard --mqtt URL` on a free loopback port, listening; killed on drop.
pub struct FleetView {
    pub child: Child,
    pub port: u16,
}

impl FleetView {
    pub fn start(broker_url: &str) -> FleetView {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_edgeseg"))
            .args(["dashboard", "--mqtt", broker_url, "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        wait_listening(port);
        FleetView { child, port }
    }
}

impl Drop for FleetView {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A real Mosquitto broker per test: free loopback port, its own config,
//! persistence and log in a tempdir; killed on drop. A missing binary fails
//! the test with the install command.

#![allow(dead_code)]

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INSTALL: &str = "mosquitto not found; fix: apt-get install mosquitto mosquitto-clients";

pub fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{name}: {INSTALL}");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Anonymous access, persistence on (saved after every change, so a
    /// SIGKILL keeps subscriber sessions), on a free port.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with("allow_anonymous true\n")
    }

    /// Only `user`/`pass` may connect.
    pub fn start_with_password(user: &str, pass: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwd");
        let st = Command::new(binary("mosquitto_passwd")).arg("-b").arg("-c").arg(&file).arg(user).arg(pass).status().unwrap();
        assert!(st.success(), "mosquitto_passwd failed");
        let extra = format!("allow_anonymous false\npassword_file {}\n", file.display());
        Mosquitto::start_in(dir, &extra)
    }

    pub fn start_with(extra: &str) -> Mosquitto {
        Mosquitto::start_in(tempfile::tempdir().unwrap(), extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &str) -> Mosquitto {
        let port = free_port();
        // Started as root (CI), mosquitto drops to its own user and then cannot save
        // its persistence in this root-owned tempdir ("Error: Permission denied"):
        // subscriber sessions and their queued messages would not survive a restart.
        use std::os::unix::fs::MetadataExt;
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let user = if as_root { "user root\n" } else { "" };
        let conf = format!(
            "listener {port} 127.0.0.1\n{user}{extra}persistence true\npersistence_location {}/\nautosave_interval 1\nautosave_on_changes true\n\
             max_queued_messages 100000\nlog_dest stderr\nlog_type all\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut m = Mosquitto { port, dir, child: None };
        m.restart();
        m
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// (Re)start on the same port with the same config and persistence.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("mosquitto.log")).unwrap();
        let mut child = Command::new(binary("mosquitto"))
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto ({e}); {INSTALL}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("mosquitto exited ({st}) on port {}; log:\n{}", self.port, self.log());
            }
            assert!(Instant::now() < deadline, "mosquitto did not listen on {} within 5 s; log:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// SIGKILL: no goodbye to anyone, like a crashed or power-cut broker.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: the broker saves its persistence (queued messages of
    /// persistent sessions included) and exits without reading further input.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A message as a separate subscriber received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| panic!("{} payload is not JSON ({e}): {:?}", self.topic, String::from_utf8_lossy(&self.payload)))
    }
}

/// A separate rumqttc client subscribed to `filter` at QoS 1; re-subscribes
/// on every (re)connect. With `persistent`, its session outlives broker restarts.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Received>>>,
    client: Client,
    subscribed: Arc<Mutex<u64>>,
}

impl Subscriber {
    pub fn start(port: u16, filter: &str, persistent: bool) -> Subscriber {
        Subscriber::start_as(port, filter, persistent, None)
    }

    /// On a broker that wants a login (`Mosquitto::start_with_password`).
    pub fn start_with_login(port: u16, filter: &str, user: &str, pass: &str) -> Subscriber {
        Subscriber::start_as(port, filter, false, Some((user, pass)))
    }

    fn start_as(port: u16, filter: &str, persistent: bool, login: Option<(&str, &str)>) -> Subscriber {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!("test-sub-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((user, pass)) = login {
            o.set_credentials(user, pass);
        }
        o.set_clean_session(!persistent);
        o.set_max_packet_size(16 << 20, 16 << 20);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = Client::new(o, 100);
        let got = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(0u64));
        let (g, s, c, f) = (got.clone(), subscribed.clone(), client.clone(), filter.to_string());
        std::thread::spawn(move || loop {
            match conn.recv() {
                Err(_) => break,
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    let _ = c.try_subscribe(f.clone(), QoS::AtLeastOnce);
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => *s.lock().unwrap_or_else(|e| e.into_inner()) += 1,
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    g.lock().unwrap_or_else(|e| e.into_inner()).push(Received { topic: p.topic.clone(), payload: p.payload.to_vec(), retain: p.retain })
                }
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
            }
        });
        let sub = Subscriber { got, client, subscribed };
        sub.wait_subscribed(1);
        sub
    }

    pub fn wait_subscribed(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while *self.subscribed.lock().unwrap() < n {
            assert!(Instant::now() < deadline, "subscriber got no SUBACK");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until `pred` holds for what arrived so far (or panic after `timeout`).
    pub fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let got = self.got.lock().unwrap();
                if pred(&got) {
                    return got.clone();
                }
                if Instant::now() >= deadline {
                    let mut topics = std::collections::BTreeMap::<&str, usize>::new();
                    for r in got.iter() {
                        *topics.entry(&r.topic).or_default() += 1;
                    }
                    let frames: Vec<_> = got.iter().filter_map(|r| serde_json::from_slice::<Value>(&r.payload).ok()?["frame"].as_u64()).collect();
                    panic!("timed out waiting for {what}; got {} messages {topics:?}, frames {frames:?}", got.len());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn on(&self, topic: &str) -> Vec<Received> {
        self.got.lock().unwrap().iter().filter(|r| r.topic == topic).cloned().collect()
    }

    pub fn stop(&self) {
        let _ = self.client.try_disconnect();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The retained message on `topic` as a fresh subscriber sees it.
pub fn retained(port: u16, topic: &str) -> Option<Received> {
    let sub = Subscriber::start(port, topic, false);
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Some(r) = sub.on(topic).into_iter().find(|r| r.retain) {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Poll the retained `status` until its `state` is `want` (or panic after `timeout`).
pub fn wait_status(port: u16, topic: &str, want: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = retained(port, topic);
        if let Some(v) = r.as_ref().map(Received::json) {
            if v["state"] == want {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "retained {topic} never became {want:?}; last: {:?}", r.map(|r| r.json()));
        std::thread::sleep(Duration::from_millis(50));
    }
}

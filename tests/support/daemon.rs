//! `edgeseg run` as a child process, as an operator (or systemd) runs it:
//! its JSON lines and its log collected by threads, signals sent with kill(1).

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn edgeseg() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgeseg"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).env("RUST_LOG", "info");
    c
}

pub fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet_defects.onnx")
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/images").join(name)
}

/// `dir/board.toml` with the committed model and `body`.
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    write_config_with_model(dir, &model(), body)
}

pub fn write_config_with_model(dir: &Path, model: &Path, body: &str) -> PathBuf {
    let path = dir.join("board.toml");
    let text = format!("[model]\npath = {:?}\n{body}", model.display().to_string());
    std::fs::write(&path, text).unwrap();
    path
}

/// A running daemon; killed on drop if still running.
pub struct Daemon {
    pub child: Child,
    pub docs: Arc<Mutex<Vec<Value>>>,
    pub log: Arc<Mutex<String>>,
}

impl Daemon {
    /// `edgeseg run --config CONFIG` with stdout and stderr collected.
    pub fn start(config: &Path) -> Daemon {
        Daemon::spawn(edgeseg().args(["run", "--config"]).arg(config))
    }

    pub fn spawn(cmd: &mut Command) -> Daemon {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let docs = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let d = docs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    d.lock().unwrap().push(v);
                }
            }
        });
        let l = log.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                l.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Daemon { child, docs, log }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill").args([sig, &self.pid()]).status().unwrap();
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Frame reports so far (stats lines left out).
    pub fn reports(&self) -> Vec<Value> {
        self.docs.lock().unwrap().iter().filter(|d| d.get("verdict").is_some()).cloned().collect()
    }

    /// Wait until `pred` holds for the reports so far; panics with the log after `limit`.
    pub fn wait_reports(&mut self, limit: Duration, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let r = self.reports();
            if pred(&r) {
                return r;
            }
            self.assert_running(what);
            assert!(start.elapsed() < limit, "timed out waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the log contains `text`; panics with the log after `limit`.
    pub fn wait_log(&mut self, limit: Duration, text: &str) {
        self.wait_log_count(limit, text, 1);
    }

    /// Wait until the log contains `text` `n` times.
    pub fn wait_log_count(&mut self, limit: Duration, text: &str, n: usize) {
        let start = Instant::now();
        while self.log().matches(text).count() < n {
            self.assert_running(text);
            assert!(start.elapsed() < limit, "timed out waiting for {text:?} in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pipelines started so far (each logs its source when it starts): after a
    /// reload that switched over, one more.
    pub fn pipelines(&self) -> usize {
        self.log().matches("] source: ").count()
    }

    fn assert_running(&mut self, what: &str) {
        if let Some(st) = self.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(200));
            panic!("the daemon exited ({st}) while waiting for {what}; log:\n{}", self.log());
        }
    }

    /// SIGTERM, and the exit status within `limit` (panics if it does not stop).
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.signal("-TERM");
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            assert!(start.elapsed() < limit, "SIGTERM did not stop the daemon within {limit:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

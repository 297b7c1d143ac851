//! systemd's notification protocol (sd_notify(3)) spoken directly, without
//! libsystemd: datagrams of `KEY=VALUE` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name written `@name`).
//!
//! With `Type=notify` and `WatchdogSec=` (boards/edgeseg.service) the
//! watchdog thread says `READY=1` once the pipeline made progress (its first
//! frame judged, or a legitimate wait: a missing camera retried with backoff,
//! a trigger-driven line between parts), `WATCHDOG=1` only while it keeps
//! making progress (`Monitor::alive`), `STATUS=` lines an operator sees in
//! `systemctl status`, and `STOPPING=1` on SIGTERM. A pipeline that stops
//! judging (camera silent, inference stuck) is no longer vouched for, and
//! systemd restarts the service.

use super::monitor::{Health, Monitor};
use anyhow::{bail, Context, Result};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seconds between two STATUS lines that say the same thing with new figures.
const STATUS_REFRESH: Duration = Duration::from_secs(30);

/// A connection to the service manager's notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; None when the daemon does not run under systemd (`Type=notify`).
    pub fn from_env() -> Result<Option<Notifier>> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(s) if !s.is_empty() => Notifier::to(&s).map(Some),
            _ => Ok(None),
        }
    }

    /// To the socket at `path`, or the abstract socket `@name`.
    pub fn to(path: &str) -> Result<Notifier> {
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None if path.starts_with('/') => SocketAddr::from_pathname(path),
            None => bail!("NOTIFY_SOCKET={path:?} is neither an absolute path nor an abstract @name; fix: start edgeseg from systemd with Type=notify"),
        }
        .with_context(|| format!("NOTIFY_SOCKET={path:?} is not a usable socket address"))?;
        let socket = UnixDatagram::unbound().context("creating a socket for sd_notify")?;
        Ok(Notifier { socket, addr })
    }

    /// Send one notification (`READY=1`, `WATCHDOG=1`, `STATUS=...`, several lines at once).
    pub fn send(&self, state: &str) -> std::io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.addr).map(|_| ())
    }
}

/// `$WATCHDOG_USEC` when it is meant for this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval_from_env() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The thread that keeps systemd informed; stops (saying `STOPPING=1`) when the monitor says so.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Start with the environment's socket and interval; None outside systemd.
    pub fn from_env(monitor: Arc<Monitor>) -> Result<Option<Watchdog>> {
        let Some(notifier) = Notifier::from_env()? else { return Ok(None) };
        let interval = watchdog_interval_from_env();
        match interval {
            Some(i) => log::info!("systemd: notify socket and watchdog every {:.1} s; stall limit {:.0} s", i.as_secs_f64(), monitor.stall_after().as_secs_f64()),
            None => log::info!("systemd: notify socket, no watchdog"),
        }
        Ok(Some(Watchdog::start(notifier, monitor, interval)))
    }

    pub fn start(notifier: Notifier, monitor: Arc<Monitor>, interval: Option<Duration>) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("sd-notify".into()).spawn(move || run(&notifier, &monitor, interval, &stop)).ok()
        };
        Watchdog { stop, thread }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Judging,
    CameraMissing,
    Stalled,
}

fn phase(monitor: &Monitor) -> Phase {
    match (monitor.since_progress(), monitor.alive(), monitor.health()) {
        (None, _, _) => Phase::Starting,
        (_, false, _) => Phase::Stalled,
        (_, true, Health::CameraMissing) => Phase::CameraMissing,
        (_, true, Health::Ok) => Phase::Judging,
    }
}

fn status_line(p: Phase, monitor: &Monitor) -> String {
    match p {
        Phase::Starting => "STATUS=starting: waiting for the first frame".to_string(),
        Phase::Judging => format!("STATUS=judging: {} frame(s) so far", monitor.judged_count()),
        Phase::CameraMissing => "STATUS=camera missing: retrying with backoff (see the log)".to_string(),
        Phase::Stalled => format!(
            "STATUS=stalled: no progress for {:.0} s (limit pipeline.stall_timeout_s = {:.0} s); watchdog not fed",
            monitor.since_progress().unwrap_or_default().as_secs_f64(),
            monitor.stall_after().as_secs_f64()
        ),
    }
}

fn run(n: &Notifier, monitor: &Monitor, interval: Option<Duration>, stop: &AtomicBool) {
    // Half the watchdog interval, as sd_watchdog_enabled(3) advises; at least once a second.
    let tick = interval.map_or(Duration::from_secs(1), |i| (i / 2).min(Duration::from_secs(1)));
    let (mut ready, mut shown, mut shown_at) = (false, None, Instant::now());
    let report = |r: std::io::Result<()>| {
        if let Err(e) = r {
            log::debug!("sd_notify: {e}");
        }
    };
    loop {
        // The daemon drains (SIGTERM), or is past its pipeline (the watchdog is dropped).
        if monitor.stopping() || stop.load(Ordering::Relaxed) {
            report(n.send("STOPPING=1\nSTATUS=stopping: draining"));
            return;
        }
        let p = phase(monitor);
        if !ready && p != Phase::Starting {
            ready = true;
            report(n.send("READY=1"));
        }
        if shown != Some(p) || shown_at.elapsed() >= STATUS_REFRESH {
            if p == Phase::Stalled && shown != Some(Phase::Stalled) {
                log::error!("{}; systemd will restart the daemon", status_line(p, monitor).trim_start_matches("STATUS="));
            } else if shown == Some(Phase::Stalled) && p != Phase::Stalled {
                log::info!("pipeline moving again");
            }
            report(n.send(&status_line(p, monitor)));
            (shown, shown_at) = (Some(p), Instant::now());
        }
        if ready && interval.is_some() && p != Phase::Stalled {
            report(n.send("WATCHDOG=1"));
        }
        std::thread::sleep(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        (dir, sock, path.display().to_string())
    }

    fn drain(sock: &UnixDatagram, for_: Duration) -> Vec<String> {
        let (mut out, mut buf, end) = (Vec::new(), [0u8; 4096], Instant::now() + for_);
        while Instant::now() < end {
            if let Ok(n) = sock.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    #[test]
    fn ready_then_pings_only_while_progressing_then_stopping() {
        let (_dir, sock, path) = listen();
        let monitor = Monitor::new(Duration::from_millis(300));
        let dog = Watchdog::start(Notifier::to(&path).unwrap(), monitor.clone(), Some(Duration::from_millis(100)));
        let before = drain(&sock, Duration::from_millis(200));
        assert!(before.iter().all(|m| !m.contains("READY=1") && !m.contains("WATCHDOG=1")), "nothing vouched for before progress: {before:?}");
        let stop_feeding = Arc::new(AtomicBool::new(false));
        let feeder = {
            let (m, s) = (monitor.clone(), stop_feeding.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    m.judged();
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let running = drain(&sock, Duration::from_millis(400));
        assert_eq!(running.iter().filter(|m| m.contains("READY=1")).count(), 1, "{running:?}");
        assert!(running.iter().filter(|m| *m == "WATCHDOG=1").count() >= 4, "{running:?}");
        assert!(running.iter().any(|m| m.starts_with("STATUS=judging")), "{running:?}");
        stop_feeding.store(true, Ordering::Relaxed);
        feeder.join().unwrap();
        let stalled = drain(&sock, Duration::from_millis(900));
        let last_ping = stalled.iter().rposition(|m| m == "WATCHDOG=1");
        let stall_msg = stalled.iter().position(|m| m.starts_with("STATUS=stalled")).unwrap_or_else(|| panic!("{stalled:?}"));
        assert!(last_ping.is_none_or(|i| i < stall_msg), "no ping once stalled: {stalled:?}");
        monitor.judged();
        let back = drain(&sock, Duration::from_millis(200));
        assert!(back.iter().any(|m| m == "WATCHDOG=1"), "pings resume with progress: {back:?}");
        monitor.set_stopping();
        let end = drain(&sock, Duration::from_millis(200));
        assert!(end.iter().any(|m| m.starts_with("STOPPING=1")), "{end:?}");
        drop(dog);
    }

    #[test]
    fn abstract_and_bad_addresses() {
        assert!(Notifier::to("@edgeseg-test-notify").is_ok());
        let e = Notifier::to("relative/sock").err().unwrap().to_string();
        assert!(e.contains("NOTIFY_SOCKET") && e.contains("fix:"), "{e}");
    }
}

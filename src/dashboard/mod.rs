//! The dashboard: a web page and an HTTP API beside the pipeline.
//!
//! - Device view (`edgeseg run` with `[dashboard]`): `device.rs` serves the
//!   live MJPEG stream with overlays, Server-Sent Events of per-frame
//!   reports, counters, latency history, the last failing frames, model and
//!   board info, `POST /api/segment` (`api.rs`) and `/metrics` (`metrics.rs`).
//!   A `DashboardSink` on the output thread feeds the shared `DeviceState`
//!   (`state.rs`), which outlives SIGHUP reloads; the server is started once.
//! - Fleet view (`edgeseg dashboard --mqtt URL`, `fleet.rs`): the same page
//!   fed by the MQTT topics of every device.
//!
//! The page (`assets/`) is plain HTML/JS/CSS compiled into the binary: nothing
//! is fetched from elsewhere at run time. The HTTP server is `http/`: a client
//! is checked (Host, token, route, limits) from its request head before any
//! body is read, within deadlines, on slots bounded per client address.

pub mod api;
pub mod base64;
pub mod device;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod state;

use anyhow::{bail, Result};
use serde::Deserialize;
use std::net::{SocketAddr, TcpStream};

pub use device::{DashboardSink, DeviceDashboard, PreparedView};

/// Largest `POST /api/segment` body.
pub const MAX_UPLOAD: usize = 16 << 20;

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const STYLE_CSS: &str = include_str!("assets/style.css");

/// `[dashboard]` in a board config.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard (the off-switch).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address and port, e.g. "127.0.0.1:8080" or "0.0.0.0:8080".
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Required when `listen` is not a loopback address.
    #[serde(default)]
    pub token: Option<String>,
    /// Most frames per second sent to stream viewers (JPEG encoding happens only for them).
    #[serde(default = "default_stream_fps")]
    pub stream_fps: f64,
    /// Failing frames (with overlays) kept for the page.
    #[serde(default = "default_failures_kept")]
    pub failures_kept: usize,
}

fn default_true() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:8080".to_string()
}
fn default_stream_fps() -> f64 {
    10.0
}
fn default_failures_kept() -> usize {
    12
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            listen: default_listen(),
            token: None,
            stream_fps: default_stream_fps(),
            failures_kept: default_failures_kept(),
        }
    }
}

impl DashboardConfig {
    pub fn check(&self) -> Result<()> {
        check_listen(&self.listen, self.token.as_deref(), "dashboard.listen", "dashboard.token")?;
        if !(self.stream_fps > 0.0 && self.stream_fps <= 60.0) {
            bail!("key dashboard.stream_fps = {} is out of range; fix: use a value in (0, 60], e.g. 10", self.stream_fps);
        }
        if !(1..=200).contains(&self.failures_kept) {
            bail!("key dashboard.failures_kept = {} is out of range; fix: use 1..=200, e.g. 12", self.failures_kept);
        }
        Ok(())
    }

    pub fn addr(&self) -> Result<SocketAddr> {
        parse_listen(&self.listen, "dashboard.listen")
    }
}

/// "HOST:PORT" with an IP address (or `localhost`).
pub fn parse_listen(listen: &str, key: &str) -> Result<SocketAddr> {
    let text = listen.strip_prefix("localhost:").map(|p| format!("127.0.0.1:{p}"));
    match text.as_deref().unwrap_or(listen).parse::<SocketAddr>() {
        Ok(a) => Ok(a),
        Err(_) => bail!("key {key} = {listen:?} is not an address and port; fix: write it as IP:PORT, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\" (all interfaces)"),
    }
}

/// The address, checked: beyond loopback a token is required.
pub fn check_listen(listen: &str, token: Option<&str>, listen_key: &str, token_key: &str) -> Result<SocketAddr> {
    let addr = parse_listen(listen, listen_key)?;
    if let Some(t) = token {
        if t.len() < 8 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("key {token_key} must be at least 8 characters without spaces; fix: e.g. `openssl rand -hex 16`");
        }
    } else if !addr.ip().is_loopback() {
        bail!(
            "key {listen_key} = {listen:?} serves beyond this machine but {token_key} is not set; fix: set {token_key} (e.g. `openssl rand -hex 16`; \
             browsers log in with any user name and the token as password), or listen on 127.0.0.1"
        );
    }
    Ok(addr)
}

/// Bind `addr`; the error names the key and the fix.
pub fn bind(addr: SocketAddr, key: &str) -> Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!("key {key}: cannot listen on {addr}: {e}; fix: pick a free port (another edgeseg or web server may hold it), or set dashboard.enabled = false")
    })
}

/// The URL to log.
pub fn url_of(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("http://[{host}]:{}/", addr.port())
    } else {
        format!("http://{host}:{}/", addr.port())
    }
}

/// The embedded page files (`GET /`, `/app.js`, `/style.css`); false when `path` is none of them.
pub fn serve_asset(path: &str, out: &mut TcpStream) -> std::io::Result<bool> {
    let (body, ctype) = match path {
        "/" | "/index.html" => (INDEX_HTML, "text/html; charset=utf-8"),
        "/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        _ => return Ok(false),
    };
    http::respond(out, 200, ctype, &[], body.as_bytes())?;
    Ok(true)
}

/// The standard refusals for a path that is unknown, or known under other methods.
pub fn not_found(req: &http::Request, out: &mut TcpStream, known: &[(&str, &str)]) -> std::io::Result<()> {
    if let Some((_, allow)) = known.iter().find(|(p, _)| *p == req.path) {
        let e = http::HttpError::new(405, format!("{} is not allowed on {}", req.method, req.path), format!("use {allow}"));
        return http::respond_error_with(out, &e, &[("Allow", allow)]);
    }
    let list: Vec<&str> = known.iter().map(|(p, _)| *p).collect();
    let e = http::HttpError::new(404, format!("no such page: {}", req.path), format!("use one of {}", list.join(", ")));
    http::respond_error(out, &e)
}

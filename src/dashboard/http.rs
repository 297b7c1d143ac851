//! A small HTTP/1.1 server on `std::net`: one thread per connection (at most
//! `MAX_CONNECTIONS`), one request per connection (`Connection: close`), so
//! long-lived responses (MJPEG, Server-Sent Events) are just handlers that
//! keep writing. Requests are read with limits (request line, headers, body);
//! every refusal is a JSON `{"error": ..., "fix": ...}` with a 4xx status.

use log::{debug, info, warn};
use serde::Serialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 32;
/// Longest request line or header line.
const MAX_LINE: usize = 8 * 1024;
const MAX_HEADERS: usize = 64;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write may block before the client counts as gone (a stalled viewer).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A refusal: status, what went wrong, how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    pub status: u16,
    pub error: String,
    pub fix: String,
}

impl HttpError {
    pub fn new(status: u16, error: impl Into<String>, fix: impl Into<String>) -> HttpError {
        HttpError { status, error: error.into(), fix: fix.into() }
    }
}

#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of `key` in the query string (no percent-decoding: keys and values are plain words).
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query.split('&').filter_map(|kv| kv.split_once('=').or(Some((kv, "")))).find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// What serves requests once they are read and authorised.
pub trait Handler: Send + Sync + 'static {
    /// Answer `req` on `out`. Long-lived responses return when the client goes away or `stop` is set.
    fn handle(&self, req: &Request, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()>;
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A whole response with `Content-Length`.
pub fn respond(out: &mut impl Write, status: u16, content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

pub fn respond_json<T: Serialize + ?Sized>(out: &mut impl Write, status: u16, value: &T) -> std::io::Result<()> {
    match serde_json::to_vec(value) {
        Ok(body) => respond(out, status, "application/json", &[], &body),
        Err(e) => respond_error(out, &HttpError::new(500, format!("cannot serialise the answer: {e}"), "report this as a bug")),
    }
}

pub fn respond_error(out: &mut impl Write, e: &HttpError) -> std::io::Result<()> {
    respond_error_with(out, e, &[])
}

pub fn respond_error_with(out: &mut impl Write, e: &HttpError, extra: &[(&str, &str)]) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        fix: &'a str,
    }
    // Two strings always serialise.
    let body = serde_json::to_vec(&Body { error: &e.error, fix: &e.fix }).unwrap_or_default();
    respond(out, e.status, "application/json", extra, &body)
}

/// Start of a streamed response: status line and headers, no length.
pub fn start_stream(out: &mut impl Write, content_type: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\nCache-Control: no-store, no-cache\r\nX-Accel-Buffering: no\r\n\r\n"
    );
    out.write_all(head.as_bytes())?;
    out.flush()
}

/// One line of at most MAX_LINE bytes, without the CRLF. None at a clean end of stream.
fn read_line(r: &mut impl BufRead) -> Result<Option<String>, HttpError> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE as u64 + 2).read_until(b'\n', &mut buf).map_err(|e| HttpError::new(400, format!("reading the request: {e}"), "send a complete HTTP/1.1 request"))?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err(HttpError::new(431, format!("a request or header line is longer than {MAX_LINE} bytes"), "send shorter headers"));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map(Some).map_err(|_| HttpError::new(400, "request line or header is not UTF-8", "send ASCII headers"))
}

/// Read one request. `max_body` bounds Content-Length (413 above it). `Ok(None)`: the client closed.
pub fn read_request(r: &mut BufReader<TcpStream>, max_body: usize) -> Result<Option<Request>, HttpError> {
    let Some(line) = read_line(r)? else { return Ok(None) };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(HttpError::new(400, format!("malformed request line {line:?}"), "send `METHOD /path HTTP/1.1`"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(HttpError::new(400, format!("malformed request line {line:?}"), "send `METHOD /path HTTP/1.1`"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request { method: method.to_string(), path: path.to_string(), query: query.to_string(), ..Request::default() };
    loop {
        let Some(h) = read_line(r)? else {
            return Err(HttpError::new(400, "the request ended inside its headers", "end the headers with an empty line"));
        };
        if h.is_empty() {
            break;
        }
        if req.headers.len() >= MAX_HEADERS {
            return Err(HttpError::new(431, format!("more than {MAX_HEADERS} headers"), "send fewer headers"));
        }
        let Some((k, v)) = h.split_once(':') else {
            return Err(HttpError::new(400, format!("malformed header line {h:?}"), "write headers as `Name: value`"));
        };
        req.headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    if req.header("transfer-encoding").is_some() {
        return Err(HttpError::new(411, "chunked request bodies are not accepted", "send the body with a Content-Length header (curl --data-binary @file does)"));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| HttpError::new(400, format!("Content-Length {v:?} is not a number"), "send the body's size in bytes"))?,
    };
    if len > max_body {
        return Err(HttpError::new(
            413,
            format!("the body is {len} bytes; the limit is {max_body} bytes ({} MiB)", max_body >> 20),
            "send a smaller image (downscale it or use JPEG)",
        ));
    }
    if len > 0 {
        if req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            let _ = r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        req.body.resize(len, 0);
        r.read_exact(&mut req.body).map_err(|e| HttpError::new(400, format!("the body ended early: {e}"), "send as many bytes as Content-Length says"))?;
    }
    Ok(Some(req))
}

/// Constant-time comparison (the token should not leak through timing).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `req` carries `token`: `Authorization: Bearer TOKEN`, or basic auth with any user and TOKEN as password.
pub fn authorised(req: &Request, token: &str) -> bool {
    let Some(auth) = req.header("authorization") else { return false };
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return same(value.trim().as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        if let Some(decoded) = super::base64::decode(value.trim()) {
            if let Some(pos) = decoded.iter().position(|b| *b == b':') {
                return same(&decoded[pos + 1..], token.as_bytes());
            }
        }
    }
    false
}

/// A running server; dropping it stops accepting (streams end within a second).
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serve `handler` on `listener`. With `token`, every request must carry it.
    pub fn start(listener: TcpListener, token: Option<String>, max_body: usize, handler: Arc<dyn Handler>) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("dashboard".into()).spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut stream) = conn else { continue };
                    if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                        let e = HttpError::new(503, format!("more than {MAX_CONNECTIONS} connections"), "close other dashboard tabs or viewers and retry");
                        let _ = respond_error(&mut stream, &e);
                        continue;
                    }
                    active.fetch_add(1, Ordering::Relaxed);
                    let (handler, token, stop, active) = (handler.clone(), token.clone(), stop.clone(), active.clone());
                    let spawned = std::thread::Builder::new().name("dashboard-conn".into()).spawn(move || {
                        serve_one(stream, token.as_deref(), max_body, handler.as_ref(), &stop);
                        active.fetch_sub(1, Ordering::Relaxed);
                    });
                    if let Err(e) = spawned {
                        warn!("dashboard: cannot start a connection thread: {e}");
                    }
                }
                info!("dashboard on {addr} stopped");
            })?
        };
        Ok(Server { addr, stop, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(stream: TcpStream, token: Option<&str>, max_body: usize, handler: &dyn Handler, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else { return };
    let mut out = write_half;
    let mut reader = BufReader::new(stream);
    let req = match read_request(&mut reader, max_body) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            debug!("dashboard: refused a request: {}", e.error);
            let _ = respond_error(&mut out, &e);
            // Let the client read the refusal before the socket closes on unread data.
            let _ = out.shutdown(Shutdown::Write);
            let _ = reader.get_ref().set_read_timeout(Some(Duration::from_millis(300)));
            let _ = std::io::copy(&mut reader.take(4 << 20), &mut std::io::sink());
            return;
        }
    };
    if let Some(token) = token {
        if !authorised(&req, token) {
            let e = HttpError::new(401, "this dashboard needs the token of key dashboard.token", "send `Authorization: Bearer TOKEN`, or log in with any user name and the token as password");
            let _ = respond_error_with(&mut out, &e, &[("WWW-Authenticate", "Basic realm=\"edgeseg\", charset=\"UTF-8\"")]);
            return;
        }
    }
    if let Err(e) = handler.handle(&req, &mut out, stop) {
        debug!("dashboard: {} {}: {e}", req.method, req.path);
    }
    let _ = out.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `raw` through a loopback socket into `read_request`.
    fn read(raw: &[u8], max_body: usize) -> Result<Option<Request>, HttpError> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.write_all(raw).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let (s, _) = l.accept().unwrap();
        read_request(&mut BufReader::new(s), max_body)
    }

    #[test]
    fn parses_request_line_headers_and_body() {
        let r = read(b"POST /api/segment?mask=png&x HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nabc", 10).unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/segment"));
        assert_eq!(r.query_param("mask"), Some("png"));
        assert_eq!(r.query_param("x"), Some(""));
        assert_eq!(r.header("content-type"), Some("image/png"));
        assert_eq!(r.body, b"abc");
        assert!(read(b"", 10).unwrap().is_none());
    }

    #[test]
    fn refuses_malformed_and_oversized_requests() {
        let status = |raw: &[u8]| read(raw, 10).unwrap_err().status;
        assert_eq!(status(b"GARBAGE\r\n\r\n"), 400);
        assert_eq!(status(b"GET nopath HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), 413);
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 411);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE + 10));
        assert_eq!(status(long.as_bytes()), 431);
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()), 431);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n"), 400);
    }

    #[test]
    fn token_by_bearer_or_basic_auth() {
        let with = |v: &str| Request { headers: vec![("authorization".into(), v.into())], ..Request::default() };
        let token = "s3cret-token";
        assert!(authorised(&with("Bearer s3cret-token"), token));
        assert!(authorised(&with("bearer s3cret-token"), token));
        assert!(!authorised(&with("Bearer s3cret-tokeN"), token));
        let basic = |u: &str, p: &str| format!("Basic {}", crate::dashboard::base64::encode(format!("{u}:{p}").as_bytes()));
        assert!(authorised(&with(&basic("anyone", token)), token));
        assert!(authorised(&with(&basic("", token)), token));
        assert!(!authorised(&with(&basic(token, "x")), token));
        assert!(!authorised(&with("Basic !!!"), token));
        assert!(!authorised(&Request::default(), token));
    }
}

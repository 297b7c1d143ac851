//! Reading a request off the socket against deadlines: the whole head within
//! one deadline (not per read, so a byte every few seconds does not keep a
//! slot), the body at a minimum rate, a refused request's rest drained briefly.

use super::HttpError;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The head (with what arrived after it) in a fixed buffer.
pub struct Head {
    pub buf: Box<[u8]>,
    /// Where the head ends in `buf`.
    pub len: usize,
    /// Bytes in `buf`: the ones past `len` are the start of the body.
    pub filled: usize,
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Read until the time left to `deadline` (at least 1 ms, at most `idle`).
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant, idle: Duration) -> std::io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left.min(idle).max(Duration::from_millis(1))))?;
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Read a request head of at most `max` bytes that must be complete by `deadline`.
/// `Ok(None)`: the client closed without sending anything.
pub fn read_head(stream: &mut TcpStream, max: usize, deadline: Instant, within: Duration) -> Result<Option<Head>, HttpError> {
    let mut buf = vec![0u8; max].into_boxed_slice();
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Err(HttpError::new(431, format!("the request head is longer than {max} bytes"), "send shorter headers"));
        }
        let n = match read_by(stream, &mut buf[filled..], deadline, within) {
            Ok(n) => n,
            Err(e) if timed_out(&e) => {
                return Err(HttpError::new(408, format!("the request head did not arrive within {} s", within.as_secs()), "send the whole request at once"));
            }
            Err(e) => return Err(HttpError::new(400, format!("reading the request: {e}"), "send a complete HTTP/1.1 request")),
        };
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(HttpError::new(400, "the request ended inside its headers", "end the headers with an empty line"));
        }
        let from = filled;
        filled += n;
        if let Some(len) = super::parse::head_end(&buf[..filled], from) {
            return Ok(Some(Head { buf, len, filled }));
        }
    }
}

/// Time a body of `len` bytes may take: a grace period plus `len` at `min_rate` bytes/s.
pub fn body_time(len: usize, min_rate: u64, grace: Duration) -> Duration {
    grace + Duration::from_secs_f64(len as f64 / min_rate.max(1) as f64)
}

/// Fill `body` (its first `already` bytes are there) by `deadline`.
pub fn read_body(stream: &mut TcpStream, body: &mut [u8], already: usize, deadline: Instant, idle: Duration) -> Result<(), HttpError> {
    let mut at = already;
    while at < body.len() {
        match read_by(stream, &mut body[at..], deadline, idle) {
            Ok(0) => return Err(HttpError::new(400, format!("the body ended after {at} of {} bytes", body.len()), "send as many bytes as Content-Length says")),
            Ok(n) => at += n,
            Err(e) if timed_out(&e) => {
                return Err(HttpError::new(408, format!("the body arrived too slowly ({at} of {} bytes in time)", body.len()), "send the body at once, over a faster link"));
            }
            Err(e) => return Err(HttpError::new(400, format!("reading the body: {e}"), "send as many bytes as Content-Length says")),
        }
    }
    Ok(())
}

/// After a refusal: read and discard what the client is still sending, for at
/// most `time` and `max` bytes, so it sees the answer rather than a reset.
pub fn drain(stream: &mut TcpStream, max: usize, time: Duration) {
    let deadline = Instant::now() + time;
    let mut scrap = [0u8; 8192];
    let mut seen = 0;
    while seen < max {
        match read_by(stream, &mut scrap, deadline, time) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen += n,
        }
    }
}

//! A small HTTP/1.1 server on `std::net`: one thread per connection, one
//! request per connection (`Connection: close`), so long-lived responses
//! (MJPEG, Server-Sent Events) are just handlers that keep writing. Every
//! refusal is a JSON `{"error": ..., "fix": ...}` with a 4xx/5xx status.
//!
//! - `parse.rs`: the request head parser (pure; fuzzed);
//! - `read.rs`: reading head and body against deadlines;
//! - `access.rs`, `auth.rs`: Host/Origin rules and the token;
//! - `slots.rs`: connection and body-memory budgets with guards;
//! - `server.rs`: the accept loop and a connection's steps.

pub mod access;
pub mod auth;
pub mod parse;
pub mod read;
pub mod server;
pub mod slots;

pub use server::{Limits, Server};

use serde::Serialize;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;

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
    /// HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// From Content-Length (0 without one).
    pub content_length: u64,
    /// Read only when the handler's `admit` takes a body for this request.
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

/// What a request may do, decided from its head.
#[derive(Clone, Copy, Debug, Default)]
pub struct Route {
    /// Largest body read for it; 0: none is read (the handler answers without it).
    pub max_body: usize,
    /// A long-lived response (a stream slot instead of a request slot).
    pub long_lived: bool,
}

/// What serves requests once their head is read and authorised.
pub trait Handler: Send + Sync + 'static {
    /// Decide from the head alone, before any body byte is read: the body
    /// limit and kind of response, or a refusal (wrong method or content type).
    fn admit(&self, _head: &Request) -> Result<Route, HttpError> {
        Ok(Route::default())
    }

    /// Answer `req` on `out`. Long-lived responses return when the client goes away or `stop` is set.
    fn handle(&self, req: &Request, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()>;
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
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

#[cfg(test)]
mod server_tests;

//! The request head parser: bytes in, a `Request` (without its body) or a
//! refusal out. Pure (no I/O), so it is fuzzed directly (`fuzz/fuzz_targets/
//! http_request.rs`). Follows RFC 9112 where a lenient reading would let two
//! parsers disagree about a message: Content-Length must be digits and agree
//! with itself, Transfer-Encoding is refused (we take no chunked bodies),
//! HTTP/1.1 needs exactly one Host, no whitespace before a colon, no line
//! folding, no control characters.

use super::{HttpError, Request};

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 64;
/// Content-Length values longer than this many digits are refused as too large (no overflow).
const MAX_LENGTH_DIGITS: usize = 15;

fn bad(error: impl Into<String>, fix: impl Into<String>) -> HttpError {
    HttpError::new(400, error, fix)
}

/// Where the head in `buf` ends (index just past its empty line), looking from
/// `from` on. Lines end in CRLF or a bare LF (RFC 9112 §2.2 lets a server accept LF).
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    // The terminator ("\n\n" or "\n\r\n") may straddle the previous read: look 3 bytes back.
    for i in from.saturating_sub(3)..buf.len() {
        if buf[i] == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
    }
    None
}

/// `tchar` of RFC 9110 §5.6.2: what method names and header names are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The lines of `head`: split at LF, a CR only as the last byte before it.
fn lines(head: &[u8]) -> Result<Vec<&[u8]>, HttpError> {
    let mut out = Vec::new();
    for raw in head.split(|b| *b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.contains(&b'\r') {
            return Err(bad("a bare CR inside the request head", "end lines with CRLF"));
        }
        out.push(line);
    }
    // The split leaves what follows the last LF (nothing) and the empty line that ends the head.
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    Ok(out)
}

/// Parse a whole head (request line, header lines, the empty line).
pub fn parse_head(head: &[u8]) -> Result<Request, HttpError> {
    if head.len() > MAX_HEAD {
        return Err(HttpError::new(431, format!("the request head is longer than {MAX_HEAD} bytes"), "send shorter headers"));
    }
    let lines = lines(head)?;
    let Some((first, header_lines)) = lines.split_first() else {
        return Err(bad("an empty request", "send `METHOD /path HTTP/1.1`"));
    };
    let mut req = request_line(first)?;
    if header_lines.len() > MAX_HEADERS {
        return Err(HttpError::new(431, format!("more than {MAX_HEADERS} headers"), "send fewer headers"));
    }
    for line in header_lines {
        req.headers.push(header_line(line)?);
    }
    check_framing(&mut req)?;
    check_host(&req)?;
    Ok(req)
}

fn request_line(line: &[u8]) -> Result<Request, HttpError> {
    let malformed = || bad(format!("malformed request line {:?}", String::from_utf8_lossy(&line[..line.len().min(200)])), "send `METHOD /path HTTP/1.1`");
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) || !target.starts_with(b"/") || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(malformed());
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        v if v.starts_with(b"HTTP/") => {
            return Err(HttpError::new(505, format!("HTTP version {:?} is not supported", String::from_utf8_lossy(v)), "send HTTP/1.1"));
        }
        _ => return Err(malformed()),
    };
    // Checked above: every byte is ASCII, so both are valid UTF-8.
    let (method, target) = (String::from_utf8_lossy(method).into_owned(), String::from_utf8_lossy(target).into_owned());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Request { method, path: path.to_string(), query: query.to_string(), http11, ..Request::default() })
}

fn header_line(line: &[u8]) -> Result<(String, String), HttpError> {
    let shown = || String::from_utf8_lossy(&line[..line.len().min(100)]).into_owned();
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return Err(bad(format!("a folded header line {:?}", shown()), "write each header on one line"));
    }
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return Err(bad(format!("malformed header line {:?}", shown()), "write headers as `Name: value`"));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
        return Err(bad(format!("malformed header name in {:?}", shown()), "write headers as `Name: value`, with no space before the colon"));
    }
    if !value.iter().all(|b| *b == b'\t' || (b' '..=b'~').contains(b)) {
        return Err(bad(format!("header {:?} holds a control or non-ASCII byte", String::from_utf8_lossy(name)), "send printable ASCII header values"));
    }
    // Both are ASCII (checked): the conversions cannot lose anything.
    let value = String::from_utf8_lossy(value).trim_matches([' ', '\t']).to_string();
    Ok((String::from_utf8_lossy(name).to_ascii_lowercase(), value))
}

/// How long the body is: Content-Length only, every copy of it the same number.
fn check_framing(req: &mut Request) -> Result<(), HttpError> {
    if req.header("transfer-encoding").is_some() {
        return Err(bad("Transfer-Encoding is not accepted (no chunked or coded request bodies)", "send the body with a Content-Length header (curl --data-binary @file does)"));
    }
    let mut length: Option<u64> = None;
    for (_, v) in req.headers.iter().filter(|(k, _)| k == "content-length") {
        for item in v.split(',') {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("Content-Length {v:?} is not a number of bytes"), "send the body's size in decimal digits"));
            }
            if item.len() > MAX_LENGTH_DIGITS {
                return Err(HttpError::new(413, format!("Content-Length {item} is far beyond any limit"), "send a smaller body"));
            }
            // At most 15 digits (checked): fits in u64.
            let n: u64 = item.parse().unwrap_or(u64::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(bad("differing Content-Length values", "send one Content-Length header"));
            }
            length = Some(n);
        }
    }
    req.content_length = length.unwrap_or(0);
    Ok(())
}

/// HTTP/1.1 needs exactly one Host (RFC 9112 §3.2); any Host must be a plain `host[:port]`.
fn check_host(req: &Request) -> Result<(), HttpError> {
    let mut hosts = req.headers.iter().filter(|(k, _)| k == "host");
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("more than one Host header", "send one Host header"));
    }
    match host {
        None if req.http11 => Err(bad("an HTTP/1.1 request without a Host header", "send `Host: ADDRESS:PORT` (browsers and curl do)")),
        None => Ok(()),
        Some((_, h)) if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b)) => {
            Err(bad(format!("Host {h:?} is not a host name or address"), "send `Host: ADDRESS:PORT`"))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, HttpError> {
        parse_head(raw.as_bytes())
    }

    fn status(raw: &str) -> u16 {
        match parse(raw) {
            Ok(r) => panic!("{raw:?} was accepted: {r:?}"),
            Err(e) => e.status,
        }
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 0), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nbody", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        // Resumes a few bytes back: the terminator may straddle two reads.
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n", 16), Some(18));
        assert_eq!(head_end(b"\n\n", 0), Some(2));
        assert_eq!(head_end(b"", 0), None);
    }

    #[test]
    fn parses_a_request() {
        let r = parse("POST /api/segment?mask=png&x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.content_length), ("POST", "/api/segment", 3));
        assert_eq!(r.query_param("mask"), Some("png"));
        assert_eq!(r.query_param("x"), Some(""));
        assert_eq!(r.header("content-type"), Some("image/png"));
        // The same value twice (or as a list) is one length (RFC 9112 §6.3).
        assert_eq!(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").unwrap().content_length, 5);
        assert_eq!(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n").unwrap().content_length, 5);
        // HTTP/1.0 may omit Host.
        assert!(parse("GET / HTTP/1.0\r\n\r\n").is_ok());
        assert!(parse("GET / HTTP/1.1\nHost: [::1]:8080\n\n").is_ok());
    }

    /// Issue 24 item 15: every one of these was accepted (or read the wrong way) before.
    #[test]
    fn refuses_ambiguous_framing_and_missing_host() {
        for raw in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  1 2\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: evil.example/path\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: \r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
            "GARBAGE\r\n\r\n",
            "GET nopath HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            "\r\n\r\n",
        ] {
            assert_eq!(status(raw), 400, "{raw:?}");
        }
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"), 413);
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")), 431);
        assert_eq!(status(&format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(MAX_HEAD))), 431);
    }
}

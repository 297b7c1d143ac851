//! The server against real sockets on loopback: hostile clients (slow heads,
//! unauthenticated bodies, many streams, panicking handlers) next to a
//! legitimate one, which must keep being served. Clients from other addresses
//! bind 127.0.0.2.. (all of 127/8 is loopback on Linux).

use super::*;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-0123";

struct TestHandler;

impl Handler for TestHandler {
    fn admit(&self, req: &Request) -> Result<Route, HttpError> {
        Ok(match req.path.as_str() {
            "/upload" => Route { max_body: 16 << 20, long_lived: false },
            "/stream" => Route { max_body: 0, long_lived: true },
            _ => Route::default(),
        })
    }

    fn handle(&self, req: &Request, out: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
        match req.path.as_str() {
            "/panic" => panic!("test-only route: a handler bug (expected by this test)"),
            "/stream" => {
                start_stream(out, "text/event-stream")?;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    out.write_all(b": tick\n\n")?;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(())
            }
            "/upload" => respond(out, 200, "text/plain", &[], format!("{} bytes", req.body.len()).as_bytes()),
            _ => respond(out, 200, "text/plain", &[], b"ok"),
        }
    }
}

fn limits() -> Limits {
    Limits {
        requests: slots::Budget { total: 24, per_client: 8 },
        streams: slots::Budget { total: 12, per_client: 4 },
        head_time: Duration::from_secs(1),
        min_body_rate: 64 << 10,
        body_grace: Duration::from_secs(1),
        body_memory: 24 << 20,
        write_timeout: Duration::from_secs(2),
    }
}

fn server(token: Option<&str>, limits: Limits) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    Server::start_with(l, token.map(String::from), Arc::new(TestHandler), limits).unwrap()
}

/// A TCP connection to `dst` from the loopback address `src`.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(dst) = dst else { panic!("IPv4 only") };
    let addr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // Safety: plain socket calls on a descriptor this function owns; it becomes the TcpStream's.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let (from, to) = (addr(src, 0), addr(*dst.ip(), dst.port()));
        assert_eq!(libc::bind(fd, &from as *const _ as *const libc::sockaddr, len), 0, "bind {src}: {}", std::io::Error::last_os_error());
        assert_eq!(libc::connect(fd, &to as *const _ as *const libc::sockaddr, len), 0, "connect: {}", std::io::Error::last_os_error());
        stream
    }
}

fn answer(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

/// One GET from 127.0.0.1; the whole answer.
fn get(addr: SocketAddr, path: &str, extra: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{extra}\r\n", addr.port()).unwrap();
    answer(s)
}

fn status_of(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Issue 24 item 2: slow heads from one address no longer lock everyone out,
/// and each is cut off when its head deadline passes.
#[test]
fn slowloris_cannot_lock_out_other_clients() {
    let srv = server(None, limits());
    let attacker: Ipv4Addr = "127.0.0.2".parse().unwrap();
    let mut slow: Vec<TcpStream> = (0..40).map(|_| connect_from(attacker, srv.addr)).collect();
    for s in &mut slow {
        let _ = s.write_all(b"GET / HTTP/1.1\r\n");
    }
    std::thread::sleep(Duration::from_millis(200));
    // A legitimate client is served while they trickle.
    let started = Instant::now();
    let a = get(srv.addr, "/", "");
    assert_eq!(status_of(&a), 200, "{a}");
    // Beyond its share the attacker is refused at once.
    let refused = slow.iter().skip(8).take(1).map(|s| answer(s.try_clone().unwrap())).next().unwrap();
    assert!(refused.contains("503") && refused.contains("from your address"), "{refused}");
    // A byte every 300 ms does not keep a slot past the head deadline (1 s here).
    let mut trickler = slow.swap_remove(0);
    trickler.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut got = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        if trickler.write_all(b"X").is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match trickler.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408"), "the trickler got {got:?} after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(4), "cut off after {:?}", started.elapsed());
}

/// Issue 24 item 2: live streams have their own budget; filling it leaves ordinary requests served.
#[test]
fn streams_do_not_take_request_slots() {
    let srv = server(None, limits());
    let mut viewers = Vec::new();
    for i in 0..20u8 {
        let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 10 + i / 4), srv.addr);
        write!(s, "GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", srv.addr.port()).unwrap();
        viewers.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..30 {
        let a = get(srv.addr, "/", "");
        assert_eq!(status_of(&a), 200, "{a}");
    }
    let extra = get(srv.addr, "/stream", "");
    assert!(status_of(&extra) == 503 && extra.contains("live streams"), "{extra}");
}

/// Issue 24 item 16: a handler that panics gives its slot back.
#[test]
fn panicking_handlers_do_not_leak_slots() {
    let srv = server(None, limits());
    for _ in 0..limits().requests.total + 8 {
        let a = get(srv.addr, "/panic", "");
        assert!(a.is_empty() || status_of(&a) == 500, "{a}");
    }
    let a = get(srv.addr, "/", "");
    assert_eq!(status_of(&a), 200, "{a}");
}

/// Issue 24 item 1: an unauthenticated upload is refused from its head: no
/// `100 Continue`, no body read, no body memory taken.
#[test]
fn unauthenticated_bodies_are_refused_before_reading() {
    let srv = server(Some(TOKEN), limits());
    let started = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        write!(s, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\nExpect: 100-continue\r\n\r\n").unwrap();
        conns.push(s);
    }
    for s in conns {
        let a = answer(s);
        assert!(a.starts_with("HTTP/1.1 401"), "{a}");
        assert!(!a.contains("100 Continue"), "{a}");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "answered from the head alone: {:?}", started.elapsed());
    // With the token the same upload goes through, after a 100 Continue.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    write!(s, "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let mut first = [0u8; 25];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let a = answer(s);
    assert!(a.starts_with("HTTP/1.1 200") && a.ends_with("5 bytes"), "{a}");
}

/// Bodies must arrive at a minimum rate, and share one memory budget.
#[test]
fn slow_bodies_time_out_and_body_memory_is_bounded() {
    let srv = server(Some(TOKEN), Limits { body_memory: 3 << 20, ..limits() });
    let upload = |len: usize| {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        write!(s, "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {len}\r\n\r\n").unwrap();
        s
    };
    // 2 MiB reserved by a client that sends nothing; a second 2 MiB does not fit.
    let started = Instant::now();
    let holder = upload(2 << 20);
    std::thread::sleep(Duration::from_millis(200));
    let a = answer(upload(2 << 20));
    assert!(a.starts_with("HTTP/1.1 503") && a.contains("memory for request bodies"), "{a}");
    // The holder is cut off: 1 s grace + 2 MiB at 64 KiB/s = 33 s; silence ends it at the 1 s idle limit.
    let a = answer(holder);
    assert!(a.starts_with("HTTP/1.1 408"), "{a}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let mut s = upload(1 << 20);
    s.write_all(&vec![7u8; 1 << 20]).unwrap();
    let a = answer(s);
    assert!(a.ends_with("1048576 bytes"), "{a}");
}

/// Issue 24 items 14 and 15 through the socket: foreign Host, ambiguous framing.
#[test]
fn refusals_are_json_with_a_fix() {
    let srv = server(None, limits());
    let raw = |text: &str| {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.write_all(text.as_bytes()).unwrap();
        answer(s)
    };
    let port = srv.addr.port();
    for (text, status) in [
        ("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_string(), 421),
        (format!("POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nContent-Length: 1\r\n\r\nx"), 403),
        (format!("POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"), 400),
        (format!("POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: +0\r\n\r\n"), 400),
        ("GET / HTTP/1.1\r\n\r\n".to_string(), 400),
        (format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}\r\n", "X-Big: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(400)), 431),
    ] {
        let a = raw(&text);
        assert_eq!(status_of(&a), status, "{a}");
        let body = &a[a.find("\r\n\r\n").unwrap() + 4..];
        let j: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(j["error"].is_string() && j["fix"].is_string(), "{j}");
    }
    assert_eq!(status_of(&get(srv.addr, "/", "")), 200);
}

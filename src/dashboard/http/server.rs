//! The accept loop and one connection's life:
//!
//! 1. accept: a request slot for the client's address, or 503 at once;
//! 2. the head, complete within `head_time` (408 otherwise), parsed strictly;
//! 3. Host / Origin / token (`access.rs`), then the handler's `admit` (method,
//!    path, content type, body limit): all from the head, before any body
//!    byte is read, `100 Continue` sent or body memory allocated;
//! 4. a long-lived route trades its request slot for a stream slot;
//! 5. the body: memory reserved from the shared budget, read at a minimum rate;
//! 6. the handler; its panics are caught and logged (the slot comes back in any case).

use super::access::Access;
use super::read::{body_time, drain, read_body, read_head};
use super::slots::{BodyBudget, Budget, Kind, Reservation, Slot, Slots};
use super::{respond_error, respond_error_with, Handler, HttpError, Request};
use log::{debug, error, info, warn};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server's limits (tests shorten the times).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Ordinary requests at once (including clients still sending their head).
    pub requests: Budget,
    /// Long-lived responses at once (MJPEG, Server-Sent Events).
    pub streams: Budget,
    /// The whole head must arrive within this.
    pub head_time: Duration,
    /// Bodies must arrive at least this fast (bytes/s), after `body_grace`.
    pub min_body_rate: u64,
    pub body_grace: Duration,
    /// Request bodies in memory at once, all connections together.
    pub body_memory: usize,
    /// How long one write may block before the client counts as gone.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // A browser opens at most 6 connections per host (streams have their own budget):
            // 8 per address is enough for it, and slow clients need 8 addresses to fill the server.
            requests: Budget { total: 64, per_client: 8 },
            streams: Budget { total: 32, per_client: 8 },
            head_time: Duration::from_secs(10),
            // A 16 MiB upload may take 10 s + 256 s: a slow Wi-Fi link, not a trickle.
            min_body_rate: 64 << 10,
            body_grace: Duration::from_secs(10),
            body_memory: 2 * crate::dashboard::MAX_UPLOAD,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A running server; dropping it stops accepting (streams end within a second).
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    handler: Arc<dyn Handler>,
    access: Access,
    limits: Limits,
    bodies: Arc<BodyBudget>,
    refusers: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serve `handler` on `listener`. With `token`, every request must carry it;
    /// without, only requests addressed to a loopback name are answered.
    pub fn start(listener: TcpListener, token: Option<String>, handler: Arc<dyn Handler>) -> std::io::Result<Server> {
        Server::start_with(listener, token, handler, Limits::default())
    }

    pub fn start_with(listener: TcpListener, token: Option<String>, handler: Arc<dyn Handler>, limits: Limits) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let slots = Slots::new(limits.requests, limits.streams);
        let shared = Arc::new(Shared { handler, access: Access::new(token, addr), bodies: BodyBudget::new(limits.body_memory), refusers: Arc::default(), limits, stop: stop.clone() });
        let thread = std::thread::Builder::new().name("dashboard".into()).spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                accept(stream, &slots, &shared);
            }
            info!("dashboard on {addr} stopped");
        })?;
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

/// Refusals answered on a thread of their own at once (each drains the client
/// for at most half a second, so it reads the answer rather than a reset).
const REFUSERS: usize = 16;

/// Take a slot and start the connection's thread, or refuse at once.
fn accept(mut stream: TcpStream, slots: &Arc<Slots>, shared: &Arc<Shared>) {
    let Ok(peer) = stream.peer_addr() else { return };
    let slot = match slots.take(peer.ip(), Kind::Request) {
        Ok(s) => s,
        Err(e) => {
            debug!("dashboard: refused {peer}: {}", e.error);
            if let Some(guard) = Refuser::take(&shared.refusers) {
                let spawned = std::thread::Builder::new().name("dashboard-refuse".into()).spawn(move || {
                    let _guard = guard;
                    refuse(stream, &e, &[]);
                });
                if let Err(err) = spawned {
                    warn!("dashboard: cannot start a thread to answer {peer}: {err}");
                }
                return;
            }
            // Too many refusals at once: answer without waiting. Never block the accept loop
            // on a client that does not read; take what it sent so far, so closing is less
            // likely to reset the connection over unread data.
            let _ = stream.set_nonblocking(true);
            let mut scrap = [0u8; 8192];
            for _ in 0..8 {
                if !matches!(std::io::Read::read(&mut stream, &mut scrap), Ok(n) if n > 0) {
                    break;
                }
            }
            let _ = respond_error(&mut stream, &e);
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
    };
    let shared = shared.clone();
    // The closure owns the slot: if the thread cannot start, dropping the closure gives it back.
    let spawned = std::thread::Builder::new().name("dashboard-conn".into()).spawn(move || serve_one(stream, slot, &shared));
    if let Err(e) = spawned {
        warn!("dashboard: cannot start a connection thread: {e}");
    }
}

/// One of the REFUSERS; given back when dropped.
struct Refuser(Arc<AtomicUsize>);

impl Refuser {
    fn take(count: &Arc<AtomicUsize>) -> Option<Refuser> {
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < REFUSERS).then_some(n + 1)).ok()?;
        Some(Refuser(count.clone()))
    }
}

impl Drop for Refuser {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answer a refusal and close, letting the client read it first.
fn refuse(mut stream: TcpStream, e: &HttpError, extra: &[(&str, &str)]) {
    debug!("dashboard: refused a request: {} {}", e.status, e.error);
    let _ = respond_error_with(&mut stream, e, extra);
    let _ = stream.shutdown(Shutdown::Write);
    drain(&mut stream, 4 << 20, Duration::from_millis(500));
}

fn serve_one(mut stream: TcpStream, slot: Slot, shared: &Shared) {
    let limits = &shared.limits;
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let _ = stream.set_nodelay(true);
    let head = match read_head(&mut stream, super::parse::MAX_HEAD, Instant::now() + limits.head_time, limits.head_time) {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => return refuse(stream, &e, &[]),
    };
    let mut req = match super::parse::parse_head(&head.buf[..head.len]) {
        Ok(r) => r,
        Err(e) => return refuse(stream, &e, &[]),
    };
    if let Err(e) = shared.access.check(&req) {
        let challenge: &[(&str, &str)] = if e.status == 401 { &[("WWW-Authenticate", "Basic realm=\"edgeseg\", charset=\"UTF-8\"")] } else { &[] };
        return refuse(stream, &e, challenge);
    }
    let route = match shared.handler.admit(&req) {
        Ok(r) => r,
        Err(e) => return refuse(stream, &e, &[]),
    };
    let _slot = if route.long_lived {
        match slot.into_stream() {
            Ok(s) => s,
            Err((_slot, e)) => return refuse(stream, &e, &[]),
        }
    } else {
        slot
    };
    let _body_memory: Option<Reservation> = match take_body(&mut stream, &mut req, &head, route.max_body, shared) {
        Ok(r) => r,
        Err(e) => return refuse(stream, &e, &[]),
    };
    run_handler(&mut stream, &req, shared);
    let _ = stream.shutdown(Shutdown::Both);
    // The body goes before its reservation, whose drop returns a large one's pages to the OS.
    drop(req);
}

/// Read the body the route admits (nothing when it takes none: the handler answers without it).
fn take_body(stream: &mut TcpStream, req: &mut Request, head: &super::read::Head, max_body: usize, shared: &Shared) -> Result<Option<Reservation>, HttpError> {
    if req.content_length == 0 || max_body == 0 {
        return Ok(None);
    }
    if req.content_length > max_body as u64 {
        return Err(HttpError::new(
            413,
            format!("the body is {} bytes; the limit is {max_body} bytes ({} MiB)", req.content_length, max_body >> 20),
            "send a smaller image (downscale it or use JPEG)",
        ));
    }
    // Fits in usize: at most max_body (checked above).
    let len = req.content_length as usize;
    let reservation = shared.bodies.reserve(len)?;
    let mut body = Vec::new();
    body.try_reserve_exact(len).map_err(|_| HttpError::new(503, format!("no memory for a {len}-byte body"), "retry later, or send a smaller image"))?;
    body.resize(len, 0);
    let early = &head.buf[head.len..head.filled];
    let already = early.len().min(len);
    body[..already].copy_from_slice(&early[..already]);
    if already < len && req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let limits = &shared.limits;
    let deadline = Instant::now() + body_time(len, limits.min_body_rate, limits.body_grace);
    read_body(stream, &mut body, already, deadline, limits.body_grace)?;
    req.body = body;
    Ok(Some(reservation))
}

fn run_handler(stream: &mut TcpStream, req: &Request, shared: &Shared) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.handler.handle(req, stream, &shared.stop)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!("dashboard: {} {}: {e}", req.method, req.path),
        Err(_) => {
            error!("dashboard: the handler of {} {} panicked (a bug; the server goes on)", req.method, req.path);
            // If the answer had begun, this lands inside it; the client sees a broken response either way.
            let _ = respond_error(stream, &HttpError::new(500, "the server failed on this request", "report this as a bug with the server log"));
        }
    }
}

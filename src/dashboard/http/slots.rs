//! What a connection may hold, and the guards that give it back.
//!
//! Two budgets: ordinary requests (from accept until the answer is written,
//! including the time a client takes to send its head) and long-lived streams
//! (MJPEG, Server-Sent Events), so neither kind can lock the other out. Each is
//! also bounded per client address (IPv6 per /64), so one address cannot take
//! every slot. Request bodies draw on a shared memory budget, reserved only
//! after the request is authorised. Every grant is a guard released in `Drop`:
//! on return, on panic, and when a connection thread cannot even be started.

use super::HttpError;
use crate::dashboard::state::lock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Bodies of at least this size give their memory back to the OS when done.
const TRIM_AFTER: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Request,
    Stream,
}

#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub total: usize,
    pub per_client: usize,
}

#[derive(Default)]
struct Counts {
    requests: usize,
    streams: usize,
    /// Per client key: (requests, streams). Entries at (0, 0) are removed, so the map is bounded by the slots.
    per_client: HashMap<IpAddr, (usize, usize)>,
}

pub struct Slots {
    requests: Budget,
    streams: Budget,
    counts: Mutex<Counts>,
}

/// The key a client is counted under: its IPv4 address, or the /64 of its IPv6 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Slots {
    pub fn new(requests: Budget, streams: Budget) -> Arc<Slots> {
        Arc::new(Slots { requests, streams, counts: Mutex::new(Counts::default()) })
    }

    /// (requests, streams) held now, in all.
    pub fn held(&self) -> (usize, usize) {
        let c = lock(&self.counts);
        (c.requests, c.streams)
    }

    /// Clients with at least one slot.
    pub fn clients(&self) -> usize {
        lock(&self.counts).per_client.len()
    }

    fn try_take(&self, ip: IpAddr, kind: Kind) -> Result<(), HttpError> {
        let mut guard = lock(&self.counts);
        let c = &mut *guard;
        let (budget, total) = match kind {
            Kind::Request => (self.requests, c.requests),
            Kind::Stream => (self.streams, c.streams),
        };
        let mine = c.per_client.get(&ip).map_or(0, |m| if kind == Kind::Request { m.0 } else { m.1 });
        let what = if kind == Kind::Request { "requests" } else { "live streams (video, events)" };
        if mine >= budget.per_client {
            return Err(HttpError::new(503, format!("more than {} {what} at once from your address", budget.per_client), "close other dashboard tabs or viewers on this machine and retry"));
        }
        if total >= budget.total {
            return Err(HttpError::new(503, format!("more than {} {what} at once", budget.total), "close other dashboard tabs or viewers and retry"));
        }
        let m = c.per_client.entry(ip).or_default();
        match kind {
            Kind::Request => {
                m.0 += 1;
                c.requests += 1;
            }
            Kind::Stream => {
                m.1 += 1;
                c.streams += 1;
            }
        }
        Ok(())
    }

    fn give_back(&self, ip: IpAddr, kind: Kind) {
        let mut guard = lock(&self.counts);
        let c = &mut *guard;
        match kind {
            Kind::Request => c.requests = c.requests.saturating_sub(1),
            Kind::Stream => c.streams = c.streams.saturating_sub(1),
        }
        if let Some(m) = c.per_client.get_mut(&ip) {
            match kind {
                Kind::Request => m.0 = m.0.saturating_sub(1),
                Kind::Stream => m.1 = m.1.saturating_sub(1),
            }
            if *m == (0, 0) {
                c.per_client.remove(&ip);
            }
        }
    }

    /// A request slot for a client at `ip` (refused with 503 when its share or the whole budget is taken).
    pub fn take(self: &Arc<Self>, ip: IpAddr, kind: Kind) -> Result<Slot, HttpError> {
        let ip = client_key(ip);
        self.try_take(ip, kind)?;
        Ok(Slot { slots: self.clone(), ip, kind })
    }
}

/// One held slot; given back when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
    kind: Kind,
}

impl Slot {
    /// Trade a request slot for a stream slot (the request turned out to be long-lived).
    /// On refusal the request slot is kept (the refusal is still to be written).
    pub fn into_stream(self) -> Result<Slot, (Slot, HttpError)> {
        if self.kind == Kind::Stream {
            return Ok(self);
        }
        match self.slots.try_take(self.ip, Kind::Stream) {
            Ok(()) => Ok(Slot { slots: self.slots.clone(), ip: self.ip, kind: Kind::Stream }),
            Err(e) => Err((self, e)),
        }
        // On success `self` (the request slot) drops here and is given back.
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.give_back(self.ip, self.kind);
    }
}

/// Memory for request bodies, shared by all connections.
pub struct BodyBudget {
    limit: usize,
    used: Mutex<usize>,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget { limit, used: Mutex::new(0) })
    }

    pub fn used(&self) -> usize {
        *lock(&self.used)
    }

    /// Reserve `bytes` (503 when the budget cannot hold them now).
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, HttpError> {
        let mut used = lock(&self.used);
        if bytes > self.limit.saturating_sub(*used) {
            return Err(HttpError::new(503, format!("other uploads hold the memory for request bodies ({} MiB)", self.limit >> 20), "send one upload at a time; retry in a moment"));
        }
        *used += bytes;
        Ok(Reservation { budget: self.clone(), bytes })
    }
}

/// Reserved body memory; given back (and large bodies' pages returned to the OS) when dropped.
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut used = lock(&self.budget.used);
            *used = used.saturating_sub(self.bytes);
        }
        if self.bytes >= TRIM_AFTER {
            // The body and its decoded image are freed by now (the reservation outlives
            // them); the allocator keeps freed memory for tensors unless asked.
            crate::model::heap::give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<T>(r: Result<T, HttpError>) -> HttpError {
        match r {
            Ok(_) => panic!("granted, expected a refusal"),
            Err(e) => e,
        }
    }

    fn slots() -> Arc<Slots> {
        Slots::new(Budget { total: 4, per_client: 2 }, Budget { total: 2, per_client: 1 })
    }

    #[test]
    fn budgets_per_kind_and_per_client() {
        let s = slots();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap(), "127.0.0.4".parse().unwrap());
        let a1 = s.take(a, Kind::Request).unwrap();
        let _a2 = s.take(a, Kind::Request).unwrap();
        assert!(refusal(s.take(a, Kind::Request)).error.contains("from your address"));
        let _b1 = s.take(b, Kind::Request).unwrap();
        let _b2 = s.take(b, Kind::Request).unwrap();
        assert!(refusal(s.take(c, Kind::Request)).error.contains("more than 4 requests"));
        // Streams have their own budget: a full request budget does not refuse them.
        let st = a1.into_stream().ok().unwrap();
        assert_eq!(s.held(), (3, 1));
        assert!(s.take(a, Kind::Stream).is_err(), "one stream per client");
        let _c1 = s.take(c, Kind::Request).unwrap();
        drop(st);
        assert_eq!(s.held(), (4, 0));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        assert_eq!(client_key("2001:db8:1:2:aaaa::1".parse().unwrap()), client_key("2001:db8:1:2:bbbb::2".parse().unwrap()));
        assert_ne!(client_key("2001:db8:1:2::1".parse().unwrap()), client_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    /// Issue 24 item 16: a slot is given back however its holder ends: a panic
    /// in the handler, or a connection thread that never started (its closure,
    /// which owns the slot, is dropped unrun).
    #[test]
    fn slots_come_back_after_a_panic_or_an_unrun_thread() {
        let s = slots();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let slot = s.take(ip, Kind::Request).unwrap();
        let t = std::thread::spawn(move || {
            let _held = slot;
            panic!("a handler bug (expected by this test)");
        });
        assert!(t.join().is_err());
        assert_eq!(s.held(), (0, 0));
        let slot = s.take(ip, Kind::Request).unwrap();
        let never_run = move || drop(slot);
        assert_eq!(s.held(), (1, 0));
        drop(never_run);
        assert_eq!((s.held(), s.clients()), ((0, 0), 0));
    }

    #[test]
    fn body_memory_is_shared_and_given_back() {
        let b = BodyBudget::new(10);
        let r1 = b.reserve(6).unwrap();
        assert_eq!(refusal(b.reserve(5)).status, 503);
        let r2 = b.reserve(4).unwrap();
        drop(r1);
        assert_eq!(b.used(), 4);
        drop(r2);
        assert_eq!(b.used(), 0);
    }
}

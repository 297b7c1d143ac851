//! A one-slot mailbox between capture and inference: the newest frame wins.
//!
//! When inference is slower than the camera, a queue would only add latency
//! (every judged frame would be old). Instead `put` replaces a frame still
//! waiting and hands the old one back to be recycled; the caller counts it as
//! dropped.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct Mailbox<T> {
    slot: Mutex<State<T>>,
    ready: Condvar,
    emptied: Condvar,
}

struct State<T> {
    item: Option<(T, Instant)>,
    closed: bool,
}

/// What `take` found.
pub enum Take<T> {
    /// An item and how long it waited in the slot.
    Item(T, Duration),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The producer closed the mailbox and it is empty.
    Closed,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Mailbox { slot: Mutex::new(State { item: None, closed: false }), ready: Condvar::new(), emptied: Condvar::new() }
    }
}

impl<T> Mailbox<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves only a plain Option behind,
        // which is still consistent: keep going with it.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deliver `item`; returns the item it displaced, if one was still waiting.
    pub fn put(&self, item: T) -> Option<T> {
        let old = self.lock().item.replace((item, Instant::now()));
        self.ready.notify_one();
        old.map(|(t, _)| t)
    }

    /// Wait until the slot is empty (or `timeout` passes), for lossless replays.
    /// Returns false on timeout.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.item.is_some() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.emptied.wait_timeout(state, deadline - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }

    /// Remove a waiting item without blocking (used to discard a stale frame in trigger mode).
    pub fn try_take(&self) -> Option<T> {
        let item = self.lock().item.take().map(|(t, _)| t);
        self.emptied.notify_all();
        item
    }

    /// Wait up to `timeout` for an item.
    pub fn take(&self, timeout: Duration) -> Take<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some((item, since)) = state.item.take() {
                self.emptied.notify_all();
                return Take::Item(item, since.elapsed());
            }
            if state.closed {
                return Take::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Take::Timeout;
            }
            state = self.ready.wait_timeout(state, deadline - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// No more items will come; `take` returns `Closed` once the slot is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_wins_and_close_drains() {
        let m = Mailbox::default();
        assert!(m.put(1).is_none());
        assert_eq!(m.put(2), Some(1));
        m.close();
        assert!(matches!(m.take(Duration::from_millis(1)), Take::Item(2, _)));
        assert!(matches!(m.take(Duration::from_millis(1)), Take::Closed));
    }

    #[test]
    fn take_times_out_then_sees_a_put_from_another_thread() {
        let m = std::sync::Arc::new(Mailbox::default());
        assert!(matches!(m.take(Duration::from_millis(5)), Take::Timeout));
        let m2 = m.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            m2.put(7u32);
        });
        assert!(matches!(m.take(Duration::from_secs(5)), Take::Item(7, _)));
        t.join().unwrap();
    }
}

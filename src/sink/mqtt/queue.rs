//! The sink's own message queue: what waits for the broker and what rumqttc
//! holds unacknowledged. The sink, not rumqttc, is the source of truth: after
//! a lost connection every unacknowledged message goes back to the front of
//! the queue and is published again (at-least-once across broker restarts,
//! which a clean or even persistent MQTT session does not survive when the
//! broker loses its state).

use rumqttc::QoS;
use std::collections::VecDeque;
use std::sync::Arc;

/// One message as the sink publishes it.
#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: Arc<str>,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
    /// The `online` status: not re-sent after a reconnect (a fresh one is).
    pub superseded_on_reconnect: bool,
}

#[derive(Debug)]
struct Inflight {
    msg: Msg,
    /// Packet id rumqttc gave it (0 for QoS 0), once it was written.
    pkid: Option<u16>,
}

#[derive(Debug)]
pub struct Queue {
    /// Messages held in all (waiting + in flight).
    limit: usize,
    /// Messages handed to rumqttc and not yet acknowledged, at most.
    window: usize,
    waiting: VecDeque<Msg>,
    inflight: VecDeque<Inflight>,
    /// Messages dropped because the queue was full.
    pub overflow: u64,
    /// Messages the broker acknowledged (QoS 0: written to the socket).
    pub delivered: u64,
}

impl Queue {
    /// `window` is capped below rumqttc's own in-flight limit so its packet
    /// ids never collide and its request channel never fills.
    pub fn new(limit: usize, window: usize) -> Queue {
        let limit = limit.max(1);
        let window = window.min(limit.div_ceil(2)).max(1);
        Queue { limit, window, waiting: VecDeque::new(), inflight: VecDeque::new(), overflow: 0, delivered: 0 }
    }

    /// Messages held (waiting + unacknowledged).
    pub fn len(&self) -> usize {
        self.waiting.len() + self.inflight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queue a message; when full, the oldest waiting one is dropped. Returns
    /// how many were dropped (0 or 1).
    pub fn push(&mut self, msg: Msg) -> u64 {
        let mut dropped = 0;
        while self.len() >= self.limit {
            // Messages already in rumqttc's hands stay tracked (their packet
            // ids pair with rumqttc's events); the window is at most half the
            // limit, so there is always a waiting one unless limit is 1.
            if self.waiting.pop_front().is_none() {
                self.overflow += 1;
                return 1;
            }
            dropped += 1;
        }
        self.overflow += dropped;
        self.waiting.push_back(msg);
        dropped
    }

    /// Put a message first in line: the `online` status after a (re)connect.
    /// It may exceed the limit by this one message rather than evict data.
    pub fn push_front(&mut self, msg: Msg) {
        self.waiting.push_front(msg);
    }

    /// The next message to hand to rumqttc, if the window has room; it counts
    /// as in flight from now on.
    pub fn start_next(&mut self) -> Option<&Msg> {
        if self.inflight.len() >= self.window {
            return None;
        }
        let msg = self.waiting.pop_front()?;
        self.inflight.push_back(Inflight { msg, pkid: None });
        self.inflight.back().map(|f| &f.msg)
    }

    /// rumqttc refused the message just started (its channel was full): wait again.
    pub fn unstart_last(&mut self) {
        if let Some(f) = self.inflight.pop_back() {
            self.waiting.push_front(f.msg);
        }
    }

    /// rumqttc wrote a publish. It writes in the order it was handed them, so
    /// this is the oldest started one without a packet id.
    pub fn on_outgoing_publish(&mut self, pkid: u16) {
        let Some(i) = self.inflight.iter().position(|f| f.pkid.is_none()) else { return };
        if self.inflight[i].msg.qos == QoS::AtMostOnce {
            // QoS 0 is done once written.
            self.inflight.remove(i);
            self.delivered += 1;
        } else {
            self.inflight[i].pkid = Some(pkid);
        }
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for `pkid`.
    pub fn on_ack(&mut self, pkid: u16) {
        if let Some(i) = self.inflight.iter().position(|f| f.pkid == Some(pkid)) {
            self.inflight.remove(i);
            self.delivered += 1;
        }
    }

    /// Everything held, oldest first (unacknowledged, then waiting), without the
    /// superseded `online` statuses: what a reload hands to the next sink.
    pub fn take_all(&mut self) -> Vec<Msg> {
        self.requeue_unacked();
        std::mem::take(&mut self.waiting).into()
    }

    /// Put `msgs` (older than anything queued) first in line; beyond the limit
    /// the oldest are dropped and counted.
    pub fn prepend(&mut self, msgs: Vec<Msg>) {
        for m in msgs.into_iter().rev() {
            self.waiting.push_front(m);
        }
        while self.len() > self.limit {
            if self.waiting.pop_front().is_none() {
                break;
            }
            self.overflow += 1;
        }
    }

    /// The connection is gone: everything unacknowledged waits again, in its
    /// original order, ahead of what never left.
    pub fn requeue_unacked(&mut self) {
        while let Some(f) = self.inflight.pop_back() {
            if !f.msg.superseded_on_reconnect {
                self.waiting.push_front(f.msg);
            }
        }
        // A stale `online` still waiting is superseded by the next connect's.
        self.waiting.retain(|m| !m.superseded_on_reconnect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8, qos: QoS) -> Msg {
        Msg { topic: "t".into(), payload: vec![n], qos, retain: false, superseded_on_reconnect: false }
    }

    fn drain(q: &mut Queue) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(m) = q.start_next() {
            out.push(m.payload[0]);
            let pk = out.len() as u16;
            q.on_outgoing_publish(pk);
            q.on_ack(pk);
        }
        out
    }

    #[test]
    fn drops_oldest_when_full() {
        let mut q = Queue::new(3, 64);
        let dropped: u64 = (0..5).map(|i| q.push(msg(i, QoS::AtLeastOnce))).sum();
        assert_eq!((dropped, q.overflow, q.len()), (2, 2, 3));
        assert_eq!(drain(&mut q), vec![2, 3, 4]);
        assert_eq!(q.delivered, 3);
    }

    #[test]
    fn unacked_go_back_in_order() {
        let mut q = Queue::new(100, 4);
        for i in 0..6 {
            q.push(msg(i, QoS::AtLeastOnce));
        }
        // 0..4 started, 0 and 1 written, 0 acked; then the link drops.
        for _ in 0..4 {
            q.start_next().unwrap();
        }
        assert!(q.start_next().is_none(), "window of 4");
        q.on_outgoing_publish(1);
        q.on_outgoing_publish(2);
        q.on_ack(1);
        q.requeue_unacked();
        assert_eq!(drain(&mut q), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn take_all_and_prepend_keep_order_and_limit() {
        let mut q = Queue::new(4, 2);
        for i in 0..3 {
            q.push(msg(i, QoS::AtLeastOnce));
        }
        q.start_next().unwrap();
        q.on_outgoing_publish(1);
        let all = q.take_all();
        assert_eq!(all.iter().map(|m| m.payload[0]).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(q.is_empty());
        let mut next = Queue::new(4, 2);
        next.push(msg(9, QoS::AtLeastOnce));
        next.prepend(vec![msg(5, QoS::AtLeastOnce), msg(6, QoS::AtLeastOnce), msg(7, QoS::AtLeastOnce), msg(8, QoS::AtLeastOnce)]);
        assert_eq!((drain(&mut next), next.overflow), (vec![6, 7, 8, 9], 1));
    }

    #[test]
    fn qos0_done_when_written_and_online_superseded() {
        let mut q = Queue::new(10, 4);
        q.push_front(Msg { superseded_on_reconnect: true, ..msg(9, QoS::AtLeastOnce) });
        q.push(msg(0, QoS::AtMostOnce));
        q.start_next().unwrap();
        q.start_next().unwrap();
        q.on_outgoing_publish(1);
        q.on_outgoing_publish(0);
        assert_eq!((q.len(), q.delivered), (1, 1));
        q.requeue_unacked();
        assert!(q.is_empty(), "the stale online status is not re-sent");
    }
}

//! The fleet's device table: at most `max_devices` entries, each of bounded
//! size (typed documents, capped rings), with the counts of what was refused.

use super::payload::{Doc, FindingDoc, Message, Refusal, State, StatsDoc, StatusDoc, Verdict};
use crate::dashboard::state::{median_latency, LatencyPoint};
use crate::report::{StageLatency, Stats};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Failing detections kept per device.
const RECENT_DEFECTS: usize = 10;
/// Latency samples kept per device (the card's chart).
const LATENCY_KEPT: usize = 60;
/// Arrival times kept per device for its rate (the last 10 s, at most this many).
const ARRIVALS_KEPT: usize = 256;
/// An online device silent this long may make room for a new one when none is offline.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// What was refused or cut, by reason (shown in `/api/status` as "refused").
#[derive(Default, Serialize, Clone, Copy, Debug, PartialEq)]
pub struct Counters {
    pub oversize: u64,
    pub malformed: u64,
    pub bad_topic: u64,
    /// Taken, but with strings, findings or classes cut to the caps.
    pub truncated: u64,
    pub devices_evicted: u64,
    pub devices_refused: u64,
    /// Messages above the MQTT client's own packet limit (each cost a reconnect).
    pub oversize_disconnects: u64,
}

#[derive(Serialize, Clone)]
struct RecentDefect {
    frame: u64,
    source: String,
    captured_unix_us: u64,
    findings: Vec<FindingDoc>,
}

struct Device {
    online: bool,
    status: Option<StatusDoc>,
    stats: Option<StatsDoc>,
    detections: u64,
    fails: u64,
    last_seen: Instant,
    last_seen_unix_us: u64,
    arrivals: VecDeque<Instant>,
    recent: VecDeque<RecentDefect>,
    latency: VecDeque<LatencyPoint>,
    refused: u64,
    last_refusal: Option<String>,
}

impl Device {
    fn new() -> Device {
        Device {
            online: false,
            status: None,
            stats: None,
            detections: 0,
            fails: 0,
            last_seen: Instant::now(),
            last_seen_unix_us: crate::frame::unix_us_now(),
            arrivals: VecDeque::new(),
            recent: VecDeque::new(),
            latency: VecDeque::new(),
            refused: 0,
            last_refusal: None,
        }
    }
}

pub enum Outcome {
    /// Taken; the SSE event (name, document) when one was asked for.
    Taken(Option<(&'static str, Value)>),
    /// Taken after forgetting this device to make room.
    Evicted(String),
    /// Not taken: the table is full of devices that are online and recently heard from.
    Refused,
}

pub struct Table {
    pub max_devices: usize,
    devices: BTreeMap<String, Device>,
    pub counters: Counters,
}

impl Table {
    pub fn new(max_devices: usize) -> Table {
        Table { max_devices: max_devices.max(1), devices: BTreeMap::new(), counters: Counters::default() }
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// The device to forget for a new one: the offline one silent longest, else an online one silent past STALE_AFTER.
    fn victim(&self) -> Option<String> {
        let oldest = |online: bool| self.devices.iter().filter(|(_, d)| d.online == online).min_by_key(|(_, d)| d.last_seen).map(|(n, d)| (n, d.last_seen));
        if let Some((n, _)) = oldest(false) {
            return Some(n.clone());
        }
        oldest(true).filter(|(_, seen)| seen.elapsed() >= STALE_AFTER).map(|(n, _)| n.clone())
    }

    pub fn refused(&mut self, prefix: &str, topic: &str, r: &Refusal) {
        match r {
            Refusal::Oversize(_) => self.counters.oversize += 1,
            Refusal::Topic(_) => self.counters.bad_topic += 1,
            Refusal::Malformed(_) => self.counters.malformed += 1,
        }
        // Shown on the device's card when the device is known (a refused message never creates one).
        let device = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).and_then(|r| r.split_once('/')).map(|(d, _)| d);
        if let Some(d) = device.and_then(|d| self.devices.get_mut(d)) {
            d.refused += 1;
            let mut text = format!("{}: {r}", r.counter());
            super::payload::cut(&mut text, 300);
            d.last_refusal = Some(text);
        }
    }

    pub fn take(&mut self, m: Message, want_event: bool) -> Outcome {
        let mut evicted = None;
        if !self.devices.contains_key(&m.device) {
            if self.devices.len() >= self.max_devices {
                match self.victim() {
                    Some(v) => {
                        self.devices.remove(&v);
                        self.counters.devices_evicted += 1;
                        evicted = Some(v);
                    }
                    None => {
                        self.counters.devices_refused += 1;
                        return Outcome::Refused;
                    }
                }
            }
            self.devices.insert(m.device.clone(), Device::new());
        }
        if m.truncated {
            self.counters.truncated += 1;
        }
        // Inserted above when missing.
        let Some(d) = self.devices.get_mut(&m.device) else { return Outcome::Refused };
        let now = Instant::now();
        d.last_seen = now;
        d.last_seen_unix_us = crate::frame::unix_us_now();
        let event = want_event.then(|| super::event_of(&m.device, &m.doc, d.online || matches!(&m.doc, Doc::Status(s) if s.state == State::Online))).flatten();
        match m.doc {
            Doc::Status(s) => {
                d.online = s.state == State::Online;
                d.status = Some(s);
            }
            Doc::Stats(s) => d.stats = Some(s),
            Doc::Detection(doc) => {
                d.detections += 1;
                if d.arrivals.len() >= ARRIVALS_KEPT {
                    d.arrivals.pop_front();
                }
                d.arrivals.push_back(now);
                while d.arrivals.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(10)) {
                    d.arrivals.pop_front();
                }
                if d.latency.len() >= LATENCY_KEPT {
                    d.latency.pop_front();
                }
                d.latency.push_back(LatencyPoint { frame: doc.frame, unix_ms: doc.emitted_unix_us / 1000, latency: doc.latency.into() });
                if doc.verdict == Verdict::Fail {
                    d.fails += 1;
                    if d.recent.len() >= RECENT_DEFECTS {
                        d.recent.pop_front();
                    }
                    d.recent.push_back(RecentDefect { frame: doc.frame, source: doc.source, captured_unix_us: doc.captured_unix_us, findings: doc.findings });
                }
            }
        }
        match evicted {
            Some(v) => Outcome::Evicted(v),
            None => Outcome::Taken(event),
        }
    }

    /// A device's running totals: its last stats document, or what its detections say so far.
    fn stats_of(name: &str, d: &Device) -> Stats {
        let mut s = match &d.stats {
            Some(st) => Stats {
                device: name.to_string(),
                uptime_s: st.uptime_s,
                frames: st.frames,
                pass: st.pass,
                fail: st.fail,
                dropped: st.dropped,
                corrupt: st.corrupt,
                fps: st.fps,
                defects: st.defects.clone(),
                latency_median: st.latency_median.into(),
                sink_overflow: st.sink_overflow,
            },
            // Detections arrive per frame, stats every interval: until the first stats, count detections.
            None => Stats { device: name.to_string(), frames: d.detections, fail: d.fails, pass: d.detections - d.fails, ..Stats::default() },
        };
        if d.arrivals.len() > 1 {
            if let (Some(a), Some(b)) = (d.arrivals.front(), d.arrivals.back()) {
                let span = b.duration_since(*a).as_secs_f64();
                if span > 0.0 {
                    s.fps = (((d.arrivals.len() - 1) as f64 / span) * 100.0).round() / 100.0;
                }
            }
        }
        if s.latency_median == StageLatency::default() && !d.latency.is_empty() {
            let l: Vec<StageLatency> = d.latency.iter().rev().take(50).map(|p| p.latency).collect();
            s.latency_median = median_latency(&l);
        }
        s
    }

    /// Up to `limit` devices from `offset`, in name order.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<Value> {
        self.devices
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(name, d)| {
                json!({
                    "device": name,
                    "online": d.online,
                    "status": d.status,
                    "stats": Self::stats_of(name, d),
                    "detections": d.detections,
                    "last_seen_unix_us": d.last_seen_unix_us,
                    "recent_defects": d.recent.iter().rev().collect::<Vec<_>>(),
                    "latency": d.latency.iter().collect::<Vec<_>>(),
                    "refused": d.refused,
                    "last_refusal": d.last_refusal,
                })
            })
            .collect()
    }

    pub fn stats(&self) -> BTreeMap<String, Stats> {
        self.devices.iter().map(|(n, d)| (n.clone(), Self::stats_of(n, d))).collect()
    }

    pub fn rows(&self) -> Vec<(String, bool, Stats)> {
        self.devices.iter().map(|(n, d)| (n.clone(), d.online, Self::stats_of(n, d))).collect()
    }
}

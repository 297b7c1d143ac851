//! The fleet view's decoder of MQTT messages (`<prefix>/<device>/<kind>`,
//! documents in `docs/mqtt.md`) into typed, bounded documents. Wrong types
//! are refused with a reason (never passed on to the page); unknown fields are
//! ignored (a newer daemon may add some); what is kept is capped: strings,
//! findings per frame, defect classes. Pure, so it is fuzzed directly
//! (`fuzz/fuzz_targets/fleet_payload.rs`).

use crate::report::StageLatency;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest message taken in: the daemon's own default limit (`sinks.mqtt.max_message_kib = 1024`).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Longest device name (the topic level) and stored string, in bytes.
pub const MAX_TEXT: usize = 128;
/// Findings kept per failing frame.
pub const MAX_FINDINGS: usize = 16;
/// Defect classes kept per device's stats.
pub const MAX_CLASSES: usize = 64;

/// Why a message was not taken in.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Larger than `MAX_PAYLOAD` (bytes).
    Oversize(usize),
    /// The topic is not `<prefix>/<device>/<kind>` with a usable device name.
    Topic(String),
    /// Not JSON, or a field of the wrong type.
    Malformed(String),
}

impl Refusal {
    /// The counter it goes to.
    pub fn counter(&self) -> &'static str {
        match self {
            Refusal::Oversize(_) => "oversize",
            Refusal::Topic(_) => "bad_topic",
            Refusal::Malformed(_) => "malformed",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Oversize(n) => write!(f, "{n} bytes, over the {MAX_PAYLOAD}-byte limit"),
            Refusal::Topic(t) => write!(f, "topic {t}"),
            Refusal::Malformed(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Online,
    Offline,
}

/// A retained `status` document.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct StatusDoc {
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub since_unix_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct FindingDoc {
    #[serde(default)]
    pub class_id: u64,
    pub class: String,
    #[serde(default)]
    pub score: f64,
    #[serde(default)]
    pub area: u64,
}

#[derive(Deserialize, Serialize, Default, Clone, Copy, Debug, PartialEq)]
#[serde(default)]
pub struct LatencyDoc {
    pub capture_ms: f64,
    pub queue_ms: f64,
    pub preprocess_ms: f64,
    pub infer_ms: f64,
    pub decode_ms: f64,
    pub emit_ms: f64,
}

impl From<LatencyDoc> for StageLatency {
    fn from(l: LatencyDoc) -> StageLatency {
        StageLatency { capture_ms: l.capture_ms, queue_ms: l.queue_ms, preprocess_ms: l.preprocess_ms, infer_ms: l.infer_ms, decode_ms: l.decode_ms, emit_ms: l.emit_ms }
    }
}

/// The parts of a `detections` document (a FrameReport) the fleet view uses.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct DetectionDoc {
    #[serde(default)]
    pub frame: u64,
    #[serde(default)]
    pub captured_unix_us: u64,
    #[serde(default)]
    pub emitted_unix_us: u64,
    #[serde(default)]
    pub source: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub findings: Vec<FindingDoc>,
    #[serde(default)]
    pub latency: LatencyDoc,
}

/// The parts of a `stats` document the fleet view uses.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct StatsDoc {
    pub uptime_s: f64,
    pub frames: u64,
    pub pass: u64,
    pub fail: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub fps: f64,
    pub defects: BTreeMap<String, u64>,
    pub latency_median: LatencyDoc,
    pub sink_overflow: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Status(StatusDoc),
    Detection(DetectionDoc),
    Stats(StatsDoc),
}

/// One decoded message: whose, what, and whether anything had to be cut to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub device: String,
    pub doc: Doc,
    pub truncated: bool,
}

/// Cut `s` to at most `max` bytes (at a character boundary); true when it was cut.
pub fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

fn cap_text(s: &mut String) -> bool {
    cut(s, MAX_TEXT)
}

fn cap_opt(s: &mut Option<String>) -> bool {
    s.as_mut().is_some_and(cap_text)
}

fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8], kind: &str) -> Result<T, Refusal> {
    // serde would also read a struct from a JSON array (by position): documents are objects.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Refusal::Malformed(format!("{kind}: not a JSON object")));
    }
    serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(format!("{kind}: {e}")))
}

/// Decode a message on `topic`. `Ok(None)`: not one of ours (another prefix or kind).
pub fn decode(prefix: &str, topic: &str, payload: &[u8]) -> Result<Option<Message>, Refusal> {
    let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else { return Ok(None) };
    let Some((device, kind)) = rest.split_once('/') else { return Ok(None) };
    if !matches!(kind, "status" | "detections" | "stats") {
        return Ok(None);
    }
    if device.is_empty() || device.len() > MAX_TEXT || device.chars().any(char::is_control) {
        let shown: String = topic.chars().take(MAX_TEXT).collect();
        return Err(Refusal::Topic(format!("{shown:?}: the device name must be 1 to {MAX_TEXT} bytes without control characters")));
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(Refusal::Oversize(payload.len()));
    }
    let mut truncated = false;
    let doc = match kind {
        "status" => {
            let mut s: StatusDoc = parse(payload, kind)?;
            truncated |= cap_opt(&mut s.model) | cap_opt(&mut s.version) | cap_opt(&mut s.reason);
            Doc::Status(s)
        }
        "detections" => {
            let mut d: DetectionDoc = parse(payload, kind)?;
            truncated |= cap_text(&mut d.source);
            if d.findings.len() > MAX_FINDINGS {
                d.findings.truncate(MAX_FINDINGS);
                truncated = true;
            }
            for f in &mut d.findings {
                truncated |= cap_text(&mut f.class);
            }
            Doc::Detection(d)
        }
        _ => {
            let mut s: StatsDoc = parse(payload, kind)?;
            if s.defects.len() > MAX_CLASSES || s.defects.keys().any(|k| k.len() > MAX_TEXT) {
                truncated = true;
                s.defects = std::mem::take(&mut s.defects)
                    .into_iter()
                    .take(MAX_CLASSES)
                    .map(|(mut k, v)| {
                        cap_text(&mut k);
                        (k, v)
                    })
                    .collect();
            }
            Doc::Stats(s)
        }
    };
    Ok(Some(Message { device: device.to_string(), doc, truncated }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(topic: &str, payload: &str) -> Result<Option<Message>, Refusal> {
        decode("edgeseg", topic, payload.as_bytes())
    }

    #[test]
    fn decodes_the_documents_the_daemon_sends() {
        let m = dec("edgeseg/cam-a/status", r#"{"state":"online","device":"cam-a","model":"unet","version":"0.1.0","since_unix_us":5,"new_field":[1]}"#).unwrap().unwrap();
        assert_eq!(m.device, "cam-a");
        assert!(matches!(m.doc, Doc::Status(StatusDoc { state: State::Online, .. })));
        let m = dec(
            "edgeseg/cam-a/detections",
            r#"{"frame":7,"verdict":"fail","source":"x.png","findings":[{"class_id":1,"class":"scratch","score":0.9,"area":40,"bbox":[1,2,3,4]}],"latency":{"infer_ms":12.5},"classes":[{"rle":{"counts":"abc"}}]}"#,
        )
        .unwrap()
        .unwrap();
        let Doc::Detection(d) = m.doc else { panic!() };
        assert_eq!((d.frame, d.verdict, d.findings[0].class.as_str(), d.latency.infer_ms), (7, Verdict::Fail, "scratch", 12.5));
        assert!(dec("edgeseg/cam-a/stats", r#"{"frames":3,"defects":{"scratch":2}}"#).unwrap().is_some());
        assert_eq!(dec("other/cam-a/stats", "{}"), Ok(None));
        assert_eq!(dec("edgeseg/cam-a/other", "{}"), Ok(None));
    }

    /// Issue 24 item 13: `findings: "not-a-list"` (and other wrong types) reached the page.
    #[test]
    fn refuses_wrong_types() {
        for (topic, payload) in [
            ("edgeseg/x/detections", r#"{"verdict":"fail","findings":"not-a-list"}"#),
            ("edgeseg/x/detections", r#"{"verdict":"maybe"}"#),
            ("edgeseg/x/detections", r#"{"verdict":"fail","findings":[{"class":7}]}"#),
            ("edgeseg/x/detections", r#"{"verdict":"pass","frame":-1}"#),
            ("edgeseg/x/detections", r#"{"verdict":"pass","latency":"fast"}"#),
            ("edgeseg/x/status", r#"{"state":"sleeping"}"#),
            ("edgeseg/x/status", r#"{"state":"online","model":42}"#),
            ("edgeseg/x/stats", r#"{"frames":"many"}"#),
            ("edgeseg/x/stats", r#"{"defects":["a"]}"#),
            ("edgeseg/x/stats", r#"[]"#),
            ("edgeseg/x/stats", "not json"),
        ] {
            let r = dec(topic, payload);
            assert!(matches!(r, Err(Refusal::Malformed(_))), "{payload}: {r:?}");
        }
    }

    /// Issue 24 item 11: what is kept per message is bounded.
    #[test]
    fn caps_sizes() {
        let big = "x".repeat(MAX_PAYLOAD + 1);
        assert_eq!(dec("edgeseg/x/status", &big), Err(Refusal::Oversize(MAX_PAYLOAD + 1)));
        assert!(matches!(dec(&format!("edgeseg/{}/status", "d".repeat(MAX_TEXT + 1)), "{}"), Err(Refusal::Topic(_))));
        let findings: Vec<String> = (0..100).map(|i| format!(r#"{{"class":"{}","score":0.5,"area":{i}}}"#, "é".repeat(200))).collect();
        let m = dec("edgeseg/x/detections", &format!(r#"{{"verdict":"fail","source":"{}","findings":[{}]}}"#, "s".repeat(5000), findings.join(","))).unwrap().unwrap();
        let Doc::Detection(d) = &m.doc else { panic!() };
        assert!(m.truncated);
        assert_eq!((d.findings.len(), d.source.len()), (MAX_FINDINGS, MAX_TEXT));
        assert!(d.findings.iter().all(|f| f.class.len() <= MAX_TEXT && f.class.chars().all(|c| c == 'é')));
        let defects: Vec<String> = (0..500).map(|i| format!(r#""class{i}":{i}"#)).collect();
        let m = dec("edgeseg/x/stats", &format!(r#"{{"defects":{{{}}}}}"#, defects.join(","))).unwrap().unwrap();
        let Doc::Stats(s) = &m.doc else { panic!() };
        assert_eq!(s.defects.len(), MAX_CLASSES);
    }
}

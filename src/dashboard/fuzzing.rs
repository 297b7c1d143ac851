//! What the fuzz targets check for any input (`fuzz/fuzz_targets/http_request.rs`,
//! `fleet_payload.rs`), and their cheap deterministic twins for `cargo test`:
//! seeded mutations of valid inputs, bounded in count and time.

use super::fleet::payload::{self, Doc};
use super::fleet::FleetState;
use super::http::parse::{head_end, parse_head, MAX_HEADERS};

/// The HTTP head parser on `data`: no panic; an accepted request obeys the
/// rules the server relies on; a refusal is a 4xx/5xx with an error and a fix.
pub fn http_request(data: &[u8]) {
    let end = head_end(data, 0);
    if let Some(end) = end {
        assert!(end <= data.len());
        // Finding the end in two reads gives the same answer as in one.
        let split = data.len() / 2;
        let twice = head_end(&data[..split], 0).or_else(|| head_end(data, split));
        assert_eq!(twice, Some(end), "head_end differs when resumed at {split}");
    }
    match parse_head(&data[..end.unwrap_or(data.len())]) {
        Ok(req) => {
            assert!(req.path.starts_with('/') && !req.path.contains('?'));
            assert!(req.headers.len() <= MAX_HEADERS);
            assert!(req.header("transfer-encoding").is_none());
            let lengths: Vec<&str> = req.headers.iter().filter(|(k, _)| k == "content-length").flat_map(|(_, v)| v.split(',')).map(|v| v.trim()).collect();
            assert!(lengths.iter().all(|v| v.parse::<u64>().ok() == Some(req.content_length)), "{lengths:?} vs {}", req.content_length);
            let hosts = req.headers.iter().filter(|(k, _)| k == "host").count();
            assert!(hosts <= 1 && (hosts == 1 || !req.http11));
            assert!(req.headers.iter().all(|(k, v)| !k.is_empty() && !v.contains(['\r', '\n'])));
        }
        Err(e) => {
            assert!(matches!(e.status, 400 | 413 | 431 | 505), "status {}", e.status);
            assert!(!e.error.is_empty() && !e.fix.is_empty());
        }
    }
}

/// The fleet decoder and device table on `data` (topic, a NUL, payload): no
/// panic; what is accepted is within the caps; the table stays bounded.
pub fn fleet_payload(state: &FleetState, data: &[u8]) {
    let (topic, body) = match data.iter().position(|b| *b == 0) {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (&b"edgeseg/fuzz/detections"[..], data),
    };
    let topic = String::from_utf8_lossy(topic);
    if let Ok(Some(m)) = payload::decode(&state.prefix, &topic, body) {
        assert!(!m.device.is_empty() && m.device.len() <= payload::MAX_TEXT);
        match &m.doc {
            Doc::Detection(d) => {
                assert!(d.findings.len() <= payload::MAX_FINDINGS && d.source.len() <= payload::MAX_TEXT);
                assert!(d.findings.iter().all(|f| f.class.len() <= payload::MAX_TEXT));
            }
            Doc::Stats(s) => assert!(s.defects.len() <= payload::MAX_CLASSES && s.defects.keys().all(|k| k.len() <= payload::MAX_TEXT)),
            Doc::Status(s) => assert!([&s.model, &s.version, &s.reason].iter().all(|t| t.as_ref().is_none_or(|t| t.len() <= payload::MAX_TEXT))),
        }
    }
    state.ingest(&topic, body);
    let status = state.status(0);
    assert!(status["devices"].as_array().is_some_and(|l| l.len() <= super::fleet::STATUS_PAGE));
    assert!(status["devices_total"].as_u64().is_some_and(|n| n as usize <= FUZZ_MAX_DEVICES));
}

/// The device cap of the fuzzed fleet state (small, so eviction is exercised).
pub const FUZZ_MAX_DEVICES: usize = 8;

pub fn fleet_state() -> FleetState {
    FleetState::with_max_devices("mqtt://127.0.0.1:1883", "edgeseg", FUZZ_MAX_DEVICES)
}

pub use crate::fuzzing::Rng;

/// Run `check` on mutations of `seeds` for at most `count` inputs or `time`.
/// A fixed number of inputs, not a time budget: the same inputs on a loaded
/// 2-core CI machine as on a workstation, so the test can neither flake nor
/// silently test less.
pub fn mutate_n(seeds: &[&[u8]], tokens: &[&[u8]], count: usize, mut check: impl FnMut(&[u8])) {
    let mut rng = Rng::new(0x5EED_0024);
    for done in 0..count {
        let seed = seeds[done % seeds.len()];
        check(&rng.mutate(seed, tokens));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP_SEEDS: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        b"POST /api/segment?mask=png HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: image/png\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
        b"GET /api/events HTTP/1.0\nAuthorization: Basic YTpiYw==\n\n",
    ];
    const HTTP_TOKENS: &[&[u8]] = &[b"\r\n", b"\n", b"\r", b": ", b" ", b"Content-Length: ", b"Host: ", b"Transfer-Encoding: chunked\r\n", b"0", b"+1", b",", b"\t", b"\0", b"\xff", b"HTTP/1.1"];

    const FLEET_SEEDS: &[&[u8]] = &[
        b"edgeseg/cam-a/status\0{\"state\":\"online\",\"model\":\"unet\",\"version\":\"0.1.0\",\"since_unix_us\":1}",
        b"edgeseg/cam-a/detections\0{\"frame\":3,\"verdict\":\"fail\",\"source\":\"a.png\",\"findings\":[{\"class_id\":1,\"class\":\"scratch\",\"score\":0.5,\"area\":9}],\"latency\":{\"infer_ms\":3.5}}",
        b"edgeseg/cam-b/stats\0{\"frames\":10,\"pass\":7,\"fail\":3,\"fps\":2.5,\"defects\":{\"scratch\":3},\"latency_median\":{\"infer_ms\":1}}",
    ];
    const FLEET_TOKENS: &[&[u8]] = &[b"\"", b"[", b"]", b"{", b"}", b",", b":", b"null", b"-1", b"1e999", b"\"not-a-list\"", b"\\u0000", b"/", b"\0", b"\xc3\xa9"];

    /// Issue 24 item 10: the HTTP head parser's fuzz target, a few thousand seeded inputs.
    #[test]
    fn http_request_parser_survives_mutated_requests() {
        mutate_n(HTTP_SEEDS, HTTP_TOKENS, 5_000, http_request);
    }

    /// Issue 24 item 10: the fleet payload decoder's fuzz target, a few thousand seeded inputs.
    #[test]
    fn fleet_payload_decoder_survives_mutated_messages() {
        let state = fleet_state();
        mutate_n(FLEET_SEEDS, FLEET_TOKENS, 3_000, |d| fleet_payload(&state, d));
    }
}

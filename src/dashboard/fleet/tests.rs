use super::*;

fn state(max: usize) -> FleetState {
    FleetState::with_max_devices("mqtt://127.0.0.1:1883", "edgeseg", max)
}

fn devices(s: &FleetState, offset: usize) -> Vec<Value> {
    s.status(offset)["devices"].as_array().cloned().unwrap_or_default()
}

/// Issue 24 item 11: 2000 devices publishing 100 KiB statuses grew the table
/// without bound, and one /api/status held all of it.
#[test]
fn devices_and_their_documents_are_capped() {
    let s = state(MAX_DEVICES);
    let padding = "m".repeat(100 << 10);
    for i in 0..2000 {
        let doc = format!(r#"{{"state":"offline","model":"{padding}","version":"0.1.0","since_unix_us":{i}}}"#);
        s.ingest(&format!("edgeseg/dev-{i:04}/status"), doc.as_bytes());
    }
    let st = s.status(0);
    assert_eq!(st["devices_total"], MAX_DEVICES);
    assert_eq!(st["refused"]["devices_evicted"], 2000 - MAX_DEVICES);
    assert_eq!(st["refused"]["truncated"], 2000);
    // The newest stay; the longest silent were forgotten.
    let names: Vec<String> = (0..MAX_DEVICES.div_ceil(STATUS_PAGE)).flat_map(|p| devices(&s, p * STATUS_PAGE)).map(|d| d["device"].as_str().unwrap().to_string()).collect();
    assert_eq!(names.len(), MAX_DEVICES);
    assert!(names.iter().all(|n| n.as_str() >= "dev-1000"), "{:?}", &names[..3]);
    // One answer is a page, and a small one.
    let page = serde_json::to_vec(&st).unwrap();
    assert_eq!(st["devices"].as_array().unwrap().len(), STATUS_PAGE);
    assert!(page.len() < 64 << 10, "a status page of {} bytes", page.len());
    assert!(st["devices"][0]["status"]["model"].as_str().unwrap().len() <= payload::MAX_TEXT);
    // Beyond 1 MiB a message is refused whole, counted.
    s.ingest("edgeseg/dev-1999/status", &vec![b' '; payload::MAX_PAYLOAD + 1]);
    assert_eq!(s.status(0)["refused"]["oversize"], 1);
}

#[test]
fn a_full_table_of_live_devices_refuses_newcomers() {
    let s = state(3);
    for i in 0..3 {
        s.ingest(&format!("edgeseg/cam-{i}/status"), br#"{"state":"online"}"#);
    }
    s.ingest("edgeseg/intruder/detections", br#"{"verdict":"pass"}"#);
    let st = s.status(0);
    assert_eq!((st["devices_total"].as_u64(), st["refused"]["devices_refused"].as_u64()), (Some(3), Some(1)));
    // Once one is offline, it makes room.
    s.ingest("edgeseg/cam-1/status", br#"{"state":"offline","reason":"shutdown"}"#);
    s.ingest("edgeseg/newcomer/detections", br#"{"verdict":"pass"}"#);
    let names: Vec<Value> = devices(&s, 0).iter().map(|d| d["device"].clone()).collect();
    assert_eq!(names, [json!("cam-0"), json!("cam-2"), json!("newcomer")]);
}

/// Issue 24 item 13: a wrong-typed document is refused (counted, shown on its
/// own card) and never reaches the page; other devices are untouched.
#[test]
fn wrong_types_are_refused_per_device() {
    let s = state(10);
    for d in ["good", "bad"] {
        s.ingest(&format!("edgeseg/{d}/status"), br#"{"state":"online","model":"unet"}"#);
        s.ingest(&format!("edgeseg/{d}/detections"), br#"{"frame":1,"verdict":"fail","findings":[{"class":"scratch","score":0.9,"area":12}]}"#);
    }
    s.ingest("edgeseg/bad/detections", br#"{"frame":2,"verdict":"fail","findings":"not-a-list"}"#);
    s.ingest("edgeseg/bad/stats", br#"{"frames":"many"}"#);
    s.ingest("edgeseg/good/detections", br#"{"frame":2,"verdict":"fail","findings":[{"class":"dent","score":0.5,"area":3}]}"#);
    let st = s.status(0);
    assert_eq!(st["refused"]["malformed"], 2);
    let list = st["devices"].as_array().unwrap();
    let bad = list.iter().find(|d| d["device"] == "bad").unwrap();
    let good = list.iter().find(|d| d["device"] == "good").unwrap();
    assert_eq!((bad["detections"].as_u64(), bad["refused"].as_u64()), (Some(1), Some(2)));
    assert!(bad["last_refusal"].as_str().unwrap().contains("malformed: stats"), "{bad}");
    assert!(bad["recent_defects"].as_array().unwrap().iter().all(|r| r["findings"].is_array()));
    assert_eq!((good["detections"].as_u64(), good["refused"].as_u64()), (Some(2), Some(0)));
    assert_eq!(good["recent_defects"][0]["findings"][0]["class"], "dent");
}

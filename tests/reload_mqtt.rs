//! Issue 24 item 7: a reload dropped the MQTT offline queue (the messages
//! waiting while the broker was down) and restarted frame numbers at 0, which
//! defeats de-duplication by `frame` (docs/mqtt.md). A real Mosquitto is
//! stopped across two reloads: one that keeps the MQTT config (the sink is
//! kept, connection and queue), one that changes it (the queue moves to the
//! new sink).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;
use support::daemon::{write_config, Daemon};
use support::mosquitto::{Mosquitto, Subscriber};

fn frames(reports: &[serde_json::Value]) -> Vec<u64> {
    reports.iter().map(|r| r["frame"].as_u64().unwrap()).collect()
}

/// Stop the broker, let `n` frames be judged, reload with `body`, let `n` more
/// be judged, start the broker: every frame judged so far must arrive.
fn outage_across_reload(d: &mut Daemon, broker: &mut Mosquitto, sub: &Subscriber, dir: &std::path::Path, body: &str, n: usize) {
    broker.terminate();
    let seen = d.reports().len();
    d.wait_reports(Duration::from_secs(90), "frames while the broker is down", |r| r.len() >= seen + n);
    let pipelines = d.pipelines();
    write_config(dir, body);
    d.signal("-HUP");
    d.wait_log_count(Duration::from_secs(60), "] source: ", pipelines + 1);
    let seen = d.reports().len();
    d.wait_reports(Duration::from_secs(90), "frames after the reload", |r| r.len() >= seen + n);
    broker.restart();
    let judged: BTreeSet<u64> = frames(&d.reports()).into_iter().collect();
    sub.wait_until(Duration::from_secs(40), "every frame judged, the outage and the reload included", |g| {
        let got: BTreeSet<u64> = g.iter().filter(|r| r.topic == "edgeseg/press/detections").map(|r| r.json()["frame"].as_u64().unwrap()).collect();
        judged.is_subset(&got)
    });
}

#[test]
fn reloads_keep_the_offline_queue_and_the_frame_numbers() {
    let mut broker = Mosquitto::start();
    // A persistent session: what is published while it reconnects waits in the broker.
    let sub = Subscriber::start(broker.port, "edgeseg/+/detections", true);
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let body = |extra: &str| {
        format!(
            "[device]\nname = \"press\"\n[source]\nkind = \"sample\"\nfps = 20\n[sinks.stdout]\n[pipeline]\noverlay = false\n{extra}\n[sinks.mqtt]\nurl = \"{}\"\nkeep_alive_s = 5\n",
            url
        )
    };
    let cfg = write_config(dir.path(), &body(""));
    let mut d = Daemon::start(&cfg);
    d.wait_reports(Duration::from_secs(60), "the first frames", |r| r.len() >= 2);

    // The MQTT table unchanged: the sink, its connection attempts and its queue stay.
    outage_across_reload(&mut d, &mut broker, &sub, dir.path(), &body("stats_interval_s = 3"), 3);
    // The MQTT table changed (same client id): the queue moves to the new sink.
    let changed = body("stats_interval_s = 4").replace("keep_alive_s = 5", "keep_alive_s = 7");
    outage_across_reload(&mut d, &mut broker, &sub, dir.path(), &changed, 3);

    let f = frames(&d.reports());
    assert!(f.windows(2).all(|w| w[1] > w[0]), "frame numbers never go back across reloads: {f:?}");
    assert_eq!(d.pipelines(), 3, "two reloads switched over");
    assert!(d.terminate(Duration::from_secs(20)).success());
}

//! GpioSink and TriggerInput on the simulated chip. Timing tolerances are generous: the
//! test machine is loaded, and what matters is the shape (one pulse, delayed, of about the width).

use super::*;
use crate::gpio::sim::SimChip;
use image::RgbImage;

const TOL: Duration = Duration::from_millis(25);

fn config(extra: &str) -> GpioConfig {
    let text = format!("chip = \"sim\"\nreject_line = \"REJECT\"\n{extra}");
    let c: GpioConfig = toml::from_str(&text).expect("test config parses");
    c.check().expect("test config is valid");
    c
}

fn chip() -> SimChip {
    SimChip::new("test", &["REJECT", "READY", "TRIG"])
}

fn sink(chip: &SimChip, c: &GpioConfig, with_ready: bool) -> GpioSink {
    let reject = Box::new(chip.output(&LineId::Name("REJECT".into()), c.active_low, "k").unwrap());
    let ready: Option<Box<dyn OutputPin>> = with_ready.then(|| Box::new(chip.output(&LineId::Name("READY".into()), c.active_low, "k").unwrap()) as _);
    GpioSink::with_pins(c, reject, ready).unwrap()
}

fn emit(s: &mut GpioSink, verdict: Verdict) -> Instant {
    let image = RgbImage::new(1, 1);
    let report = FrameReport { verdict, ..FrameReport::default() };
    let at = Instant::now();
    s.emit(&report, &FramePixels { image: &image, overlay: None }).unwrap();
    at
}

fn near(d: Duration, want: Duration) -> bool {
    d + TOL >= want && d <= want + TOL
}

#[test]
fn a_fail_gives_one_pulse_after_the_delay() {
    let chip = chip();
    let c = config("reject_delay_ms = 60\nreject_width_ms = 40\nactive_low = true");
    let mut s = sink(&chip, &c, false);
    let at = emit(&mut s, Verdict::Fail);
    std::thread::sleep(Duration::from_millis(200));
    let pulses = chip.pulses("REJECT");
    assert_eq!(pulses.len(), 1, "{pulses:?}");
    let (start, width) = pulses[0];
    assert!(near(start - at, Duration::from_millis(60)), "delay {:?}", start - at);
    assert!(near(width, Duration::from_millis(40)), "width {width:?}");
    assert!(!chip.history("REJECT")[0].high, "active-low pulse drives the line low");
    s.shutdown().unwrap();
}

#[test]
fn a_pass_gives_no_pulse() {
    let chip = chip();
    let mut s = sink(&chip, &config("reject_width_ms = 20"), false);
    emit(&mut s, Verdict::Pass);
    std::thread::sleep(Duration::from_millis(80));
    s.shutdown().unwrap();
    assert!(chip.history("REJECT").is_empty());
}

#[test]
fn two_quick_fails_reject_both_parts() {
    let chip = chip();
    let mut s = sink(&chip, &config("reject_delay_ms = 30\nreject_width_ms = 60"), false);
    let first = emit(&mut s, Verdict::Fail);
    std::thread::sleep(Duration::from_millis(20));
    let second = emit(&mut s, Verdict::Fail);
    std::thread::sleep(Duration::from_millis(250));
    let pulses = chip.pulses("REJECT");
    // The second part is due while the first pulse is still on: one pulse covering both windows.
    assert_eq!(pulses.len(), 1, "{pulses:?}");
    let (start, width) = pulses[0];
    assert!(near(start - first, Duration::from_millis(30)), "start {:?}", start - first);
    let end = start + width;
    assert!(end + TOL >= second + Duration::from_millis(90), "the pulse covers the second part's window");
    assert!(overflow_free(&s));
    s.shutdown().unwrap();
}

fn overflow_free(s: &GpioSink) -> bool {
    s.overflow() == 0
}

#[test]
fn fails_far_apart_give_separate_pulses() {
    let chip = chip();
    let mut s = sink(&chip, &config("reject_width_ms = 20"), false);
    emit(&mut s, Verdict::Fail);
    std::thread::sleep(Duration::from_millis(80));
    emit(&mut s, Verdict::Fail);
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(chip.pulses("REJECT").len(), 2);
    s.shutdown().unwrap();
}

#[test]
fn too_many_pending_pulses_count_as_overflow() {
    let chip = chip();
    let s = sink(&chip, &config("reject_delay_ms = 5000\nreject_width_ms = 1"), false);
    for _ in 0..MAX_PENDING_PULSES + 3 {
        s.reject();
    }
    assert_eq!(s.overflow(), 3);
    // Dropping without shutdown would wait 5 s for the due pulses; clear them (test only).
    s.shared.lock().due.clear();
}

#[test]
fn heartbeat_toggles_ready_and_shutdown_sets_it_inactive() {
    let chip = chip();
    let mut s = sink(&chip, &config("ready_line = \"READY\"\nheartbeat_ms = 20"), true);
    std::thread::sleep(Duration::from_millis(150));
    let toggles = chip.history("READY").len();
    assert!(toggles >= 4, "ready toggled {toggles} times in 150 ms at 20 ms");
    s.shutdown().unwrap();
    assert!(!chip.is_active("READY"));
    assert!(!chip.is_active("REJECT"));
}

#[test]
fn ready_is_steady_without_heartbeat_and_shutdown_finishes_due_pulses() {
    let chip = chip();
    let mut s = sink(&chip, &config("ready_line = 1\nreject_delay_ms = 50\nreject_width_ms = 30"), true);
    assert!(chip.is_active("READY"));
    emit(&mut s, Verdict::Fail);
    s.shutdown().unwrap(); // returns only after the pulse ran
    assert_eq!(chip.pulses("REJECT").len(), 1);
    assert!(!chip.is_active("READY"));
}

#[test]
fn config_bounds_name_their_key() {
    let bad: Result<GpioConfig, _> = toml::from_str("chip = \"sim\"\nreject_line = 17\nreject_width_ms = 0");
    let e = bad.unwrap().check().unwrap_err().to_string();
    assert!(e.contains("sinks.gpio.reject_width_ms"), "{e}");
    let bad: Result<GpioConfig, _> = toml::from_str("chip = \"sim\"\nreject_line = 17\nheartbeat_ms = 500");
    assert!(bad.unwrap().check().unwrap_err().to_string().contains("ready_line"));
    let typo: Result<GpioConfig, _> = toml::from_str("chip = \"sim\"\nreject_line = 17\nreject_widht_ms = 5");
    assert!(typo.is_err(), "unknown keys are errors");
}

#[test]
fn trigger_waits_for_the_configured_edge() {
    let chip = chip();
    let pin = chip.input(&LineId::Name("TRIG".into()), false, Duration::from_millis(5), "k").unwrap();
    let mut t = TriggerInput::with_pin(Box::new(pin), TriggerEdge::Falling);
    assert!(!t.wait(Duration::from_millis(30)).unwrap(), "no edge: timeout");
    let c = chip.clone();
    let feeder = std::thread::spawn(move || {
        c.set_input("TRIG", true); // rising: ignored
        std::thread::sleep(Duration::from_millis(40));
        c.set_input("TRIG", false); // falling: the trigger
    });
    let start = Instant::now();
    assert!(t.wait(Duration::from_secs(5)).unwrap());
    assert!(start.elapsed() >= Duration::from_millis(30), "the rising edge did not count");
    feeder.join().unwrap();
}

#[test]
fn open_on_the_global_sim_chip() {
    // Lines 20..=22 are used by no other test of the global chip.
    let c: GpioConfig = toml::from_str(
        "chip = \"sim\"\nreject_line = \"GPIO20\"\nready_line = \"GPIO21\"\ntrigger_line = 22\ntrigger_edge = \"both\"\nreject_width_ms = 10",
    )
    .unwrap();
    let mut s = GpioSink::open(&c).unwrap();
    let mut t = TriggerInput::open(&c).unwrap().expect("trigger configured");
    let global = SimChip::global();
    assert!(global.is_active("GPIO21"));
    global.set_input("GPIO22", true);
    assert!(t.wait(Duration::from_secs(5)).unwrap());
    let e = GpioSink::open(&c).err().unwrap().to_string();
    assert!(e.contains("in use"), "{e}");
    s.shutdown().unwrap();
    assert!(!global.is_active("GPIO21"));
    let missing: GpioConfig = toml::from_str("chip = \"sim\"\nreject_line = \"GPIO99\"").unwrap();
    let e = GpioSink::open(&missing).err().unwrap().to_string();
    assert!(e.contains("sinks.gpio.reject_line") && e.contains("GPIO99"), "{e}");
}

//! Trigger mode: one judged frame per trigger edge, and that frame was
//! captured after the edge (a light barrier says "the part is under the
//! camera now"; an older frame would show the previous part).

use edgeseg::decide::{DecideConfig, Decider};
use edgeseg::gpio::sim::SimChip;
use edgeseg::gpio::LineId;
use edgeseg::model::{MetaOverrides, Model};
use edgeseg::pipeline::process::FrameProcessor;
use edgeseg::pipeline::{self, Options, Parts};
use edgeseg::report::FrameReport;
use edgeseg::sink::gpio::{TriggerEdge, TriggerInput};
use edgeseg::sink::{FramePixels, Sink};
use edgeseg::source::dir::{DirSource, SampleConfig};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Collect(Arc<Mutex<Vec<FrameReport>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn emit(&mut self, report: &FrameReport, _: &FramePixels<'_>) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(report.clone());
        Ok(())
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

#[test]
fn one_frame_per_rising_edge_captured_after_it() {
    let model = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet_defects.onnx"), &MetaOverrides::default()).unwrap();
    let decider = Decider::new(DecideConfig::default(), &model.meta.classes);
    let chip = SimChip::new("test-chip", &["BARRIER"]);
    let pin = chip.input(&LineId::Name("BARRIER".into()), false, Duration::from_millis(2), "sinks.gpio.trigger_line").unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let parts = Parts {
        source: Box::new(DirSource::samples(&SampleConfig { fps: 50.0, repeat: true }).unwrap()),
        processor: FrameProcessor::new(Box::new(model), decider, "trigger-test"),
        sinks: vec![Box::new(Collect(reports.clone()))],
        trigger: Some(Box::new(TriggerInput::with_pin(Box::new(pin), TriggerEdge::Rising))),
    };
    let options = Options { mode: edgeseg::config::Mode::Trigger, max_frames: 3, stats_interval: Duration::from_secs(3600), overlay: false };
    let edges = Arc::new(Mutex::new(Vec::new()));
    let (chip2, edges2) = (chip.clone(), edges.clone());
    let presser = std::thread::spawn(move || {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(700));
            edges2.lock().unwrap().push(now_us());
            chip2.set_input("BARRIER", true);
            std::thread::sleep(Duration::from_millis(50));
            chip2.set_input("BARRIER", false);
        }
    });
    let summary = pipeline::run(parts, &options, Arc::new(AtomicBool::new(false))).unwrap();
    presser.join().unwrap();
    let reports = reports.lock().unwrap();
    let edges = edges.lock().unwrap();
    assert_eq!(summary.stats.frames, 3);
    assert_eq!(reports.len(), 3);
    for (r, &edge) in reports.iter().zip(edges.iter()) {
        assert!(r.captured_unix_us >= edge, "frame {} captured {} µs before its trigger", r.frame, edge - r.captured_unix_us);
    }
    // Between triggers nothing is judged: three edges, three frames, although
    // the source delivered ~50 frames per second.
    assert!(reports.windows(2).all(|w| w[1].captured_unix_us - w[0].captured_unix_us > 400_000));
}

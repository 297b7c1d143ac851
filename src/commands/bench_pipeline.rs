//! `edgeseg bench --pipeline`: the whole daemon path on the bundled frames,
//! fed as fast as inference takes them. Shows what the runtime adds around
//! the network (decode + preprocess + decode + decision + emit, per frame)
//! and whether pipelining keeps the network busy (throughput vs 1/infer).

use crate::cli::BenchArgs;
use crate::commands::bench::latency;
use crate::decide::{DecideConfig, Decider};
use crate::model::Model;
use crate::pipeline::process::FrameProcessor;
use crate::pipeline::{self, Options, Parts};
use crate::sink::stdout::{StdoutConfig, StdoutSink};
use crate::sink::Sink;
use crate::source::dir::{DirSource, SampleConfig};
use anyhow::{bail, Result};
use serde::Serialize;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Serialize)]
struct PipelineBench {
    model: String,
    threads: usize,
    frames: usize,
    infer_ms_median: f64,
    /// preprocess (incl. image decode) + output decode + emit, median per frame.
    overhead_ms_median: f64,
    overhead_pct_of_infer: f64,
    preprocess_ms_median: f64,
    decode_ms_median: f64,
    emit_ms_median: f64,
    throughput_fps: f64,
    /// throughput × infer median: 1.0 means the network never waits.
    throughput_vs_infer: f64,
    infer_ms_mean: f64,
    /// throughput × infer mean: the share of wall time the network was running.
    network_busy: f64,
    dropped: u64,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let model = Model::load_with_threads(&args.model, &args.model_flags.overrides()?, args.run.threads.into())?;
    let (name, threads) = (args.model.display().to_string(), model.threads);
    let decider = Decider::new(DecideConfig::default(), &model.meta.classes);
    let processor = FrameProcessor::new(Box::new(model), decider, "bench");
    // The JSON sink serialises every report as the daemon would, into the void.
    let sink: Box<dyn Sink> = Box::new(StdoutSink::with_writer(&StdoutConfig::default(), std::io::sink()));
    let parts = Parts {
        source: Box::new(DirSource::samples(&SampleConfig { fps: 0.0, repeat: true })?),
        processor,
        sinks: vec![sink],
        trigger: None,
    };
    let total = (args.warmup + args.runs) as u64;
    let options = Options { mode: crate::config::Mode::Continuous, max_frames: total, stats_interval: Duration::from_secs(3600), overlay: true };
    let summary = pipeline::run(parts, &options, Arc::new(AtomicBool::new(false)))?;
    if let Some(e) = summary.model_error {
        bail!("model failed: {e}");
    }
    // Drop the warm-up frames from the latency window.
    let lat: Vec<_> = summary.latencies.iter().skip(args.warmup as usize).copied().collect();
    if lat.len() < 2 {
        bail!("only {} frame(s) timed; fix: use --runs 2 or more", lat.len());
    }
    let med = |f: fn(&crate::report::StageLatency) -> f64| latency(&mut lat.iter().map(f).collect::<Vec<_>>()).median;
    let infer = med(|l| l.infer_ms);
    let overhead = med(|l| l.overhead_ms());
    let infer_mean = lat.iter().map(|l| l.infer_ms).sum::<f64>() / lat.len() as f64;
    // Throughput over the judged span (first to last judged frame, warm-up included
    // only as the starting point of the span).
    let throughput = (summary.stats.frames.saturating_sub(1)) as f64 / summary.judged_span_s.max(1e-9);
    let report = PipelineBench {
        model: name,
        threads,
        frames: lat.len(),
        infer_ms_median: infer,
        overhead_ms_median: overhead,
        overhead_pct_of_infer: 100.0 * overhead / infer,
        preprocess_ms_median: med(|l| l.preprocess_ms),
        decode_ms_median: med(|l| l.decode_ms),
        emit_ms_median: med(|l| l.emit_ms),
        throughput_fps: throughput,
        throughput_vs_infer: throughput * infer / 1000.0,
        infer_ms_mean: infer_mean,
        network_busy: throughput * infer_mean / 1000.0,
        dropped: summary.stats.dropped,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("pipeline on {} ({} thread(s)), {} frames after {} warm-up", report.model, report.threads, report.frames, args.warmup);
        println!(
            "median ms    infer {:.2}   overhead {:.2} = preprocess {:.2} + decode {:.2} + emit {:.2}",
            report.infer_ms_median, report.overhead_ms_median, report.preprocess_ms_median, report.decode_ms_median, report.emit_ms_median
        );
        println!("overhead     {:.1} % of inference (target <= 10 %)", report.overhead_pct_of_infer);
        println!(
            "throughput   {:.2} FPS = {:.3} x 1/infer (target >= 0.95)",
            report.throughput_fps, report.throughput_vs_infer
        );
        println!("network busy {:.1} % of wall time (infer mean {:.2} ms)", 100.0 * report.network_busy, report.infer_ms_mean);
    }
    Ok(ExitCode::SUCCESS)
}

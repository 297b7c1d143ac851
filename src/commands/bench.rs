//! `edgeseg bench`: latency of the network alone, as `scripts/bench_ort.py`
//! measures onnxruntime, so the two can be compared run for run.

use crate::cli::BenchArgs;
use crate::imageio::read_image;
use crate::model::{preprocess::preprocess, Model};
use anyhow::Result;
use image::{DynamicImage, RgbImage};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Serialize)]
pub struct Latency {
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub min: f64,
}

#[derive(Serialize)]
pub struct BenchReport {
    pub runtime: String,
    pub model: String,
    pub threads: usize,
    pub input_shape: [usize; 4],
    pub warmup: u32,
    pub runs: u32,
    pub latency_ms: Latency,
    pub fps: f64,
    /// Peak resident set size of the process (Linux `VmHWM`), MiB.
    pub peak_rss_mib: Option<f64>,
    /// With `--profile`: time by operator, slowest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::model::profile::Profile>,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub fn latency(samples: &mut [f64]) -> Latency {
    samples.sort_by(f64::total_cmp);
    Latency {
        median: percentile(samples, 50.0),
        p90: percentile(samples, 90.0),
        p99: percentile(samples, 99.0),
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
        min: samples[0],
    }
}

/// Peak RSS from /proc/self/status, where there is one.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    if args.pipeline {
        return super::bench_pipeline::run(args);
    }
    let model = Model::load_with_threads(&args.model, &args.model_flags.overrides()?, args.run.threads.into())?;
    let img = match &args.image {
        Some(path) => read_image(path)?,
        // Same default as scripts/bench_ort.py: a uniform mid-gray frame.
        None => DynamicImage::ImageRgb8(RgbImage::from_pixel(model.meta.width as u32, model.meta.height as u32, image::Rgb([128; 3]))),
    };
    let (input, _) = preprocess(&img, &model.meta);
    for _ in 0..args.warmup {
        model.run(input.clone())?;
    }
    let mut samples = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        // The copy of the input is made outside the timed region.
        let tensor = input.clone();
        let t = Instant::now();
        model.run(tensor)?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let latency = latency(&mut samples);
    // Profiled after the timed runs: the per-node clock reads would slow them.
    let profile = if args.profile { Some(model.profile(&input, args.runs)?) } else { None };
    let report = BenchReport {
        runtime: "edgeseg (tract 0.23)".into(),
        model: args.model.display().to_string(),
        threads: model.threads,
        input_shape: model.input_shape,
        warmup: args.warmup,
        runs: args.runs,
        fps: 1000.0 / latency.median,
        latency_ms: latency,
        peak_rss_mib: peak_rss_mib(),
        profile,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let l = &report.latency_ms;
        println!("{} on {} ({} thread(s), input {:?}, {} runs after {} warm-up)", report.runtime, report.model, report.threads, report.input_shape, report.runs, report.warmup);
        println!("latency ms   median {:.2}  p90 {:.2}  p99 {:.2}  mean {:.2}  min {:.2}", l.median, l.p90, l.p99, l.mean, l.min);
        println!("throughput   {:.2} FPS (1 / median)", report.fps);
        if let Some(rss) = report.peak_rss_mib {
            println!("peak RSS     {rss:.1} MiB");
        }
        if let Some(p) = &report.profile {
            println!("time by operator ({} profiled runs; nodes timed one by one):", report.runs);
            for op in &p.ops {
                println!("  {:>5.1}%  {:>8.2} ms  {:>4} node(s)  {}", op.share * 100.0, op.ms_per_run, op.nodes, op.op);
            }
            println!("slowest nodes:");
            for n in &p.nodes {
                println!("  {:>8.2} ms  {} ({}) {}", n.ms_per_run, n.node, n.op, n.info);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let l = latency(&mut v);
        assert_eq!((l.median, l.p90, l.p99, l.min), (50.0, 90.0, 99.0, 1.0));
        assert_eq!(l.mean, 50.5);
        let mut one = vec![7.0];
        assert_eq!(latency(&mut one).p99, 7.0);
    }
}

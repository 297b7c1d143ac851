//! `edgeseg run`: the daemon. Loads a board config (or the embedded demo),
//! builds source → model → decision → sinks, and runs the pipeline until the
//! source ends, `--max-frames` is reached, or SIGTERM/SIGINT. SIGHUP reloads
//! the config and the model without restarting the process; a reload that
//! fails (bad TOML, missing model) is logged and the running pipeline stays.

use crate::cli::RunArgs;
use crate::config::Config;
use crate::decide::Decider;
use crate::model::{MetaOverrides, Model};
use crate::pipeline::process::FrameProcessor;
use crate::pipeline::{self, Options, Parts, Summary, Trigger};
use crate::sink::gpio::{GpioSink, TriggerInput};
use crate::sink::Sink;
use anyhow::{Context, Result};
use log::{error, info, warn};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A config together with the model it names, loaded and checked.
pub struct Loaded {
    pub config: Config,
    pub model: Model,
}

/// Read the config (or the embedded default) and apply command-line overrides.
pub fn load_config(args: &RunArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default(),
    };
    if let Some(n) = args.max_frames {
        config.pipeline.max_frames = n;
    }
    if let Some(t) = args.threads {
        config.model.threads = t;
    }
    Ok(config)
}

/// Load the model a config names and check the config against it.
pub fn load(config: Config) -> Result<Loaded> {
    let path = config.model_path()?;
    let overrides = MetaOverrides { classes: config.model.classes.clone(), ..MetaOverrides::default() };
    let model = Model::load_with_threads(&path, &overrides, config.model.threads.into())
        .with_context(|| format!("loading the model of key model.path{}", config.file.as_ref().map(|f| format!(" in {}", f.display())).unwrap_or_default()))?;
    config.decide.check_classes(&model.meta.classes).map_err(|e| match &config.file {
        Some(f) => anyhow::anyhow!("{}: {e}", f.display()),
        None => e,
    })?;
    Ok(Loaded { config, model })
}

/// Open the source and sinks and put the pipeline together.
pub fn build_parts(loaded: Loaded) -> Result<(Parts, Options)> {
    let Loaded { config, model } = loaded;
    let source = config.source.open(&config.base_dir).context("opening key [source]")?;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let device = config.device.name.clone();
    if let Some(c) = &config.sinks.stdout {
        sinks.push(Box::new(crate::sink::stdout::StdoutSink::new(c)));
    }
    if let Some(c) = &config.sinks.archive {
        sinks.push(Box::new(crate::sink::archive::ArchiveSink::open(c, &config.base_dir, &model.meta.classes)?));
    }
    if let Some(c) = &config.sinks.mqtt {
        let c = c.resolved(&config.base_dir);
        let sink = crate::sink::mqtt::MqttSink::connect_with_model(&c, &device, Some(&model.meta.name)).context("key [sinks.mqtt]")?;
        sinks.push(Box::new(sink));
    }
    let mut trigger: Option<Box<dyn Trigger>> = None;
    if let Some(c) = &config.sinks.gpio {
        // The trigger line is requested before the sink sets the ready line: from its request
        // on, the kernel queues every edge, so a PLC that fires as soon as it sees "ready"
        // cannot lose its first trigger in between.
        if let Some(t) = TriggerInput::open(c).context("key sinks.gpio.trigger_line")? {
            trigger = Some(Box::new(t));
        }
        sinks.push(Box::new(GpioSink::open(c).context("key [sinks.gpio]")?));
    }
    if config.pipeline.mode == crate::config::Mode::Trigger && trigger.is_none() {
        anyhow::bail!(
            "{}key pipeline.mode = \"trigger\" but no trigger input is configured; fix: set sinks.gpio.trigger_line, or use mode = \"continuous\"",
            config.file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default()
        );
    }
    info!(
        "device {device}: model {} ({}x{}, {} thread(s)), sinks: {}",
        model.path.display(),
        model.meta.width,
        model.meta.height,
        model.threads,
        if sinks.is_empty() { "none".to_string() } else { sinks.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ") }
    );
    let decider = Decider::new(config.decide.clone(), &model.meta.classes);
    let processor = FrameProcessor::new(Box::new(model), decider, &device);
    let options = Options {
        mode: config.pipeline.mode,
        max_frames: config.pipeline.max_frames,
        stats_interval: Duration::from_secs_f64(config.pipeline.stats_interval_s),
        overlay: config.pipeline.overlay,
    };
    Ok((Parts { source, processor, sinks, trigger }, options))
}

/// Start the device dashboard when the config asks for it. The embedded demo
/// goes on without one when its port is taken (a second demo, a busy 8080);
/// a board config's `[dashboard]` that cannot listen is an error.
fn start_dashboard(loaded: &Loaded) -> Result<Option<crate::dashboard::DeviceDashboard>> {
    let Some(c) = loaded.config.dashboard.as_ref().filter(|d| d.enabled) else { return Ok(None) };
    match crate::dashboard::DeviceDashboard::start(c, loaded) {
        Ok(d) => {
            info!("dashboard: {} (stream, counters, failing frames; API /api/status, /api/stats, /api/segment, /metrics)", d.url());
            Ok(Some(d))
        }
        Err(e) if loaded.config.file.is_none() => {
            warn!("dashboard not started: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e.context(format!("{}: key [dashboard]", loaded.config.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()))),
    }
}

fn log_summary(s: &Summary) {
    let st = &s.stats;
    let l = &st.latency_median;
    info!(
        "{} frame(s) captured, {} judged: {} pass, {} fail; {} dropped, {} corrupt; median ms: preprocess {:.1}, infer {:.1}, decode {:.1}, emit {:.1}",
        s.captured, st.frames, st.pass, st.fail, st.dropped, st.corrupt, l.preprocess_ms, l.infer_ms, l.decode_ms, l.emit_ms
    );
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing the SIGTERM handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()).context("installing the SIGHUP handler")?;

    let mut loaded = load(load_config(args)?)?;
    if args.check {
        println!("config ok: model {} loads, {} classes", loaded.model.path.display(), loaded.model.meta.classes.len());
        return Ok(ExitCode::SUCCESS);
    }
    let dashboard = start_dashboard(&loaded)?;
    let dashboard_config = loaded.config.dashboard.clone().filter(|d| d.enabled);
    let mut reload = false;
    loop {
        // The dashboard server lives across reloads; each pipeline gets a sink that feeds it.
        let dash_sink = match &dashboard {
            Some(d) => Some(d.sink(&loaded, reload)?),
            None => None,
        };
        let (mut parts, options) = build_parts(loaded)?;
        if let Some(s) = dash_sink {
            parts.sinks.push(Box::new(s));
        }
        let run_stop = Arc::new(AtomicBool::new(false));
        // The next config, prepared while the current pipeline keeps running.
        let next: Arc<Mutex<Option<Loaded>>> = Arc::new(Mutex::new(None));
        let watcher = spawn_watcher(args, stop.clone(), hup.clone(), run_stop.clone(), next.clone());
        let summary = pipeline::run(parts, &options, run_stop.clone())?;
        run_stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        log_summary(&summary);
        if let Some(e) = &summary.model_error {
            error!("stopped: {e}");
            return Ok(ExitCode::from(1));
        }
        let replacement = next.lock().unwrap_or_else(|e| e.into_inner()).take();
        match replacement {
            Some(l) if !stop.load(Ordering::Relaxed) => {
                info!("SIGHUP: restarting the pipeline with the reloaded config");
                if l.config.dashboard.as_ref().filter(|d| d.enabled) != dashboard_config.as_ref() {
                    warn!("SIGHUP: changes to [dashboard] take effect after a restart of the process");
                }
                loaded = l;
                reload = true;
            }
            _ => break,
        }
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Watches the signal flags: SIGTERM stops the pipeline (it drains and the
/// sinks say goodbye); SIGHUP loads the config and model again and, only if
/// that works, stops the pipeline so `run` restarts it with them.
fn spawn_watcher(
    args: &RunArgs,
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    run_stop: Arc<AtomicBool>,
    next: Arc<Mutex<Option<Loaded>>>,
) -> std::thread::JoinHandle<()> {
    let args = args.clone();
    std::thread::spawn(move || {
        while !run_stop.load(Ordering::Relaxed) {
            if stop.load(Ordering::Relaxed) {
                info!("SIGTERM: draining");
                run_stop.store(true, Ordering::Relaxed);
                break;
            }
            if hup.swap(false, Ordering::Relaxed) {
                info!("SIGHUP: reloading {}", args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the embedded default".into()));
                match load_config(&args).and_then(load) {
                    Ok(l) => {
                        *next.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
                        run_stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => warn!("reload failed, keeping the running config: {e:#}"),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

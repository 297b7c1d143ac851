//! `edgeseg run`: the daemon. Loads a board config (or the embedded demo),
//! builds source → model → decision → sinks, and runs the pipeline until the
//! source ends, `--max-frames` is reached, or SIGTERM/SIGINT. SIGHUP reloads
//! the config and the model without restarting the process; a reload that
//! fails (bad TOML, missing model, a sink or source that cannot be opened, a
//! model that panics the loader) is logged and the running pipeline stays
//! (`run/reload.rs`). Under systemd (`Type=notify`) the daemon reports
//! readiness and feeds the watchdog while it makes progress (`pipeline::notify`).

mod build;
mod reload;
mod sinks;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::dashboard::DeviceDashboard;
use crate::model::Model;
use crate::pipeline::monitor::Monitor;
use crate::pipeline::notify::Watchdog;
use crate::pipeline::{self, Summary};
use anyhow::{Context, Result};
use build::Pieces;
use log::{error, info, warn};
use reload::{Outcome, Prepared};
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
    let overrides = config.model.overrides()?;
    let model = Model::load_with_threads(&path, &overrides, config.model.threads.into())
        .with_context(|| format!("loading the model of key model.path{}", config.file.as_ref().map(|f| format!(" in {}", f.display())).unwrap_or_default()))?;
    config.decide.check_classes(&model.meta.classes).map_err(|e| match &config.file {
        Some(f) => anyhow::anyhow!("{}: {e}", f.display()),
        None => e,
    })?;
    Ok(Loaded { config, model })
}

/// Start the device dashboard when the config asks for it. The embedded demo
/// goes on without one when its port is taken (a second demo, a busy 8080);
/// a board config's `[dashboard]` that cannot listen is an error.
fn start_dashboard(loaded: &Loaded) -> Result<Option<DeviceDashboard>> {
    let Some(c) = loaded.config.dashboard.as_ref().filter(|d| d.enabled) else { return Ok(None) };
    match DeviceDashboard::start(c, loaded) {
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

    let loaded = load(load_config(args)?)?;
    if args.check {
        println!("config ok: model {} loads, {} classes", loaded.model.path.display(), loaded.model.meta.classes.len());
        return Ok(ExitCode::SUCCESS);
    }
    let monitor = Monitor::new(Duration::from_secs(30));
    let _watchdog = Watchdog::from_env(monitor.clone())?;
    let dashboard = start_dashboard(&loaded)?.map(Arc::new);
    let dashboard_config = loaded.config.dashboard.clone().filter(|d| d.enabled);
    let mut config = loaded.config.clone();
    let mut pieces = build::build(loaded, dashboard.as_deref())?;
    loop {
        build::watch(&config, &monitor);
        let options = build::options(&config);
        let run_stop = Arc::new(AtomicBool::new(false));
        // The next config, prepared while the current pipeline keeps running.
        let next: Arc<Mutex<Option<Prepared>>> = Arc::new(Mutex::new(None));
        let watcher = Watcher { args: args.clone(), stop: stop.clone(), hup: hup.clone(), run_stop: run_stop.clone(), next: next.clone() };
        let watcher = watcher.spawn(config.clone(), dashboard.clone(), monitor.clone());
        let result = pipeline::run_with(pieces.into_parts(), &options, run_stop.clone(), &monitor);
        run_stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        let (summary, leftovers) = result?;
        log_summary(&summary);
        let old = Pieces::from_leftovers(leftovers);
        if let Some(e) = &summary.model_error {
            error!("stopped: {e}");
            old.sinks.shutdown();
            return Ok(ExitCode::from(1));
        }
        let prepared = next.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(p) = prepared.filter(|_| !stop.load(Ordering::Relaxed)) else {
            monitor.set_stopping();
            old.sinks.shutdown();
            break;
        };
        info!("SIGHUP: switching the pipeline to the reloaded config");
        if p.config.dashboard.as_ref().filter(|d| d.enabled) != dashboard_config.as_ref() {
            warn!("SIGHUP: changes to [dashboard] take effect after a restart of the process");
        }
        let new_config = p.config.clone();
        match reload::switch(p, old, &config, dashboard.as_deref()) {
            Outcome::Switched(new) => {
                info!("SIGHUP: reloaded");
                config = new_config;
                pieces = *new;
            }
            Outcome::Kept(old, e) => {
                warn!("reload failed, keeping the running config: {e:#}");
                pieces = *old;
            }
            Outcome::Fatal(e) => {
                error!("stopped: {e:#}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Watches the signal flags for one pipeline: SIGTERM stops it (it drains and
/// the sinks say goodbye); SIGHUP loads the config and model again and opens
/// what can be opened beside the running pipeline (`reload::prepare`), and
/// only if that works, stops the pipeline so `run` switches over.
struct Watcher {
    args: RunArgs,
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    run_stop: Arc<AtomicBool>,
    next: Arc<Mutex<Option<Prepared>>>,
}

impl Watcher {
    fn spawn(self, running: Config, dashboard: Option<Arc<DeviceDashboard>>, monitor: Arc<Monitor>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            while !self.run_stop.load(Ordering::Relaxed) {
                if self.stop.load(Ordering::Relaxed) {
                    info!("SIGTERM: draining");
                    monitor.set_stopping();
                    self.run_stop.store(true, Ordering::Relaxed);
                    break;
                }
                if self.hup.swap(false, Ordering::Relaxed) {
                    let what = self.args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the embedded default".into());
                    info!("SIGHUP: reloading {what}");
                    match self.prepare(&running, dashboard.as_deref()) {
                        Ok(p) => {
                            *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                            self.run_stop.store(true, Ordering::Relaxed);
                            break;
                        }
                        Err(e) => warn!("reload failed, keeping the running config: {e:#}"),
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    /// Load and open; a panic in there (a malformed model reaching a loader bug)
    /// is a failed reload like any other: this thread must live on to see SIGTERM.
    fn prepare(&self, running: &Config, dashboard: Option<&DeviceDashboard>) -> Result<Prepared> {
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let loaded = load_config(&self.args).and_then(load)?;
            reload::prepare(running, loaded, dashboard)
        }));
        attempt.unwrap_or_else(|panic| {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(anyhow::anyhow!("loading the new config or model panicked ({what}); this is a bug, please report it with the model"))
        })
    }
}

//! `edgeseg dashboard --mqtt URL`: the fleet view (see `crate::dashboard::fleet`).

use crate::cli::DashboardArgs;
use anyhow::{Context, Result};
use log::info;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn run(args: &DashboardArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing the SIGTERM handler")?;
    }
    let (server, _state) = crate::dashboard::fleet::serve(&args.mqtt, &args.topic_prefix, &args.listen, args.token.clone())?;
    info!("fleet dashboard: {} (devices from {}, topics {}/+/detections|status|stats)", crate::dashboard::url_of(server.addr), args.mqtt, args.topic_prefix);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

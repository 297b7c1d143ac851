use clap::Parser;
use edgeseg::cli::{Cli, Command};
use edgeseg::commands;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread starts: the arena limit only holds for arenas created after it.
    edgeseg::model::heap::retain_freed_tensors();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp_millis().init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Infer(args) => commands::infer::run(&args),
        Command::InspectModel(args) => commands::inspect::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Probe(args) => commands::probe::run(&args),
        Command::Dashboard(args) => commands::dashboard::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

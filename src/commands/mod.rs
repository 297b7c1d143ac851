//! The CLI's subcommands. Each returns the process exit code, or an error that
//! `main` prints with its full context chain.

pub mod bench;
pub mod bench_pipeline;
pub mod dashboard;
pub mod eval;
pub mod eval_instance;
pub mod infer;
pub mod inspect;
pub mod run;
pub mod probe;

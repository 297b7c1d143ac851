//! edgeseg: an edge inference runtime for industrial image segmentation.
//!
//! The daemon is a pipeline, read in this order: `source` (frames in) →
//! `model` (preprocess, run with tract, decode) → `decide` (pass/fail) →
//! `sink` (MQTT, GPIO, archive, stdout, `dashboard`), wired by `pipeline` from a `config`.
//! `mask` derives areas, boxes, components and COCO RLE; `overlay` draws;
//! `eval` scores; `commands` are the CLI's subcommands.

pub mod cli;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod decide;
pub mod eval;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod gpio;
pub mod imageio;
pub mod input_checks;
pub mod linalg;
pub mod mask;
pub mod model;
pub mod overlay;
pub mod pipeline;
pub mod report;
pub mod sink;
pub mod source;

//! edgeseg: an edge inference runtime for industrial image segmentation.
//!
//! `model` loads ONNX files with tract and turns frames into class maps;
//! `mask` derives areas, boxes, components and COCO RLE; `overlay` draws;
//! `eval` scores; `commands` are the CLI's subcommands.

pub mod cli;
pub mod commands;
pub mod eval;
pub mod imageio;
pub mod mask;
pub mod model;
pub mod overlay;

//! `edgeseg infer`: segment image files, write masks, overlays and JSON.

use crate::cli::InferArgs;
use crate::imageio::{expand_inputs, read_image};
use crate::mask::{ClassRegion, SegMap};
use crate::model::instance::{Instance, InstanceParams};
use crate::model::{meta::Task, Model, StageTimes};
use crate::overlay;
use anyhow::{Context, Result};
use log::{error, info};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The JSON report of one image.
#[derive(Serialize)]
pub struct ImageReport<'a> {
    pub image: String,
    pub width: usize,
    pub height: usize,
    pub model: &'a str,
    pub task: Task,
    pub timing: StageTimes,
    /// Every non-background class present, with components and COCO RLE
    /// (for instance models: the union of the instances of each class).
    pub classes: Vec<ClassRegion>,
    /// Instance models: every instance with class, score, box, area, RLE, polygon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<Instance>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_png: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay_png: Option<String>,
}

pub fn run(args: &InferArgs) -> Result<ExitCode> {
    let model = Model::load_with_threads(&args.model, &args.model_flags.overrides()?, args.run.threads.into())?;
    let images = expand_inputs(&args.inputs)?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    }
    info!("{}: {} image(s) with {} ({}x{})", env!("CARGO_PKG_NAME"), images.len(), model.meta.name, model.meta.width, model.meta.height);
    let mut failed = 0usize;
    let mut used_stems = HashSet::new();
    for path in &images {
        let stem = unique_stem(path, &mut used_stems);
        // A bad image is reported and skipped; the others are still processed.
        if let Err(e) = infer_one(&model, path, &stem, args) {
            error!("{e:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        error!("{failed} of {} image(s) failed", images.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Output name for an input: its file stem, with `-2`, `-3`... appended when
/// two inputs share a stem (a.png and a.jpg, or dir1/a.png and dir2/a.png), so
/// no report overwrites another.
fn unique_stem(path: &Path, used: &mut HashSet<String>) -> String {
    let base = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image").to_string();
    let mut stem = base.clone();
    let mut n = 1;
    while !used.insert(stem.clone()) {
        n += 1;
        stem = format!("{base}-{n}");
    }
    stem
}

fn infer_one(model: &Model, path: &Path, stem: &str, args: &InferArgs) -> Result<()> {
    let img = read_image(path)?;
    let (map, timing, instances) = match model.meta.task {
        Task::Semantic => {
            let (map, timing) = model.segment(&img).with_context(|| format!("segmenting {}", path.display()))?;
            (map, timing, None)
        }
        Task::Instance => {
            let mut map = SegMap::new(0, 0);
            let (found, timing) = model
                .instances(&img, &InstanceParams::default(), Some(&mut map))
                .with_context(|| format!("segmenting {}", path.display()))?;
            (map, timing, Some(found))
        }
    };
    let class_names = model.meta.map_class_names();
    let regions = map.regions(&class_names);
    let mut report = ImageReport {
        image: path.display().to_string(),
        width: map.width,
        height: map.height,
        model: &model.meta.name,
        task: model.meta.task,
        timing,
        classes: regions,
        instances,
        mask_png: None,
        overlay_png: None,
    };
    match &args.out {
        Some(out) => {
            let mask_path = out.join(format!("{stem}.mask.png"));
            map.save_png(&mask_path)?;
            report.mask_png = Some(file_name(&mask_path));
            if !args.no_overlay {
                let overlay_path = out.join(format!("{stem}.overlay.png"));
                overlay::render(&img, &map, &report.classes, &class_names)
                    .save(&overlay_path)
                    .with_context(|| format!("cannot write overlay {}", overlay_path.display()))?;
                report.overlay_png = Some(file_name(&overlay_path));
            }
            let json_path: PathBuf = out.join(format!("{stem}.json"));
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::write(&json_path, json + "\n").with_context(|| format!("cannot write {}", json_path.display()))?;
            let found: Vec<String> = report.classes.iter().map(|c| format!("{} {}px", c.name, c.area)).collect();
            info!(
                "{}: {} (infer {:.1} ms) -> {}",
                path.display(),
                if found.is_empty() { "no defects".to_string() } else { found.join(", ") },
                timing.infer_ms,
                json_path.display()
            );
        }
        None => println!("{}", serde_json::to_string(&report)?),
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

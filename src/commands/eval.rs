//! `edgeseg eval`: IoU of a semantic model on a labelled split.

use crate::cli::EvalArgs;
use crate::eval::Confusion;
use crate::imageio::{expand_inputs, read_image};
use crate::model::{meta::Task, Model};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The folder holding images/ and masks/: DATA itself or DATA/SPLIT.
fn split_dir(data: &Path, split: &str) -> Result<PathBuf> {
    for dir in [data.to_path_buf(), data.join(split)] {
        if dir.join("images").is_dir() && dir.join("masks").is_dir() {
            return Ok(dir);
        }
    }
    bail!(
        "{} has no images/ and masks/ folders (nor has {}); fix: point --data at a split folder such as \
         data/defects/test, made by scripts/gen_data.py",
        data.display(),
        data.join(split).display()
    )
}

pub fn run(args: &EvalArgs) -> Result<ExitCode> {
    let model = Model::load_with_threads(&args.model, &args.model_flags.overrides()?, args.run.threads.into())?;
    if model.meta.task == Task::Instance {
        return super::eval_instance::run(&model, args);
    }
    let dir = split_dir(&args.data, &args.split)?;
    let mut images = expand_inputs(&[dir.join("images")])?;
    if let Some(n) = args.limit {
        images.truncate(n);
    }
    let classes = model.meta.classes.len();
    let mut confusion = Confusion::new(classes);
    for path in &images {
        let mask_path = dir.join("masks").join(path.file_name().context("image without a file name")?).with_extension("png");
        let label = image::open(&mask_path)
            .with_context(|| format!("cannot read label mask {} for {}; fix: every image needs a class-index PNG of the same name in masks/", mask_path.display(), path.display()))?
            .into_luma8();
        let (map, _) = model.segment(&read_image(path)?)?;
        if (label.width() as usize, label.height() as usize) != (map.width, map.height) {
            bail!("{} is {}x{} but its image is {}x{}; fix: masks must match their images", mask_path.display(), label.width(), label.height(), map.width, map.height);
        }
        if let Err(v) = confusion.add(&map.classes, label.as_raw()) {
            bail!("{} holds class {v} but the model has {classes} classes; fix: check the dataset against the model's classes", mask_path.display());
        }
    }
    let report = confusion.report(&model.meta.classes, images.len());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} on {} ({} images, {} pixels)", model.meta.name, dir.display(), report.images, report.pixels);
    println!("{:<14} {:>8}", "class", "IoU");
    for c in &report.per_class {
        let v = c.iou.map_or("   n/a".to_string(), |v| format!("{v:>8.4}"));
        println!("{:<14} {v}", c.name);
    }
    println!("{:<14} {:>8.4}", "mIoU(defects)", report.miou_defects);
    println!("{:<14} {:>8.4}", "mIoU(all)", report.miou);
    println!("{:<14} {:>8.4}", "pixel acc", report.pixel_accuracy);
    Ok(ExitCode::SUCCESS)
}

//! `edgeseg eval` for instance models: COCO mask mAP@0.5 and mAP@0.5:0.95
//! against the COCO ground truth that `scripts/gen_data.py` writes.

use crate::cli::EvalArgs;
use crate::eval::coco::{evaluate, ImageEval, Object};
use crate::eval::coco_file::CocoFile;
use crate::imageio::read_image;
use crate::mask::CocoRle;
use crate::model::instance::InstanceParams;
use crate::model::Model;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One line of COCO's results format.
#[derive(Serialize)]
struct CocoResult {
    image_id: u64,
    category_id: u32,
    segmentation: CocoRle,
    score: f32,
}

fn annotations_path(args: &EvalArgs) -> PathBuf {
    args.annotations.clone().unwrap_or_else(|| args.data.join("annotations").join(format!("instances_{}.json", args.split)))
}

pub fn run(model: &Model, args: &EvalArgs) -> Result<ExitCode> {
    let ann_path = annotations_path(args);
    let text = std::fs::read_to_string(&ann_path).with_context(|| {
        format!("cannot read COCO ground truth {}; fix: pass --annotations, or point --data at a dataset root made by scripts/gen_data.py", ann_path.display())
    })?;
    let coco = CocoFile::parse(&text, &ann_path)?;
    // Model class k ↔ the COCO category of the same name.
    let mut class_to_cat = Vec::new();
    for name in &model.meta.classes {
        let Some(c) = coco.categories.iter().find(|c| &c.name == name) else {
            bail!(
                "the model's class {name:?} is not a category of {} ({}); fix: evaluate on data with the model's classes",
                ann_path.display(),
                coco.categories.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        };
        class_to_cat.push(c.id);
    }
    let root = ann_path.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    let mut images: Vec<_> = coco.images.iter().collect();
    images.sort_by_key(|i| i.id);
    if let Some(n) = args.limit {
        images.truncate(n);
    }
    let params = InstanceParams { conf: args.conf, iou: 0.7 };
    let mut evals = Vec::with_capacity(images.len());
    let mut results = Vec::new();
    for img in &images {
        let path = root.join(&img.file_name);
        let picture = read_image(&path)?;
        coco.check_image_size(&ann_path, img.id, picture.width() as usize, picture.height() as usize)?;
        let (found, _) = model.instances(&picture, &params, None).with_context(|| format!("segmenting {}", path.display()))?;
        let mut gts = Vec::new();
        for a in coco.annotations.iter().filter(|a| a.image_id == img.id) {
            gts.push(Object { category: a.category_id, score: 1.0, mask: a.segmentation.decode().with_context(|| format!("annotation of image {}", img.id))? });
        }
        let mut dts = Vec::new();
        for inst in found {
            let category = class_to_cat[inst.class_id as usize];
            dts.push(Object { category, score: inst.score, mask: inst.rle.decode()? });
            results.push(CocoResult { image_id: img.id, category_id: category, segmentation: inst.rle, score: inst.score });
        }
        evals.push(ImageEval { gts, dts });
    }
    let categories: Vec<(u32, String)> = coco.categories.iter().map(|c| (c.id, c.name.clone())).collect();
    let report = evaluate(&evals, &categories).with_context(|| format!("scoring against {}", ann_path.display()))?;
    if let Some(p) = &args.predictions {
        std::fs::write(p, serde_json::to_string(&results)?).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} on {} ({} images, conf {})", model.meta.name, ann_path.display(), report.images, args.conf);
    println!("{:<14} {:>8} {:>10}", "class", "AP50", "AP50-95");
    let f = |v: Option<f64>| v.map_or("     n/a".to_string(), |v| format!("{v:>8.4}"));
    for c in &report.per_class {
        println!("{:<14} {} {:>10}", c.name, f(c.ap50), f(c.ap));
    }
    println!("{:<14} {:>8.4} {:>10.4}", "mask mAP", report.map50, report.map50_95);
    Ok(ExitCode::SUCCESS)
}

//! edgeseg against onnxruntime: masks, COCO RLE and eval on the committed
//! samples, with reference outputs written by `scripts/golden.py`.

use edgeseg::eval::Confusion;
use edgeseg::imageio::read_image;
use edgeseg::mask::CocoRle;
use edgeseg::model::{MetaOverrides, Model};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::load(&root().join("models/unet_defects.onnx"), &MetaOverrides::default()).expect("committed model loads"))
}

fn golden() -> Value {
    let text = std::fs::read_to_string(root().join("tests/golden/golden.json")).expect("tests/golden/golden.json (run scripts/golden.py)");
    serde_json::from_str(&text).expect("golden.json parses")
}

fn sample_images() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("samples/images")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    assert!(v.len() >= 4, "expected the bundled sample images");
    v
}

fn ort_mask(image: &Path) -> Vec<u8> {
    let stem = image.file_stem().unwrap().to_str().unwrap();
    image::open(root().join(format!("tests/golden/{stem}.ort.png"))).unwrap().into_luma8().into_raw()
}

#[test]
fn masks_agree_with_onnxruntime() {
    for path in sample_images() {
        let (map, _) = model().segment(&read_image(&path).unwrap()).unwrap();
        let reference = ort_mask(&path);
        assert_eq!(map.classes.len(), reference.len());
        let same = map.classes.iter().zip(&reference).filter(|(a, b)| a == b).count();
        let share = same as f64 / reference.len() as f64;
        assert!(share >= 0.999, "{}: only {:.4}% of pixels agree with onnxruntime", path.display(), share * 100.0);
    }
}

#[test]
fn rle_matches_pycocotools() {
    let golden = golden();
    for path in sample_images() {
        let reference = ort_mask(&path);
        let name = path.file_name().unwrap().to_str().unwrap();
        let entry = &golden["images"][name];
        let (h, w) = (entry["size"][0].as_u64().unwrap() as usize, entry["size"][1].as_u64().unwrap() as usize);
        for class in 1..model().meta.classes.len() as u8 {
            let mask: Vec<bool> = reference.iter().map(|&c| c == class).collect();
            let ours = CocoRle::encode(&mask, w, h);
            match entry["classes"].get(class.to_string()) {
                Some(c) => {
                    let theirs = c["counts"].as_str().unwrap();
                    assert_eq!(ours.counts, theirs, "{name} class {class}: RLE string differs from pycocotools");
                    let decoded = CocoRle { size: [h, w], counts: theirs.to_string() }.decode().unwrap();
                    assert_eq!(decoded, mask, "{name} class {class}: pycocotools RLE decodes to another mask");
                    assert_eq!(ours.area().unwrap(), c["area"].as_u64().unwrap());
                }
                None => assert!(!mask.contains(&true), "{name} class {class} present but not in golden.json"),
            }
        }
    }
}

#[test]
fn eval_matches_evaluate_py() {
    let golden = golden();
    let reference = &golden["eval"];
    let m = model();
    let mut confusion = Confusion::new(m.meta.classes.len());
    let images = sample_images();
    for path in &images {
        let (map, _) = m.segment(&read_image(path).unwrap()).unwrap();
        let label = image::open(root().join("samples/masks").join(path.file_name().unwrap())).unwrap().into_luma8();
        confusion.add(&map.classes, label.as_raw()).unwrap();
    }
    let report = confusion.report(&m.meta.classes, images.len());
    let close = |a: f64, b: &Value, what: &str| {
        let b = b.as_f64().unwrap_or(f64::NAN);
        assert!((a - b).abs() <= 1e-4 || (a.is_nan() && b.is_nan()), "{what}: edgeseg {a} vs evaluate.py {b}");
    };
    close(report.miou_defects, &reference["miou_defects"], "mIoU(defects)");
    close(report.miou, &reference["miou"], "mIoU");
    close(report.pixel_accuracy, &reference["pixel_accuracy"], "pixel accuracy");
    for c in &report.per_class {
        close(c.iou.unwrap_or(f64::NAN), &reference["iou"][&c.name], &format!("IoU {}", c.name));
    }
}

#[test]
fn committed_model_describes_itself() {
    let m = model();
    assert_eq!(m.meta.classes, ["background", "scratch", "spot", "crack", "pit"]);
    assert_eq!((m.meta.width, m.meta.height), (256, 256));
    assert_eq!(m.meta.channels(), 1);
    assert!(m.meta.origins.iter().all(|(_, o)| *o == edgeseg::model::meta::Origin::Metadata), "{:?}", m.meta.origins);
}

#[test]
fn two_threads_give_the_same_masks() {
    let threaded = Model::load_with_threads(&root().join("models/unet_defects.onnx"), &MetaOverrides::default(), 2).unwrap();
    assert_eq!(threaded.threads, 2);
    for path in sample_images().iter().take(3) {
        let img = read_image(path).unwrap();
        let (single, _) = model().segment(&img).unwrap();
        let (multi, _) = threaded.segment(&img).unwrap();
        let same = single.classes.iter().zip(&multi.classes).filter(|(a, b)| a == b).count();
        assert!(same as f64 / single.classes.len() as f64 >= 0.999, "{}: threads change the mask", path.display());
    }
}

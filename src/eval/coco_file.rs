//! A COCO instances file (ground truth for `edgeseg eval` of instance models),
//! read and checked: every annotation belongs to a listed image and category,
//! and its mask has its image's size, so nothing is scored against a mask of
//! another shape. Errors name the file, the image id and the sizes.

use crate::mask::CocoRle;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

#[derive(Deserialize)]
pub struct CocoFile {
    pub images: Vec<CocoImage>,
    pub annotations: Vec<CocoAnnotation>,
    pub categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
pub struct CocoImage {
    pub id: u64,
    pub file_name: String,
    /// Pixels; optional here (checked against the image file when it is read).
    #[serde(default)]
    pub width: Option<usize>,
    #[serde(default)]
    pub height: Option<usize>,
}

#[derive(Deserialize)]
pub struct CocoAnnotation {
    pub image_id: u64,
    pub category_id: u32,
    pub segmentation: CocoRle,
}

#[derive(Deserialize)]
pub struct CocoCategory {
    pub id: u32,
    pub name: String,
}

const FIX: &str = "fix: regenerate the annotations (scripts/gen_data.py) or correct the file";

impl CocoFile {
    /// Parse and check COCO JSON; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<CocoFile> {
        let coco: CocoFile = serde_json::from_str(text).with_context(|| format!("{} is not COCO instances JSON", path.display()))?;
        coco.check(path)?;
        Ok(coco)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let file = path.display();
        let mut images: HashMap<u64, &CocoImage> = HashMap::new();
        for img in &self.images {
            if images.insert(img.id, img).is_some() {
                bail!("{file}: image id {} is listed twice; {FIX}", img.id);
            }
        }
        for (i, a) in self.annotations.iter().enumerate() {
            let Some(img) = images.get(&a.image_id) else {
                bail!("{file}: annotation {i} belongs to image id {}, which is not in \"images\"; {FIX}", a.image_id);
            };
            if !self.categories.iter().any(|c| c.id == a.category_id) {
                bail!("{file}: annotation {i} (image id {}) has category_id {}, which is not in \"categories\"; {FIX}", a.image_id, a.category_id);
            }
            a.segmentation.pixels().with_context(|| format!("{file}: annotation {i} of image id {}; {FIX}", a.image_id))?;
            if let (Some(w), Some(h)) = (img.width, img.height) {
                check_size(path, i, a, (w, h), "its entry in \"images\"")?;
            }
        }
        Ok(())
    }

    /// Check every annotation of `image_id` against the image file's real size.
    pub fn check_image_size(&self, path: &Path, image_id: u64, width: usize, height: usize) -> Result<()> {
        for (i, a) in self.annotations.iter().enumerate().filter(|(_, a)| a.image_id == image_id) {
            check_size(path, i, a, (width, height), "the image file")?;
        }
        Ok(())
    }
}

fn check_size(path: &Path, i: usize, a: &CocoAnnotation, (width, height): (usize, usize), what: &str) -> Result<()> {
    let [h, w] = a.segmentation.size;
    if (w, h) != (width, height) {
        bail!(
            "{}: annotation {i} of image id {} has a mask of {w}x{h} but {what} says the image is {width}x{height} (width x height); \
             a mask of another size cannot be scored; {FIX}",
            path.display(),
            a.image_id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ann_size: [usize; 2]) -> String {
        format!(
            r#"{{"images": [{{"id": 7, "file_name": "a.png", "width": 4, "height": 3}}],
               "annotations": [{{"image_id": 7, "category_id": 1, "segmentation": {{"size": [{}, {}], "counts": "0<"}}}}],
               "categories": [{{"id": 1, "name": "scratch"}}]}}"#,
            ann_size[0], ann_size[1]
        )
    }

    #[test]
    fn a_well_formed_file_passes() {
        let c = CocoFile::parse(&file([3, 4]), Path::new("gt.json")).unwrap();
        c.check_image_size(Path::new("gt.json"), 7, 4, 3).unwrap();
    }

    /// Issue 24 item 18: an annotation whose size differs from its image was scored silently.
    #[test]
    fn size_mismatches_name_file_image_and_both_sizes() {
        let e = format!("{:#}", CocoFile::parse(&file([5, 4]), Path::new("gt.json")).err().unwrap());
        assert!(e.contains("gt.json") && e.contains("image id 7") && e.contains("4x5") && e.contains("4x3"), "{e}");
        let c = CocoFile::parse(&file([3, 4]), Path::new("gt.json")).unwrap();
        let e = c.check_image_size(Path::new("gt.json"), 7, 8, 6).unwrap_err().to_string();
        assert!(e.contains("image id 7") && e.contains("4x3") && e.contains("8x6") && e.contains("image file"), "{e}");
    }

    #[test]
    fn huge_sizes_and_dangling_ids_are_errors() {
        let huge = file([usize::MAX, 4]).replace(r#""width": 4, "height": 3"#, r#""width": 4, "height": 18446744073709551615"#);
        let e = format!("{:#}", CocoFile::parse(&huge, Path::new("gt.json")).err().unwrap());
        assert!(e.contains("larger than") && e.contains("image id 7"), "{e}");
        let dangling = file([3, 4]).replace(r#""image_id": 7"#, r#""image_id": 8"#);
        assert!(format!("{:#}", CocoFile::parse(&dangling, Path::new("gt.json")).err().unwrap()).contains("image id 8"));
    }
}

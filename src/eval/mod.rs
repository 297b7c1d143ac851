//! Semantic evaluation: a dataset-level confusion matrix, per-class IoU, mIoU
//! and pixel accuracy, defined exactly as `scripts/metrics.py`.

pub mod coco;
pub mod coco_file;

use serde::Serialize;

#[derive(Clone, Debug)]
pub struct Confusion {
    pub classes: usize,
    /// rows = label, columns = prediction.
    pub counts: Vec<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassIou {
    pub name: String,
    /// None when the class is absent from labels and predictions.
    pub iou: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IouReport {
    pub images: usize,
    pub pixels: u64,
    pub per_class: Vec<ClassIou>,
    /// Mean over every class that occurs, background included.
    pub miou: f64,
    /// Mean over the defect classes (all but index 0).
    pub miou_defects: f64,
    pub pixel_accuracy: f64,
}

impl Confusion {
    pub fn new(classes: usize) -> Confusion {
        Confusion { classes, counts: vec![0; classes * classes] }
    }

    /// Add one image. Label values outside the class range are an error the
    /// caller reports with the file name.
    pub fn add(&mut self, pred: &[u8], label: &[u8]) -> Result<(), u8> {
        for (&p, &l) in pred.iter().zip(label) {
            if l as usize >= self.classes {
                return Err(l);
            }
            let p = (p as usize).min(self.classes - 1);
            self.counts[l as usize * self.classes + p] += 1;
        }
        Ok(())
    }

    pub fn report(&self, names: &[String], images: usize) -> IouReport {
        let n = self.classes;
        let at = |r: usize, c: usize| self.counts[r * n + c] as f64;
        let ious: Vec<Option<f64>> = (0..n)
            .map(|k| {
                let tp = at(k, k);
                let row: f64 = (0..n).map(|c| at(k, c)).sum();
                let col: f64 = (0..n).map(|r| at(r, k)).sum();
                let union = row + col - tp;
                (union > 0.0).then(|| tp / union)
            })
            .collect();
        let mean = |v: &[Option<f64>]| {
            let present: Vec<f64> = v.iter().flatten().copied().collect();
            if present.is_empty() { f64::NAN } else { present.iter().sum::<f64>() / present.len() as f64 }
        };
        let total: u64 = self.counts.iter().sum();
        let correct: f64 = (0..n).map(|k| at(k, k)).sum();
        IouReport {
            images,
            pixels: total,
            per_class: ious
                .iter()
                .enumerate()
                .map(|(k, iou)| ClassIou { name: names.get(k).cloned().unwrap_or_else(|| format!("class{k}")), iou: *iou })
                .collect(),
            miou: mean(&ious),
            miou_defects: mean(&ious[1.min(n)..]),
            pixel_accuracy: if total > 0 { correct / total as f64 } else { f64::NAN },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        let mut c = Confusion::new(3);
        // label:  0 0 1 1 2 ; pred: 0 1 1 1 0
        c.add(&[0, 1, 1, 1, 0], &[0, 0, 1, 1, 2]).unwrap();
        let names: Vec<String> = ["bg", "a", "b"].iter().map(|s| s.to_string()).collect();
        let r = c.report(&names, 1);
        // class 0: tp 1, row 2, col 2 -> 1/3; class 1: tp 2, row 2, col 3 -> 2/3; class 2: tp 0 -> 0.
        assert!((r.per_class[0].iou.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.per_class[1].iou.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.per_class[2].iou, Some(0.0));
        assert!((r.miou_defects - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.pixel_accuracy - 0.6).abs() < 1e-12);
        assert_eq!(c.add(&[0], &[7]), Err(7));
    }
}

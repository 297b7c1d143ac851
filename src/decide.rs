//! Pass/fail per frame: which defects count, where, and how big.
//!
//! A semantic frame's defects are the connected components of each class
//! (one scratch, another scratch...). A component counts when its class is
//! not ignored, its score and area reach the class's minimum, and the centre
//! of its box lies inside the region of interest. Any counted component fails
//! the frame.

use crate::mask::ClassRegion;
use crate::report::{Finding, Verdict};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `[decide]` in a board config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideConfig {
    /// Region of interest: polygon vertices `[[x, y], ...]` in source-frame
    /// pixels (at least 3). Empty = the whole frame.
    #[serde(default)]
    pub roi: Vec<[f32; 2]>,
    /// Default minimum score (0..1) of a defect.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Default minimum area in pixels of a defect.
    #[serde(default = "default_min_area")]
    pub min_area: u64,
    /// Per-class overrides, keyed by class name.
    #[serde(default)]
    pub classes: BTreeMap<String, ClassRule>,
}

#[derive(Clone, Debug, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    pub min_score: Option<f32>,
    pub min_area: Option<u64>,
    /// Never fail a frame for this class (still reported).
    #[serde(default)]
    pub ignore: bool,
}

impl Default for DecideConfig {
    fn default() -> Self {
        DecideConfig { roi: Vec::new(), min_score: default_min_score(), min_area: default_min_area(), classes: BTreeMap::new() }
    }
}

fn default_min_score() -> f32 {
    0.5
}
fn default_min_area() -> u64 {
    // A few pixels of a class is usually noise at the mask's edge.
    10
}

impl DecideConfig {
    pub fn check(&self) -> Result<()> {
        if !self.roi.is_empty() && self.roi.len() < 3 {
            bail!("key decide.roi has {} point(s); fix: give a polygon of at least 3 [x, y] points, or remove it", self.roi.len());
        }
        if self.roi.iter().flatten().any(|v| !v.is_finite()) {
            bail!("key decide.roi has a non-finite coordinate; fix: use pixel coordinates of the source frame");
        }
        let in_range = |v: f32| (0.0..=1.0).contains(&v);
        if !in_range(self.min_score) {
            bail!("key decide.min_score = {}; fix: a score between 0 and 1", self.min_score);
        }
        for (name, rule) in &self.classes {
            if let Some(s) = rule.min_score.filter(|s| !in_range(*s)) {
                bail!("key decide.classes.{name}.min_score = {s}; fix: a score between 0 and 1");
            }
        }
        Ok(())
    }

    /// Class names in `[decide.classes]` that the model does not have (a typo would silently never match).
    pub fn check_classes(&self, model_classes: &[String]) -> Result<()> {
        for name in self.classes.keys() {
            if !model_classes.iter().any(|c| c == name) {
                bail!(
                    "key decide.classes.{name}: the model has no class {name:?}; fix: use one of {}",
                    model_classes.iter().skip(1).map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(())
    }
}

/// The decision logic, built once from the config.
#[derive(Clone, Debug)]
pub struct Decider {
    config: DecideConfig,
    /// The model's class names, by id.
    names: Vec<Arc<str>>,
}

impl Decider {
    pub fn new(config: DecideConfig, model_classes: &[String]) -> Decider {
        Decider { config, names: model_classes.iter().map(|c| Arc::from(c.as_str())).collect() }
    }

    fn rule(&self, class: &str) -> (f32, u64, bool) {
        let r = self.config.classes.get(class);
        (
            r.and_then(|r| r.min_score).unwrap_or(self.config.min_score),
            r.and_then(|r| r.min_area).unwrap_or(self.config.min_area),
            r.map(|r| r.ignore).unwrap_or(false),
        )
    }

    /// Judge one frame. `findings` is cleared and refilled (its capacity is reused).
    pub fn judge(&self, regions: &[ClassRegion], findings: &mut Vec<Finding>) -> Verdict {
        findings.clear();
        for region in regions {
            let (min_score, min_area, ignore) = self.rule(&region.name);
            if ignore || region.score < min_score {
                continue;
            }
            for part in region.components.iter().filter(|c| c.area >= min_area) {
                let cx = part.bbox.x as f32 + part.bbox.w as f32 / 2.0;
                let cy = part.bbox.y as f32 + part.bbox.h as f32 / 2.0;
                if !self.inside_roi(cx, cy) {
                    continue;
                }
                // Shared name: cloning the Arc allocates nothing per finding.
                let class = self.names.get(region.id as usize).cloned().unwrap_or_else(|| Arc::from(region.name.as_str()));
                findings.push(Finding { class_id: region.id, class, score: region.score, area: part.area, bbox: part.bbox });
            }
        }
        if findings.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// Judge an instance model's frame: each instance is one candidate defect.
    pub fn judge_instances(&self, instances: &[crate::model::instance::Instance], findings: &mut Vec<Finding>) -> Verdict {
        findings.clear();
        for inst in instances {
            let (min_score, min_area, ignore) = self.rule(&inst.class);
            let [x, y, w, h] = inst.bbox;
            if ignore || inst.score < min_score || inst.area < min_area || !self.inside_roi(x + w / 2.0, y + h / 2.0) {
                continue;
            }
            let class = self.names.get(inst.class_id as usize).cloned().unwrap_or_else(|| Arc::from(inst.class.as_str()));
            let bbox = crate::mask::BBox { x: x.max(0.0) as u32, y: y.max(0.0) as u32, w: w.ceil().max(0.0) as u32, h: h.ceil().max(0.0) as u32 };
            findings.push(Finding { class_id: inst.class_id.min(255) as u8, class, score: inst.score, area: inst.area, bbox });
        }
        if findings.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// Even-odd point-in-polygon; an empty ROI is the whole frame.
    pub fn inside_roi(&self, x: f32, y: f32) -> bool {
        let poly = &self.config.roi;
        if poly.is_empty() {
            return true;
        }
        let mut inside = false;
        let mut j = poly.len() - 1;
        for i in 0..poly.len() {
            let ([xi, yi], [xj, yj]) = (poly[i], poly[j]);
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{BBox, CocoRle, Component};

    fn region(id: u8, name: &str, score: f32, parts: &[(u64, [u32; 4])]) -> ClassRegion {
        let components: Vec<Component> =
            parts.iter().map(|&(area, [x, y, w, h])| Component { class_id: id, area, bbox: BBox { x, y, w, h } }).collect();
        ClassRegion {
            id,
            name: name.into(),
            area: parts.iter().map(|p| p.0).sum(),
            bbox: BBox { x: 0, y: 0, w: 0, h: 0 },
            score,
            components,
            rle: CocoRle { size: [0, 0], counts: String::new() },
        }
    }

    fn classes() -> Vec<String> {
        ["background", "scratch", "spot", "crack", "pit"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn minimum_area_and_score_per_class() {
        let mut c = DecideConfig { min_area: 20, ..DecideConfig::default() };
        c.classes.insert("pit".into(), ClassRule { min_area: Some(5), ..ClassRule::default() });
        c.classes.insert("spot".into(), ClassRule { ignore: true, ..ClassRule::default() });
        c.classes.insert("crack".into(), ClassRule { min_score: Some(0.9), ..ClassRule::default() });
        let d = Decider::new(c, &classes());
        let mut f = Vec::new();
        // A 10 px scratch is below 20 px; a 6 px pit reaches its own 5 px.
        let regions = [region(1, "scratch", 0.9, &[(10, [0, 0, 5, 2])]), region(4, "pit", 0.8, &[(6, [50, 50, 3, 2])])];
        assert_eq!(d.judge(&regions, &mut f), Verdict::Fail);
        assert_eq!(f.len(), 1);
        assert_eq!((&*f[0].class, f[0].area), ("pit", 6));
        // Ignored class and a crack below its own score: pass.
        let regions = [region(2, "spot", 1.0, &[(500, [0, 0, 30, 30])]), region(3, "crack", 0.85, &[(300, [0, 0, 3, 100])])];
        assert_eq!(d.judge(&regions, &mut f), Verdict::Pass);
        assert!(f.is_empty());
    }

    #[test]
    fn roi_counts_defects_by_box_centre() {
        let c = DecideConfig { roi: vec![[10.0, 10.0], [100.0, 10.0], [100.0, 100.0], [10.0, 100.0]], ..DecideConfig::default() };
        let d = Decider::new(c, &classes());
        assert!(d.inside_roi(50.0, 50.0));
        assert!(!d.inside_roi(5.0, 50.0));
        assert!(!d.inside_roi(150.0, 150.0));
        let mut f = Vec::new();
        let outside = [region(1, "scratch", 0.9, &[(100, [120, 120, 10, 10])])];
        assert_eq!(d.judge(&outside, &mut f), Verdict::Pass);
        let inside = [region(1, "scratch", 0.9, &[(100, [120, 120, 10, 10]), (100, [40, 40, 10, 10])])];
        assert_eq!(d.judge(&inside, &mut f), Verdict::Fail);
        assert_eq!(f[0].bbox, BBox { x: 40, y: 40, w: 10, h: 10 });
    }

    #[test]
    fn config_checks_name_keys() {
        let bad_roi = DecideConfig { roi: vec![[0.0, 0.0], [1.0, 1.0]], ..DecideConfig::default() };
        assert!(bad_roi.check().unwrap_err().to_string().contains("decide.roi"));
        let mut typo = DecideConfig::default();
        typo.classes.insert("scrach".into(), ClassRule::default());
        let e = typo.check_classes(&classes()).unwrap_err().to_string();
        assert!(e.contains("decide.classes.scrach") && e.contains("\"scratch\""), "{e}");
    }
}

//! Connected components of a class-index map (8-connectivity).
//!
//! Each defect class region splits into separate parts (one scratch, another
//! scratch...). Labelled with an explicit stack, so a large region cannot
//! overflow the call stack.

use super::BBox;
use serde::Serialize;

/// One connected region of a single class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Component {
    pub class_id: u8,
    pub area: u64,
    pub bbox: BBox,
}

/// Components of every non-background class, in raster order of their first pixel.
/// `labels` is scratch space of `width*height` entries, reused across calls.
pub fn label_components(classes: &[u8], width: usize, height: usize, labels: &mut Vec<u32>) -> Vec<Component> {
    let mut out = Vec::new();
    label_components_into(classes, width, height, labels, &mut Vec::new(), &mut out);
    out
}

/// `label_components` with every buffer supplied (and reused) by the caller.
pub fn label_components_into(
    classes: &[u8],
    width: usize,
    height: usize,
    labels: &mut Vec<u32>,
    stack: &mut Vec<usize>,
    out: &mut Vec<Component>,
) {
    labels.clear();
    labels.resize(width * height, 0);
    out.clear();
    stack.clear();
    for start in 0..classes.len() {
        let class_id = classes[start];
        if class_id == 0 || labels[start] != 0 {
            continue;
        }
        let label = out.len() as u32 + 1;
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
        let mut area = 0u64;
        labels[start] = label;
        stack.push(start);
        while let Some(idx) = stack.pop() {
            let (x, y) = (idx % width, idx / width);
            area += 1;
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= width as i64 || ny >= height as i64 {
                        continue;
                    }
                    let n = ny as usize * width + nx as usize;
                    if labels[n] == 0 && classes[n] == class_id {
                        labels[n] = label;
                        stack.push(n);
                    }
                }
            }
        }
        out.push(Component {
            class_id,
            area,
            bbox: BBox { x: x0 as u32, y: y0 as u32, w: (x1 - x0 + 1) as u32, h: (y1 - y0 + 1) as u32 },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_pixels_join_and_classes_separate() {
        #[rustfmt::skip]
        let map = [
            1, 0, 0, 2,
            0, 1, 0, 2,
            0, 0, 0, 0,
            3, 3, 0, 1,
        ];
        let mut labels = Vec::new();
        let comps = label_components(&map, 4, 4, &mut labels);
        assert_eq!(comps.len(), 4);
        assert_eq!(comps[0], Component { class_id: 1, area: 2, bbox: BBox { x: 0, y: 0, w: 2, h: 2 } });
        assert_eq!(comps[1], Component { class_id: 2, area: 2, bbox: BBox { x: 3, y: 0, w: 1, h: 2 } });
        assert_eq!(comps[2].class_id, 3);
        assert_eq!(comps[3], Component { class_id: 1, area: 1, bbox: BBox { x: 3, y: 3, w: 1, h: 1 } });
    }
}

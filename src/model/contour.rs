//! Outer contour of a binary mask (Moore-neighbour tracing), with straight
//! runs collapsed to their end points as OpenCV's CHAIN_APPROX_SIMPLE does.

/// The 8 neighbours, clockwise from west.
const DIRS: [(i32, i32); 8] = [(-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1)];

/// Contour of the region holding the first foreground pixel in raster order.
pub fn outer_contour(mask: &[u8], w: usize, h: usize) -> Vec<[u32; 2]> {
    let Some(start) = mask.iter().position(|&v| v != 0) else { return Vec::new() };
    let (sx, sy) = ((start % w) as i32, (start / w) as i32);
    let fg = |x: i32, y: i32| x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h && mask[y as usize * w + x as usize] != 0;
    let mut points: Vec<[u32; 2]> = vec![[sx as u32, sy as u32]];
    // We entered the start pixel from the west (raster scan), so search from there.
    let (mut x, mut y, mut dir) = (sx, sy, 0usize);
    let limit = 4 * w * h + 8;
    for _ in 0..limit {
        let mut moved = false;
        for k in 0..8 {
            let d = (dir + k) % 8;
            let (nx, ny) = (x + DIRS[d].0, y + DIRS[d].1);
            if fg(nx, ny) {
                (x, y) = (nx, ny);
                // Next search starts at the neighbour after the backtrack direction.
                dir = (d + 6) % 8;
                moved = true;
                break;
            }
        }
        if !moved || (x, y) == (sx, sy) {
            break;
        }
        points.push([x as u32, y as u32]);
    }
    simplify(points)
}

/// Drop points in the middle of straight horizontal/vertical/diagonal runs.
fn simplify(points: Vec<[u32; 2]>) -> Vec<[u32; 2]> {
    if points.len() < 3 {
        return points;
    }
    let n = points.len();
    let step = |a: [u32; 2], b: [u32; 2]| (b[0] as i64 - a[0] as i64, b[1] as i64 - a[1] as i64);
    (0..n)
        .filter(|&i| step(points[(i + n - 1) % n], points[i]) != step(points[i], points[(i + 1) % n]))
        .map(|i| points[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_gives_its_four_corners() {
        let (w, h) = (6, 5);
        let mut m = vec![0u8; w * h];
        for y in 1..4 {
            for x in 2..5 {
                m[y * w + x] = 1;
            }
        }
        assert_eq!(outer_contour(&m, w, h), vec![[2, 1], [4, 1], [4, 3], [2, 3]]);
    }

    #[test]
    fn single_pixel_and_empty() {
        let mut m = vec![0u8; 9];
        assert!(outer_contour(&m, 3, 3).is_empty());
        m[4] = 1;
        assert_eq!(outer_contour(&m, 3, 3), vec![[1, 1]]);
    }
}

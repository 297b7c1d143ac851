"""Outer contour of a binary mask as a polygon (for YOLO-seg labels).

Dependency-free replacement for ``cv2.findContours(RETR_EXTERNAL,
CHAIN_APPROX_SIMPLE)``: Moore-neighbour tracing of the largest 8-connected
component, vertices at pixel centres, collinear runs collapsed.  Pixel-centre
vertices are the convention YOLO tooling rasterises back with
``cv2.fillPoly`` / ``ImageDraw.polygon`` (both fill boundary pixels), so the
round trip reproduces the component up to its holes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Clockwise on screen (y down), starting north: (dy, dx).
_DIRS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
_DIR_INDEX = {d: i for i, d in enumerate(_DIRS)}
# After moving in direction i, the last background pixel examined was the
# neighbour (i - 1) of the previous pixel; seen from the new pixel it lies at:
_BACKTRACK = tuple(
    _DIR_INDEX[(_DIRS[(i - 1) % 8][0] - _DIRS[i][0], _DIRS[(i - 1) % 8][1] - _DIRS[i][1])]
    for i in range(8)
)
_EIGHT = np.ones((3, 3), bool)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The biggest 8-connected component of ``mask`` (ties: lowest label)."""
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def trace_outer(component: np.ndarray) -> list[tuple[int, int]]:
    """Moore-neighbour trace of one 8-connected component -> [(x, y), ...].

    Works on a cropped, zero-padded copy converted to Python lists, because
    the walk is inherently sequential and list indexing is much faster than
    numpy scalar indexing.
    """
    ys, xs = np.nonzero(component)
    y0, x0 = int(ys.min()) - 1, int(xs.min()) - 1
    crop = np.pad(component[ys.min():ys.max() + 1, xs.min():xs.max() + 1], 1)
    grid = crop.tolist()
    # Raster-first pixel: its west neighbour is background, so start the
    # clockwise search from west.
    start = (int(ys[0] - y0), int(xs[0] - x0))
    p, back = start, 6
    first_move = None
    out = [start]
    for _ in range(4 * crop.size + 8):  # hard cap; the loop closes far earlier
        for k in range(1, 9):
            d = (back + k) % 8
            q = (p[0] + _DIRS[d][0], p[1] + _DIRS[d][1])
            if grid[q[0]][q[1]]:
                break
        else:
            break  # isolated pixel
        if first_move is None:
            first_move = d
        elif p == start and d == first_move:
            break  # Jacob's criterion: same exit from the start pixel again
        out.append(q)
        p, back = q, _BACKTRACK[d]
    if len(out) > 1 and out[-1] == start:
        out.pop()
    return [(x + x0, y + y0) for y, x in out]


def collapse_collinear(pts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop vertices where the chain keeps its direction (lossless)."""
    if len(pts) < 3:
        return pts
    a = np.asarray(pts)
    prev_d = a - np.roll(a, 1, axis=0)
    next_d = np.roll(a, -1, axis=0) - a
    keep = np.any(prev_d != next_d, axis=1)
    kept = [pts[i] for i in np.nonzero(keep)[0]]
    return kept or pts[:1]


def mask_polygon(mask: np.ndarray) -> list[tuple[int, int]]:
    """Polygon (>= 3 vertices, pixel coords) of the mask's largest component."""
    pts = collapse_collinear(trace_outer(largest_component(mask)))
    # A 1-2 pixel component traces to 1-2 vertices; repeat the last one so
    # the label still has the 3 points YOLO requires (zero-area polygon).
    return pts + [pts[-1]] * (3 - len(pts))

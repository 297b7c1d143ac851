"""Defect instances: geometry (anti-aliased coverage) and painting.

Every defect is drawn in two steps so the label is the painted geometry:

1. ``geometry``: an anti-aliased coverage ``alpha`` in [0, 1] (PIL drawing at
   2x resolution, or an analytic disc for pits).  The instance mask is
   ``alpha >= 0.5``.
2. ``paint``: the surface is blended towards a defect colour with weight
   ``alpha``.  The colour is chosen relative to the *local* surface around the
   defect so that the mean gray-level contrast inside the mask is >= ~50
   before photometric effects (blur / noise / gain then leave >= ~30).

Class ids (mask values): 1 scratch, 2 spot, 3 crack, 4 pit; 0 is background.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .noise import LUMA, smooth_noise, supersampled_alpha

CLASS_NAMES = ("scratch", "spot", "crack", "pit")  # mask value = index + 1
MIN_VISIBLE_PX = 10  # instances hidden below this are dropped (and unlabelled)
P_CLEAN = 0.2  # share of defect-free images
MAX_DEFECTS = 3


@dataclass
class Shape:
    alpha: np.ndarray  # float32 (H, W) coverage in [0, 1]
    extra: dict = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return self.alpha >= 0.5


# --------------------------------------------------------------- geometry


def _draw_2x(size: int, draw_fn) -> np.ndarray:
    """Run ``draw_fn(ImageDraw)`` on a 2x canvas and return 1x coverage."""
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    draw_fn(ImageDraw.Draw(canvas))
    return supersampled_alpha(np.asarray(canvas))


def _stroke(draw: ImageDraw.ImageDraw, pts: np.ndarray, widths: np.ndarray) -> None:
    """Polyline with per-segment width (2x coords); round joints hide gaps."""
    for (p, q), w in zip(zip(pts[:-1], pts[1:]), widths):
        w2 = max(int(round(2 * w)), 1)
        draw.line([tuple(p * 2), tuple(q * 2)], fill=255, width=w2)
        r = w2 / 2.0
        x, y = q * 2
        draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    x, y = pts[0] * 2
    r = max(int(round(2 * widths[0])), 1) / 2.0
    draw.ellipse([x - r, y - r, x + r, y + r], fill=255)


def scratch_geometry(rng: np.random.Generator, size: int) -> Shape:
    """Thin straight line or gentle quadratic-Bezier curve."""
    length = rng.uniform(40, 200)
    width = rng.uniform(3.0, 5.0)
    angle = rng.uniform(0, np.pi)
    centre = rng.uniform(0.12, 0.88, size=2) * size
    d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    normal = np.array([-d[1], d[0]]) / (length / 2)
    p0, p2 = centre - d, centre + d
    p1 = centre + normal * rng.uniform(-0.2, 0.2) * length
    t = np.linspace(0, 1, 24)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
    widths = np.full(len(pts) - 1, width)
    return Shape(_draw_2x(size, lambda dr: _stroke(dr, pts, widths)))


def _random_walk(rng: np.random.Generator, start, heading: float,
                 length: float, step: float) -> np.ndarray:
    """Jagged path: heading deviates as a mean-reverting random walk."""
    n = max(int(length / step), 2)
    dev = np.zeros(n)
    for i in range(1, n):  # n <= ~50, cheap
        dev[i] = 0.55 * dev[i - 1] + rng.normal(0, 0.5)
    steps = step * np.stack([np.cos(heading + dev), np.sin(heading + dev)], axis=1)
    return np.vstack([start, start + np.cumsum(steps, axis=0)])


def crack_geometry(rng: np.random.Generator, size: int) -> Shape:
    """Jagged tapering line, optionally with one side branch."""
    length = rng.uniform(40, 160)
    width = rng.uniform(3.0, 5.0)
    heading = rng.uniform(0, 2 * np.pi)
    start = rng.uniform(0.2, 0.8, size=2) * size - 0.3 * length * np.array(
        [np.cos(heading), np.sin(heading)])
    main = _random_walk(rng, start, heading, length, rng.uniform(3.0, 6.0))
    # Cracks open widest at their origin and thin out towards the tip.
    main_w = np.maximum(np.linspace(width, 0.7 * width, len(main) - 1), 2.5)
    branch = None
    if rng.random() < 0.5:
        k = rng.integers(len(main) // 3, max(2 * len(main) // 3, len(main) // 3 + 1))
        turn = rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)
        branch = _random_walk(rng, main[k], heading + turn,
                              rng.uniform(0.3, 0.6) * length, rng.uniform(3.0, 6.0))
        branch_w = np.maximum(np.linspace(main_w[min(k, len(main_w) - 1)] * 0.8,
                                          0.5 * width, len(branch) - 1), 2.0)

    def draw(dr):
        _stroke(dr, main, main_w)
        if branch is not None:
            _stroke(dr, branch, branch_w)

    return Shape(_draw_2x(size, draw))


def spot_geometry(rng: np.random.Generator, size: int) -> Shape:
    """Irregular filled ellipse: radius perturbed by low harmonics."""
    radius = rng.uniform(8, 24)
    aspect = rng.uniform(0.6, 1.0)
    rot = rng.uniform(0, np.pi)
    centre = rng.uniform(radius, size - radius, size=2)
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):  # low frequencies only: a blob, not a star
        r += rng.uniform(0, 0.14) / (k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    x = radius * r * np.cos(theta)
    y = radius * aspect * r * np.sin(theta)
    xs = centre[0] + x * np.cos(rot) - y * np.sin(rot)
    ys = centre[1] + x * np.sin(rot) + y * np.cos(rot)
    poly = [(2 * a, 2 * b) for a, b in zip(xs, ys)]
    return Shape(_draw_2x(size, lambda dr: dr.polygon(poly, fill=255)))


def pit_geometry(rng: np.random.Generator, size: int) -> Shape:
    """Small disc; analytic anti-aliasing so mask == (distance <= radius)."""
    radius = rng.uniform(3.0, 8.0)
    cx, cy = rng.uniform(radius + 2, size - radius - 2, size=2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.hypot(x - cx, y - cy)
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)
    return Shape(alpha, {"dist": dist, "radius": radius})


# --------------------------------------------------------------- painting


def _surround_rgb(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean colour of a 2..6 px ring around the mask (the local surface)."""
    outer = ndimage.binary_dilation(mask, iterations=6)
    inner = ndimage.binary_dilation(mask, iterations=2)
    ring = outer & ~inner
    if ring.sum() < 8:
        ring = ~mask
    return img[ring].mean(axis=0)


def _shift(rng: np.random.Generator, lum: float, sign: int,
           lo: float, hi: float, keep: float) -> float:
    """Gray shift giving mean contrast in [lo, hi] after keeping ``keep`` of
    the texture.  If the requested polarity would clip, the shift is first
    shortened to what fits (still >= ``lo``); only if even that fails is the
    polarity flipped, so dark defects stay dark wherever possible."""
    need = rng.uniform(lo, hi) / (1.0 - keep)
    room = lum if sign < 0 else 255.0 - lum
    if room >= need:
        return sign * need
    if room >= lo / (1.0 - keep):
        return sign * room
    return -sign * min(need, 255.0 - room)


def _blend(img: np.ndarray, alpha: np.ndarray, target: np.ndarray, keep) -> None:
    """img <- img*(1-a) + (keep*img + (1-keep)*target)*a, in place."""
    keep = np.asarray(keep, np.float32)
    if keep.ndim == 2:
        keep = keep[..., None]
    new = keep * img + (1.0 - keep) * target
    a = alpha[..., None]
    img *= 1.0 - a
    img += a * new


def _target(local: np.ndarray, shift) -> np.ndarray:
    """Local surface colour moved by a gray shift (scalar or per pixel)."""
    shift = np.asarray(shift, np.float32)
    if shift.ndim == 2:
        shift = shift[..., None]
    return np.clip(local + shift, 0, 255)


def paint_scratch(rng, img, shape: Shape) -> None:
    """Specular groove: brighter than the surface, slight intensity variation.

    Scratches expose bare metal / scuffed coating that reflects the line light,
    so they are bright (dark only where the surface leaves no headroom); cracks
    are dark fissures. Keeping the polarities apart is what makes the two thin
    classes separable on a gray image, as on a real inspection line.
    Bright scratches are desaturated, which also keeps them apart from e.g.
    light-green PCB traces.
    """
    local = _surround_rgb(img, shape.mask)
    lum = float(local @ LUMA)
    keep = rng.uniform(0.1, 0.3)
    rng.random()  # formerly the polarity draw; kept so later draws stay the same
    shift = _shift(rng, lum, 1, 55, 95, keep)
    if shift > 0:
        local = 0.4 * local + 0.6 * lum  # same luminance, less colour
    vary = 1.0 + 0.15 * np.clip(smooth_noise(rng, img.shape[0], 12), -1.5, 1.5)
    _blend(img, shape.alpha, _target(local, shift * vary), keep)


def paint_crack(rng, img, shape: Shape) -> None:
    """Dark, near-opaque fissure."""
    local = _surround_rgb(img, shape.mask)
    keep = rng.uniform(0.05, 0.2)
    shift = _shift(rng, float(local @ LUMA), -1, 60, 100, keep)
    _blend(img, shape.alpha, _target(local, shift), keep)


def paint_spot(rng, img, shape: Shape) -> None:
    """Stain: darker (or lighter) with a hue shift and mottled interior."""
    local = _surround_rgb(img, shape.mask)
    keep = rng.uniform(0.15, 0.35)
    sign = -1 if rng.random() < 0.75 else 1
    shift = _shift(rng, float(local @ LUMA), sign, 50, 85, keep)
    tints = ([1.25, 0.95, 0.6], [0.85, 0.95, 1.2], [1.0, 1.0, 1.0], [1.1, 1.05, 0.7])
    tint = np.array(tints[rng.integers(0, len(tints))], np.float32)
    tint /= tint @ LUMA  # hue change only; luminance set by the shift
    mottle = 1.0 + 0.15 * np.clip(smooth_noise(rng, img.shape[0], 6), -1.3, 1.3)
    target = np.clip(_target(local, shift * mottle) * tint, 0, 255)
    _blend(img, shape.alpha, target, keep)


def paint_pit(rng, img, shape: Shape) -> None:
    """Dark hole with a bright rim just inside the mask boundary."""
    local = _surround_rgb(img, shape.mask)
    lum = float(local @ LUMA)
    keep = rng.uniform(0.05, 0.15)
    dark = -min(rng.uniform(80, 120) / (1 - keep), lum)
    bright = min(rng.uniform(25, 50) / (1 - keep), 255 - lum)
    rel = shape.extra["dist"] / shape.extra["radius"]
    # Smooth step from the dark centre (rel < 0.6) to a thin rim (rel > 0.8);
    # the dark part dominates so the pit survives blur as a dark dot.
    t = np.clip((rel - 0.6) / 0.2, 0.0, 1.0)
    shift = dark * (1 - t) + bright * t
    _blend(img, shape.alpha, _target(local, shift), keep)


GEOMETRY = {1: scratch_geometry, 2: spot_geometry, 3: crack_geometry, 4: pit_geometry}
PAINTERS = {1: paint_scratch, 2: paint_spot, 3: paint_crack, 4: paint_pit}


# --------------------------------------------------------------- placement


def _place(rng: np.random.Generator, cls: int, size: int, occupied: np.ndarray) -> Shape:
    """Sample a geometry, retrying a few times to avoid heavy overlap.

    Overlap is still allowed (later defects overwrite earlier ones), it is
    just made uncommon so most instances stay whole.
    """
    shape = GEOMETRY[cls](rng, size)
    for _ in range(5):
        m = shape.mask
        area = int(m.sum())
        if area >= 2 * MIN_VISIBLE_PX and (m & occupied).sum() <= 0.05 * area:
            break
        shape = GEOMETRY[cls](rng, size)
    return shape


def add_defects(rng: np.random.Generator, img: np.ndarray):
    """Paint 0..3 defects into ``img`` (float RGB, in place).

    Returns ``(class_mask uint8, instances)`` where instances is a list of
    ``(cls, visible_mask)``; the class mask is built only from kept
    instances, so its per-class pixel counts equal the instances' sums.
    """
    size = img.shape[0]
    n = 0 if rng.random() < P_CLEAN else int(rng.integers(1, MAX_DEFECTS + 1))
    inst_map = np.zeros((size, size), np.int16)
    classes = []
    for i in range(1, n + 1):
        cls = int(rng.integers(1, len(CLASS_NAMES) + 1))  # uniform: balanced counts
        shape = _place(rng, cls, size, inst_map > 0)
        PAINTERS[cls](rng, img, shape)
        inst_map[shape.mask] = i
        classes.append(cls)
    class_mask = np.zeros((size, size), np.uint8)
    instances = []
    for i, cls in enumerate(classes, start=1):
        visible = inst_map == i
        if visible.sum() < MIN_VISIBLE_PX:
            continue
        class_mask[visible] = cls
        instances.append((cls, visible))
    return class_mask, instances

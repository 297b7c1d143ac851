"""Defect-free surface textures, one function per family.

Each family returns a float32 RGB image (H, W, 3) in gray-level units
(0..255, not yet clipped).  Gray families are built as a luminance field and
then multiplied by a mild per-channel tint, so the data set is RGB while a
gray conversion keeps all structure.  Mean luminance is kept roughly within
80..190 so that both darker and brighter defects can reach a clear contrast.

The textures deliberately avoid small isolated blobs, holes or thin dark
lines: those would look like the defect classes and teach label noise.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .noise import (fbm, fine_grain, rotated_coords, smooth_noise,
                    streak_noise, supersampled_alpha)

FAMILIES = ("brushed_metal", "woven_fabric", "wood_grain", "cast_surface", "pcb")


def _tint(gray: np.ndarray, tint) -> np.ndarray:
    return gray[..., None] * np.asarray(tint, np.float32)[None, None, :]


def _near_gray_tint(rng: np.random.Generator, spread: float) -> np.ndarray:
    return 1.0 + rng.uniform(-spread, spread, size=3).astype(np.float32)


def brushed_metal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Very fine, long parallel streaks along a random angle + specular band."""
    angle = rng.uniform(0, np.pi)
    base = rng.uniform(95, 175)
    fine = streak_noise(rng, size, angle, across=rng.uniform(0.35, 0.6),
                        stretch=rng.uniform(60, 160))
    medium = streak_noise(rng, size, angle, across=rng.uniform(1.0, 2.0),
                          stretch=rng.uniform(40, 100))
    uneven = smooth_noise(rng, size, rng.uniform(60, 140))
    gray = (base + rng.uniform(5, 10) * fine + rng.uniform(2, 5) * medium
            + rng.uniform(2, 6) * uneven)
    # Anisotropic reflection stretches highlights perpendicular to the
    # grooves, i.e. the band varies along the brushing direction u.
    u, _ = rotated_coords(size, angle)
    centre = rng.uniform(-0.4, 0.4) * size
    width = rng.uniform(0.08, 0.25) * size
    band = np.exp(-0.5 * ((u - centre) / width) ** 2)
    gray = gray * (1.0 + rng.uniform(0.0, 0.22) * band)
    tint = np.array([0.97, 1.0, 1.04], np.float32) * _near_gray_tint(rng, 0.03)
    return _tint(gray, tint)


def woven_fabric(rng: np.random.Generator, size: int) -> np.ndarray:
    """Plain weave: warp and weft threads alternating over/under."""
    period = rng.uniform(6, 13)
    angle = rng.uniform(-0.35, 0.35) + rng.integers(0, 2) * np.pi / 2
    u, v = rotated_coords(size, angle)
    # Slight thread wander so the weave is not a perfect synthetic grid.
    jitter = 0.08 * period
    u = u + jitter * smooth_noise(rng, size, 40)
    v = v + jitter * smooth_noise(rng, size, 40)
    fu, fv = u / period, v / period
    prof_u = np.sin(np.pi * (fu - np.floor(fu))) ** 0.6
    prof_v = np.sin(np.pi * (fv - np.floor(fv))) ** 0.6
    warp_on_top = (np.floor(fu) + np.floor(fv)) % 2 == 0
    warp = prof_u * (0.65 + 0.35 * prof_v)
    weft = prof_v * (0.65 + 0.35 * prof_u)
    weave = np.where(warp_on_top, warp, weft)
    base = rng.uniform(100, 175)
    # Short fibre streaks in both thread directions.
    fibre = 0.5 * (streak_noise(rng, size, angle, across=0.5, stretch=5)
                   + streak_noise(rng, size, angle + np.pi / 2, across=0.5, stretch=5))
    gray = base * (1.0 - rng.uniform(0.18, 0.32) * (1.0 - weave))
    gray += rng.uniform(2, 5) * fibre + rng.uniform(2, 5) * smooth_noise(rng, size, 80)
    tints = ([1.06, 0.99, 0.86], [0.88, 0.95, 1.08], [1.0, 1.0, 1.0])
    tint = np.array(tints[rng.integers(0, 3)], np.float32) * _near_gray_tint(rng, 0.02)
    return _tint(gray, tint)


def wood_grain(rng: np.random.Generator, size: int) -> np.ndarray:
    """Growth rings from a gently warped sinusoid, plus fibre streaks.

    The warp is very smooth (single octave, >= 120 px cells) so rings stay
    long and roughly parallel like sawn boards, instead of rippling.
    """
    angle = rng.uniform(-0.15, 0.15) + rng.integers(0, 2) * np.pi / 2
    u, v = rotated_coords(size, angle)
    period = rng.uniform(10, 26)
    warp = rng.uniform(0.3, 1.2) * period * smooth_noise(rng, size, rng.uniform(150, 300))
    # Cathedral-like slow bend of the rings along the board.
    bend = rng.uniform(0, 1.0) * period * np.sin(
        u / size * rng.uniform(1.0, 3.0) + rng.uniform(0, 2 * np.pi))
    # Ring spacing varies a little from year to year.
    wobble = 0.08 * period * smooth_noise(rng, size, 3 * period)
    phase = 2 * np.pi * (v + warp + bend + wobble) / period
    late = (0.5 + 0.5 * np.sin(phase)) ** rng.uniform(3.0, 6.0)  # dark latewood
    fibre = streak_noise(rng, size, angle, across=0.5, stretch=rng.uniform(30, 80))
    base = rng.uniform(120, 185)
    gray = base * (1.0 - rng.uniform(0.18, 0.32) * late)
    gray += rng.uniform(4, 9) * fibre + rng.uniform(2, 5) * smooth_noise(rng, size, 90)
    early_tint = np.array([1.12, 0.95, 0.72], np.float32) * _near_gray_tint(rng, 0.025)
    late_tint = early_tint * np.array([1.06, 0.94, 0.85], np.float32)
    tint = early_tint + (late_tint - early_tint) * late[..., None]
    return gray[..., None] * tint


def cast_surface(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sand-cast / shot-blasted metal: smooth fbm relief + fine grain."""
    base = rng.uniform(90, 170)
    relief = fbm(rng, size, rng.uniform(40, 110), octaves=4, persistence=0.45)
    grain = fine_grain(rng, size, rng.uniform(0.5, 1.0))
    gray = base + rng.uniform(5, 11) * relief + rng.uniform(4, 9) * grain
    tint = _near_gray_tint(rng, 0.03)
    return _tint(gray, tint)


def _pcb_route(rng: np.random.Generator, size2: int) -> list[tuple[float, float]]:
    """A trace path of 1-4 segments restricted to 45-degree directions."""
    pts = [tuple(rng.uniform(-0.1, 1.1, size=2) * size2)]
    heading = rng.integers(0, 8)
    for _ in range(rng.integers(1, 5)):
        heading = (heading + rng.choice([-1, 0, 0, 1])) % 8
        length = rng.uniform(0.1, 0.6) * size2
        ang = heading * np.pi / 4
        x, y = pts[-1]
        pts.append((x + length * np.cos(ang), y + length * np.sin(ang)))
    return pts


def _pcb_layers(rng: np.random.Generator, size: int):
    """Draw traces, pads and silkscreen at 2x, return anti-aliased alphas."""
    s2 = 2 * size
    traces = Image.new("L", (s2, s2), 0)
    pads = Image.new("L", (s2, s2), 0)
    silk = Image.new("L", (s2, s2), 0)
    dt, dp, ds = ImageDraw.Draw(traces), ImageDraw.Draw(pads), ImageDraw.Draw(silk)
    for _ in range(rng.integers(5, 14)):
        pts = _pcb_route(rng, s2)
        dt.line(pts, fill=255, width=int(rng.integers(4, 13)), joint="curve")
        if rng.random() < 0.6:  # a pad at the trace end, like a real net
            x, y = pts[-1]
            r = rng.uniform(7, 16)
            dp.rectangle([x - r, y - r, x + r, y + r], fill=255)
    for _ in range(rng.integers(2, 9)):
        x, y = rng.uniform(0, s2, size=2)
        w, h = rng.uniform(10, 34, size=2)
        if rng.random() < 0.5:
            dp.rectangle([x, y, x + w, y + h], fill=255)
        else:  # round pad, radius >= 9 px (at 1x) so it is never pit-sized
            dp.ellipse([x, y, x + w + 26, y + w + 26], fill=255)
    for _ in range(rng.integers(0, 4)):
        x, y = rng.uniform(0, s2, size=2)
        w, h = rng.uniform(40, 180, size=2)
        ds.rectangle([x, y, x + w, y + h], outline=255, width=3)
    return tuple(supersampled_alpha(np.asarray(im)) for im in (traces, pads, silk))


def pcb(rng: np.random.Generator, size: int) -> np.ndarray:
    """Green solder-mask substrate, covered traces, bare pads, silkscreen."""
    substrate = np.array([rng.uniform(45, 75), rng.uniform(105, 145),
                          rng.uniform(55, 85)], np.float32)
    shade = 1.0 + 0.05 * smooth_noise(rng, size, rng.uniform(50, 120))
    # Faint fibreglass weave showing through the solder mask.
    x, y = rotated_coords(size, 0.0)
    glass = 0.03 * np.sin(2 * np.pi * x / 5.0) * np.sin(2 * np.pi * y / 5.0)
    img = substrate[None, None, :] * (shade + glass)[..., None]
    img += 3.0 * fine_grain(rng, size)[..., None]
    a_trace, a_pad, a_silk = _pcb_layers(rng, size)
    # Copper under solder mask reads as a lighter green.
    trace_col = substrate * rng.uniform(1.3, 1.5) + 10
    pad_cols = ([205, 170, 80], [195, 195, 188], [190, 120, 75])
    pad_col = np.array(pad_cols[rng.integers(0, 3)], np.float32) * rng.uniform(0.9, 1.05)
    silk_col = np.array([232, 232, 222], np.float32)
    for alpha, col in ((a_trace, trace_col), (a_pad, pad_col), (a_silk, silk_col)):
        a = alpha[..., None]
        img = img * (1 - a) + col[None, None, :] * a
    return img.astype(np.float32)


GENERATORS = {
    "brushed_metal": brushed_metal,
    "woven_fabric": woven_fabric,
    "wood_grain": wood_grain,
    "cast_surface": cast_surface,
    "pcb": pcb,
}


def make_texture(rng: np.random.Generator, size: int) -> tuple[str, np.ndarray]:
    """Pick a family uniformly and render it; returns (family, rgb float32)."""
    family = FAMILIES[rng.integers(0, len(FAMILIES))]
    return family, GENERATORS[family](rng, size).astype(np.float32)

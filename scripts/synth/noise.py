"""Noise fields and coordinate helpers shared by textures and defects.

Everything here is vectorised numpy/scipy and takes an explicit
``np.random.Generator`` so that callers stay deterministic.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Rec. 601 luma weights; the same weights PIL uses for RGB -> 'L', so "gray
# level" contrast measured here matches what a gray-converting model sees.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def normalise(field: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (flat fields stay zero)."""
    field = field - field.mean()
    std = field.std()
    return field / std if std > 1e-8 else field


def _bspline_matrix(size: int, cell: float, offset: float, n: int) -> np.ndarray:
    """(size, n) matrix evaluating a cubic B-spline over n control points at
    positions ``offset + i / cell``; used as separable upsampling."""
    t = offset + np.arange(size) / cell
    i0 = np.floor(t).astype(int)
    f = t - i0
    weights = np.stack([(1 - f) ** 3, 3 * f ** 3 - 6 * f ** 2 + 4,
                        -3 * f ** 3 + 3 * f ** 2 + 3 * f + 1, f ** 3], axis=1) / 6.0
    mat = np.zeros((size, n), np.float32)
    rows = np.arange(size)
    for k in range(4):
        mat[rows, i0 - 1 + k] = weights[:, k]
    return mat


def smooth_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Band-limited noise whose features are about ``cell`` pixels wide.

    A coarse Gaussian grid is upsampled with a smoothing cubic B-spline, done
    as two small matrix products (cost independent of ``cell``); a random
    sub-cell offset hides the grid alignment.
    """
    cell = max(float(cell), 1.0)
    n = int(np.ceil(size / cell)) + 4
    grid = rng.standard_normal((n, n)).astype(np.float32)
    # Offsets keep every 4-tap window inside the grid: t in [1, n - 2).
    oy, ox = rng.uniform(1.0, n - 2.0 - (size - 1) / cell, size=2)
    my = _bspline_matrix(size, cell, oy, n)
    mx = _bspline_matrix(size, cell, ox, n)
    return normalise(my @ grid @ mx.T)


def fbm(rng: np.random.Generator, size: int, cell: float, octaves: int = 4,
        persistence: float = 0.5) -> np.ndarray:
    """Fractal (multi-octave) noise: each octave halves the feature size."""
    total = np.zeros((size, size), np.float32)
    amp = 1.0
    for _ in range(octaves):
        total += amp * smooth_noise(rng, size, cell)
        cell /= 2.0
        amp *= persistence
    return normalise(total)


def rotated_coords(size: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u along ``angle``, v across it), centred on the image."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x -= c
    y -= c
    ca, sa = np.cos(angle), np.sin(angle)
    u = x * ca + y * sa
    v = -x * sa + y * ca
    return u, v


def streak_noise(rng: np.random.Generator, size: int, angle: float,
                 across: float, stretch: float) -> np.ndarray:
    """Anisotropic noise: streaks ``stretch`` times longer than wide.

    A small field is blurred across the streaks (sigma ``across`` px) and then
    sampled with the along-streak coordinate compressed by ``stretch``; the
    linear interpolation along u gives long, smoothly varying streaks without
    a costly long 1-D convolution.
    """
    u, v = rotated_coords(size, angle)
    diag = int(np.ceil(size * 1.42)) + 4
    n_u = int(np.ceil(diag / stretch)) + 4
    field = rng.standard_normal((diag, n_u)).astype(np.float32)
    field = ndimage.gaussian_filter(field, sigma=(max(across, 0.3), 0.7))
    coords = np.stack([v + diag / 2.0, u / stretch + n_u / 2.0])
    out = ndimage.map_coordinates(field, coords, order=1, mode="reflect")
    return normalise(out)


def fine_grain(rng: np.random.Generator, size: int, sigma: float = 0.7) -> np.ndarray:
    """Pixel-scale grain (slightly blurred white noise), unit std."""
    white = rng.standard_normal((size, size)).astype(np.float32)
    return normalise(ndimage.gaussian_filter(white, sigma))


def supersampled_alpha(canvas_2x: np.ndarray) -> np.ndarray:
    """Average 2x2 blocks of a 0/255 drawing -> anti-aliased alpha in [0, 1]."""
    h, w = canvas_2x.shape
    blocks = canvas_2x.reshape(h // 2, 2, w // 2, 2).astype(np.float32)
    return blocks.mean(axis=(1, 3)) / 255.0

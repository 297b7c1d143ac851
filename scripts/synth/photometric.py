"""Global camera / lighting effects applied after defects are painted.

They change pixels only, never masks: a model must find defects under uneven
illumination, slight defocus and sensor noise.  Ranges are kept moderate so
the >= ~50 gray-level contrast painted by ``defects`` stays >= ~30.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .noise import rotated_coords


def illumination_gain(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multiplicative field: linear gradient times an off-centre vignette."""
    u, _ = rotated_coords(size, rng.uniform(0, 2 * np.pi))
    gain = 1.0 + rng.uniform(0.0, 0.12) * u / (size / 2.0)
    c = (size - 1) / 2.0 + rng.uniform(-0.25, 0.25, size=2) * size
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    r2 = ((x - c[0]) ** 2 + (y - c[1]) ** 2) / (size / 2.0) ** 2
    gain *= 1.0 - rng.uniform(0.0, 0.15) * np.minimum(r2, 2.0) / 2.0
    return gain.astype(np.float32)


def apply_photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Float RGB (H, W, 3) -> uint8 RGB with lighting, blur, noise, jitter."""
    size = img.shape[0]
    img = img * illumination_gain(rng, size)[..., None]
    # Draw every parameter unconditionally so the random stream layout does
    # not depend on which optional effects are active.
    do_blur = rng.random() < 0.6
    sigma_blur = rng.uniform(0.3, 1.0)
    if do_blur:
        img = ndimage.gaussian_filter(img, sigma=(sigma_blur, sigma_blur, 0))
    sigma_noise = rng.uniform(2.0, 8.0)
    # Mostly luminance noise (shared by channels) plus a little chroma noise.
    common = rng.standard_normal(img.shape[:2]).astype(np.float32)[..., None]
    chroma = rng.standard_normal(img.shape).astype(np.float32)
    img = img + sigma_noise * (0.85 * common + 0.5 * chroma)
    contrast = rng.uniform(0.88, 1.12)
    brightness = rng.uniform(-12, 12)
    img = (img - 128.0) * contrast + 128.0 + brightness
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)

"""Loading the generated defect dataset (see gen_data.py) for training and evaluation.

Images are converted to the model's colour mode with PIL, the same conversion the
runtime documents (ITU-R BT.601 luma for gray), so training, onnxruntime evaluation
and edgeseg all see identical input pixels.
"""

from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ["background", "scratch", "spot", "crack", "pit"]


def split_files(root: Path, split: str):
    """(image, mask) path pairs of one split, sorted by name; mask may be None."""
    images = sorted((root / split / "images").glob("*.png"))
    if not images:
        raise SystemExit(f"no images under {root / split / 'images'}: "
                         f"run scripts/gen_data.py --out {root} first")
    pairs = []
    for img in images:
        mask = root / split / "masks" / img.name
        pairs.append((img, mask if mask.exists() else None))
    return pairs


def load_image(path: Path, color: str) -> np.ndarray:
    """HxW (gray) or HxWx3 (rgb) uint8 array."""
    mode = {"gray": "L", "rgb": "RGB"}[color]
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def load_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def load_split(root: Path, split: str, color: str, limit: int | None = None):
    """All images and masks of a split as two stacked uint8 arrays."""
    pairs = split_files(root, split)[:limit]
    images = np.stack([load_image(i, color) for i, _ in pairs])
    masks = np.stack([load_mask(m) for _, m in pairs])
    return images, masks


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 NHW[C] -> float32 NCHW, (x/255 - mean)/std per channel.

    Computed in float32 step by step, exactly like edgeseg's preprocessing.
    """
    x = images.astype(np.float32) / np.float32(255.0)
    if x.ndim == 3:
        x = x[:, None, :, :]
    else:
        x = x.transpose(0, 3, 1, 2)
    mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - mean) / std)

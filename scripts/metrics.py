"""Segmentation metrics, defined once for training, evaluate.py and the tests.

IoU is accumulated over the whole split (dataset-level confusion matrix), the
usual definition (as in torchmetrics/mmseg), not averaged per image. A class that
never occurs in labels or predictions has IoU NaN and is left out of the means.
"""

import numpy as np


def confusion(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """num_classes x num_classes matrix, rows = label, columns = prediction."""
    idx = label.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_report(conf: np.ndarray, class_names) -> dict:
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    defects = iou[1:]
    return {
        "iou": {name: float(v) for name, v in zip(class_names, iou)},
        "miou": float(np.nanmean(iou)),
        "miou_defects": float(np.nanmean(defects)) if np.any(~np.isnan(defects)) else float("nan"),
        "pixel_accuracy": float(tp.sum() / conf.sum()),
        "pixels": int(conf.sum()),
    }

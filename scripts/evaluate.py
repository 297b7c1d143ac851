#!/usr/bin/env python3
"""Evaluate a semantic ONNX model with onnxruntime on a labelled split.

    python3 scripts/evaluate.py --model models/unet_defects.onnx --data data/defects --split test [--json]

Preprocessing follows the model's edgeseg metadata (see onnx_meta.py), the
metrics follow metrics.py: the same definitions `edgeseg eval` prints, so the
two must agree to 1e-4. With --card, the result is stored in the model card.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dataset import load_image, load_mask, normalize
from metrics import confusion, iou_report
from onnx_meta import read_metadata


def model_config(path: Path) -> dict:
    meta = read_metadata(path)
    if meta.get("edgeseg.task", "semantic") != "semantic":
        raise SystemExit(f"{path}: not a semantic model (edgeseg.task={meta.get('edgeseg.task')})")
    return {
        "classes": json.loads(meta["edgeseg.classes"]),
        "color": meta.get("edgeseg.color", "rgb"),
        "mean": json.loads(meta.get("edgeseg.mean", "[0]")),
        "std": json.loads(meta.get("edgeseg.std", "[1]")),
        "size": tuple(int(v) for v in meta["edgeseg.input_size"].split("x")),
    }


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def predict(sess, cfg, image: np.ndarray) -> np.ndarray:
    """Class map of one image whose size equals the model input."""
    h, w = image.shape[:2]
    if (w, h) != cfg["size"]:
        raise SystemExit(f"image is {w}x{h} but the model takes {cfg['size'][0]}x{cfg['size'][1]}")
    x = normalize(image[None], cfg["mean"], cfg["std"])
    inp = sess.get_inputs()[0]
    if inp.type == "tensor(float16)":  # fp16 exports take a float16 input
        x = x.astype(np.float16)
    logits = sess.run(None, {inp.name: x})[0]
    return logits[0].argmax(0).astype(np.uint8)


def split_dir(data: Path, split: str) -> Path:
    for d in (data, data / split):
        if (d / "images").is_dir() and (d / "masks").is_dir():
            return d
    raise SystemExit(f"{data} has no images/ and masks/ (nor has {data / split})")


def evaluate(model: Path, data: Path, split: str = "test", limit=None, threads: int = 1) -> dict:
    cfg = model_config(model)
    sess = session(model, threads)
    d = split_dir(data, split)
    images = sorted((d / "images").glob("*.png"))[:limit]
    conf = np.zeros((len(cfg["classes"]),) * 2, np.int64)
    for path in images:
        pred = predict(sess, cfg, load_image(path, cfg["color"]))
        conf += confusion(pred, load_mask(d / "masks" / path.name), len(cfg["classes"]))
    report = iou_report(conf, cfg["classes"])
    report["images"] = len(images)
    return report


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--card", action="store_true", help="write the result into MODEL.card.json")
    args = p.parse_args()
    report = evaluate(args.model, args.data, args.split, args.limit, args.threads)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.model} on {args.data} [{args.split}] ({report['images']} images)")
        for name, v in report["iou"].items():
            print(f"{name:<14} {v:8.4f}")
        print(f"{'mIoU(defects)':<14} {report['miou_defects']:8.4f}")
        print(f"{'mIoU(all)':<14} {report['miou']:8.4f}")
        print(f"{'pixel acc':<14} {report['pixel_accuracy']:8.4f}")
    if args.card:
        card_path = args.model.with_suffix(".card.json")
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
        card.setdefault("metrics", {})[args.split] = {
            "miou_defects": round(report["miou_defects"], 4), "miou": round(report["miou"], 4),
            "pixel_accuracy": round(report["pixel_accuracy"], 5),
            "iou": {k: round(v, 4) for k, v in report["iou"].items()},
            "images": report["images"], "evaluated_with": f"onnxruntime {ort.__version__}",
        }
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Model card for a YOLO-seg export: architecture, size, training record and
mask mAP on the synthetic test split, measured with edgeseg (whose COCO
evaluation equals pycocotools', see tests/python/test_instances.py).

    python3 scripts/yolo_card.py --model models/yolov8n_seg_defects.onnx \\
        --weights target/yolo/train/weights/best.pt --run target/yolo/train --data data/defects
"""

import argparse
import csv
import json
import os
import subprocess
from pathlib import Path

os.environ["YOLO_OFFLINE"] = "1"

from onnx_meta import read_metadata, sha256  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--weights", type=Path, required=True, help="the .pt the ONNX was exported from")
    p.add_argument("--run", type=Path, required=True, help="ultralytics run folder (results.csv, args.yaml)")
    p.add_argument("--data", type=Path, default=Path("data/defects"))
    p.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "edgeseg")
    p.add_argument("--history", default="", help="free text: how the run went (interruptions, resumes)")
    args = p.parse_args()

    from ultralytics import YOLO

    meta = read_metadata(args.model)
    imgsz = json.loads(meta["imgsz"])
    model = YOLO(str(args.weights), task="segment")
    from ultralytics.utils.torch_utils import get_flops

    params = sum(p.numel() for p in model.model.parameters())
    gflops = get_flops(model.model, imgsz=imgsz[0])  # ultralytics counts 2 FLOPs per multiply-add
    rows = list(csv.DictReader(open(args.run / "results.csv")))
    col = {k.strip(): k for k in rows[0]}
    key = col["metrics/mAP50(M)"]

    def fitness(r):
        # ultralytics keeps best.pt by 0.1 mAP50 + 0.9 mAP50-95, boxes plus masks.
        return sum(0.1 * float(r[col[f"metrics/mAP50({t})"]]) + 0.9 * float(r[col[f"metrics/mAP50-95({t})"]]) for t in "BM")

    best = max(rows, key=fitness)
    ours = json.loads(subprocess.run(
        [str(args.bin), "eval", "--model", str(args.model), "--data", str(args.data), "--split", "test", "--json"],
        check=True, capture_output=True, text=True).stdout)
    gen = json.loads((args.data / "meta.json").read_text())
    card = {
        "name": args.model.stem,
        "file": args.model.name,
        "architecture": "YOLOv8n-seg (ultralytics yolov8n-seg.yaml), trained from scratch: no pretrained weights",
        "task": "instance",
        "classes": list(json.loads(json.dumps(model.names)).values()),
        "input": {"size": imgsz, "color": "rgb", "layout": "NCHW", "scale": "0..1", "resize": "letterbox (gray 114, OpenCV bilinear)"},
        "parameters": int(params),
        "gflops": round(float(gflops), 2),
        "outputs": "[1, 4+nc+32, N] boxes, class scores, mask coefficients; [1, 32, H/4, W/4] prototypes; no NMS in the graph",
        "data": {"root": str(args.data), "generator": gen},
        "training": {
            "script": "scripts/train_yolo.py",
            "epochs_run": len(rows),
            "best_epoch": int(float(best["epoch"])),
            "best_epoch_rule": "ultralytics fitness: 0.1 mAP50 + 0.9 mAP50-95, boxes plus masks, on val",
            "best_val_mask_map50": round(float(best[key]), 4),
            "history": args.history,
            "ultralytics": meta.get("version"),
        },
        "test": {
            "images": ours["images"],
            "mask_map50": round(ours["map50"], 4),
            "mask_map50_95": round(ours["map50_95"], 4),
            "per_class": {c["name"]: {"ap50": round(c["ap50"], 4), "ap50_95": round(c["ap"], 4)} for c in ours["per_class"]},
            "measured_with": "edgeseg eval (COCO mask AP, equal to pycocotools COCOeval segm), conf 0.001, NMS IoU 0.7",
        },
        "bytes": args.model.stat().st_size,
        "sha256": sha256(args.model),
    }
    out = args.model.with_suffix(".card.json")
    out.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["test"], indent=2))


if __name__ == "__main__":
    main()

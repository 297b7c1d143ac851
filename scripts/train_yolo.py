#!/usr/bin/env python3
"""Train YOLOv8n-seg from scratch on the synthetic defect data and export it for edgeseg.

    python3 scripts/train_yolo.py --data data/defects --out models/yolov8n_seg_defects.onnx

Builds the network from ultralytics' `yolov8n-seg.yaml` (no pretrained weights:
nothing is downloaded; YOLO_OFFLINE=1 is forced before ultralytics is imported),
trains on the YOLO-format polygons written by gen_data.py, and exports ONNX
(opset 17, nms=False). Ultralytics writes its own metadata (`names`, `imgsz`,
`stride`, `task`) into the file; edgeseg reads it, so the export works without
flags. We add only provenance keys (`edgeseg.*`) beside it.
"""

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

# Must be set before ultralytics is imported: it disables hub checks, font and
# asset downloads.
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault("YOLO_VERBOSE", "True")

import onnx  # noqa: E402

from onnx_meta import sha256  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/defects"))
    p.add_argument("--out", type=Path, default=Path("models/yolov8n_seg_defects.onnx"))
    p.add_argument("--cfg", default="yolov8n-seg.yaml", help="ultralytics model yaml (built from scratch)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fraction", type=float, default=1.0, help="use this fraction of the train split (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", type=Path, default=Path("target/yolo-runs"))
    p.add_argument("--close-mosaic", type=int, default=None, help="last N epochs without mosaic (default epochs/6)")
    p.add_argument("--name", default="train", help="run name under --project")
    p.add_argument("--resume", type=Path, help="resume an interrupted run from its last.pt (optimizer and schedule "
                   "included); with --epochs, the schedule is first changed to that many epochs in total")
    p.add_argument("--export-only", type=Path, help="skip training: export these weights (.pt) with our metadata")
    return p.parse_args()


def dataset_yaml(data: Path, project: Path) -> Path:
    """Ultralytics resolves `path:` relative to its datasets dir; write an absolute copy."""
    meta = json.loads((data / "meta.json").read_text())
    names = {int(k): v for k, v in meta["yolo_names"].items()}
    project.mkdir(parents=True, exist_ok=True)
    out = project / "dataset.yaml"
    lines = [f"path: {data.resolve()}", "train: train/images", "val: val/images", "test: test/images", "names:"]
    lines += [f"  {k}: {v}" for k, v in sorted(names.items())]
    out.write_text("\n".join(lines) + "\n")
    return out


def export(weights: Path, args) -> None:
    """ONNX opset 17, no NMS (edgeseg decodes), ultralytics' metadata plus ours."""
    from ultralytics import YOLO

    exported = Path(YOLO(str(weights), task="segment").export(format="onnx", opset=17, imgsz=args.imgsz, nms=False, simplify=False, dynamic=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported, args.out)
    m = onnx.load(str(args.out))
    extra = {
        "edgeseg.trained_by": "scripts/train_yolo.py",
        "edgeseg.dataset": f"synthetic defects seed {json.loads((args.data / 'meta.json').read_text())['seed']}",
    }
    keep = [p for p in m.metadata_props if p.key not in extra]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    for k, v in extra.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(args.out))
    print(json.dumps({"model": str(args.out), "sha256": sha256(args.out), "bytes": args.out.stat().st_size}, indent=2))


def resume(args) -> Path:
    """Continue an interrupted run where it stopped (ultralytics `resume=True`)."""
    import torch
    from ultralytics import YOLO

    if args.epochs:
        ckpt = torch.load(args.resume, map_location="cpu", weights_only=False)
        ckpt["train_args"]["epochs"] = args.epochs
        if args.close_mosaic is not None:
            ckpt["train_args"]["close_mosaic"] = args.close_mosaic
        torch.save(ckpt, args.resume)
    YOLO(str(args.resume)).train(resume=True)
    return args.resume.parent / "best.pt"


def main():
    args = parse_args()
    from ultralytics import YOLO

    if args.export_only:
        return export(args.export_only, args)
    if args.resume:
        t0 = time.time()
        best = resume(args)
        print(f"resumed run finished in {time.time() - t0:.0f} s")
        return export(best, args)

    yaml_path = dataset_yaml(args.data, args.project)
    model = YOLO(args.cfg, task="segment")
    t0 = time.time()
    model.train(
        data=str(yaml_path),
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        workers=args.workers,
        device="cpu",
        pretrained=False,
        amp=False,
        plots=False,
        seed=args.seed,
        deterministic=True,
        fraction=args.fraction,
        project=str(args.project.resolve()),
        name=args.name,
        exist_ok=True,
        # The parts are inspected from above on a conveyor: any rotation or
        # flip is a valid view, colour is mostly grey; mosaic helps small objects.
        fliplr=0.5,
        flipud=0.5,
        degrees=0.0,
        hsv_h=0.0,
        hsv_s=0.0,
        hsv_v=0.3,
        close_mosaic=args.close_mosaic if args.close_mosaic is not None else max(1, args.epochs // 6),
        patience=1000,
        val=True,
        verbose=True,
    )
    train_s = time.time() - t0
    best = args.project.resolve() / args.name / "weights" / "best.pt"
    export(best, args)
    summary = {
        "train_seconds": round(train_s, 1),
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "sha256": sha256(args.out),
        "bytes": args.out.stat().st_size,
    }
    print(json.dumps(summary, indent=2))
    (args.project / "train_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

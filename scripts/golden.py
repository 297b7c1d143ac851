#!/usr/bin/env python3
"""Write onnxruntime reference outputs that edgeseg's Rust tests must agree with.

    python3 scripts/golden.py                       # every semantic model in models/
    python3 scripts/golden.py --model models/unet_defects.onnx

For each model, into OUT/<model stem>/ (OUT = tests/golden): for every image in
SAMPLES/images the argmax class map from onnxruntime (<name>.ort.png) and, in
golden.json, each present class's area and its COCO RLE string from pycocotools; also
the evaluate.py report on the samples. With --check, nothing is written: the fresh
outputs are compared with the stored ones and the exit code says whether they still
match (CI runs this). tests/golden.rs holds edgeseg to these files, on x86 and under
qemu-aarch64.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from dataset import load_image
from evaluate import evaluate, model_config, predict, session
from onnx_meta import read_metadata, sha256


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def build(model: Path, samples: Path):
    cfg = model_config(model)
    sess = session(model)
    files, entries = {}, {}
    for path in sorted((samples / "images").glob("*.png")):
        pred = predict(sess, cfg, load_image(path, cfg["color"]))
        files[f"{path.stem}.ort.png"] = pred
        classes = {}
        for cid in range(1, len(cfg["classes"])):
            m = pred == cid
            if m.any():
                rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
                classes[str(cid)] = {"area": int(m.sum()), "counts": rle["counts"].decode()}
        entries[path.name] = {"size": [int(pred.shape[0]), int(pred.shape[1])], "classes": classes}
    report = evaluate(model, samples, limit=None)
    golden = {"model": str(model), "model_sha256": sha256(model), "images": entries, "eval": report}
    return files, golden


def semantic_models(models: Path) -> list[Path]:
    return [m for m in sorted(models.glob("*.onnx")) if read_metadata(m).get("edgeseg.task") == "semantic"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, action="append", help="default: every semantic model in models/")
    p.add_argument("--samples", type=Path, default=Path("samples"))
    p.add_argument("--out", type=Path, default=Path("tests/golden"))
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    status = 0
    for model in args.model or semantic_models(Path("models")):
        status |= one_model(model, args.samples, args.out / model.stem, args.check)
    return status


def one_model(model: Path, samples: Path, out: Path, check: bool) -> int:
    files, golden = build(model, samples)
    if check:
        if not (out / "golden.json").exists():
            print(f"{model}: no golden files in {out}; run scripts/golden.py --model {model}")
            return 1
        old = json.loads((out / "golden.json").read_text())
        problems = []
        if old["model_sha256"] != golden["model_sha256"]:
            problems.append("model changed since the golden files were written")
        for name, arr in files.items():
            ref = np.asarray(Image.open(out / name))
            same = float((ref == arr).mean())
            if same < 1.0:
                problems.append(f"{name}: {same:.5%} of pixels still agree")
        if problems:
            print(f"{out}: golden files are stale; rerun scripts/golden.py --model {model}:\n  " + "\n  ".join(problems))
            return 1
        print(f"{out}: golden files match onnxruntime on {len(files)} images")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in files.items():
        (out / name).write_bytes(png_bytes(arr))
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {len(files)} reference masks and golden.json to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Deterministic synthetic industrial-defect data set (in the spirit of DAGM 2007).

Used to train the segmentation models edgeseg runs: a U-Net (semantic class
masks) and YOLOv8-seg (instance polygons).  Helpers live in ``scripts/synth``.

Surfaces (one texture family per image, chosen uniformly, every parameter --
scale, orientation, contrast, base brightness, tint -- randomised):
    brushed_metal  anisotropic streak noise along a random angle, specular band
    woven_fabric   plain weave of over/under threads, slight thread wander
    wood_grain     turbulence-warped sinusoidal growth rings + fibre streaks
    cast_surface   multi-octave smooth (fbm) relief + fine grain
    pcb            green solder mask, covered traces (0/45/90 deg), pads, silkscreen

Defects (0-3 per image, ~20 % of images defect-free, class drawn uniformly):
    1 scratch  thin line / gentle curve, 3-5 px wide, 40-200 px long, bright (specular)
    2 spot     irregular filled blob, radius 8-24 px, darker or tinted
    3 crack    jagged dark random-walk line, optional branch, 3-5 px, 40-160 px
    4 pit      round hole, radius 3-8 px, dark centre with a bright inner rim
Each defect is painted with an anti-aliased coverage alpha whose ``alpha >=
0.5`` region *is* the instance mask, at >= ~50 gray levels from the local
surface.  Later defects overwrite earlier ones; an instance keeps only its
visible pixels and is dropped (pixels labelled background) below 10 px.
Illumination gradient/vignette, blur (sigma <= 1), sensor noise (sigma 2-8)
and brightness/contrast jitter are applied afterwards and never alter masks.

Determinism: sample i of split s uses ``np.random.default_rng([seed, s, i])``
(s: train=0, val=1, test=2), so output is byte-identical for the same
arguments regardless of ``--workers`` or processing order.

Output layout (OUT = --out):
    OUT/{train,val,test}/images/NNNNNN.png  RGB uint8, size x size
    OUT/{train,val,test}/masks/NNNNNN.png   'L' class index 0..4 (0 = background)
    OUT/{train,val,test}/labels/NNNNNN.txt  YOLO-seg: "cls x1 y1 x2 y2 ..." per
                                            instance, cls = mask class - 1,
                                            normalised outer contour of the
                                            instance's largest visible part
    OUT/annotations/instances_{split}.json  COCO instances, compressed RLE of
                                            visible masks, category ids 1..4
    OUT/dataset.yaml                        ultralytics data config
    OUT/meta.json                           seed, counts, classes, version,
                                            texture family per image

Usage:
    python3 scripts/gen_data.py --out data/defects --seed 0 \\
        --train 800 --val 100 --test 100 --size 256 [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from multiprocessing import Pool
from pathlib import Path

# The only BLAS work is tiny (noise upsampling matrices); multi-threaded BLAS
# just oversubscribes cores, worst with --workers > 1.  Must precede numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth.defects import CLASS_NAMES, add_defects  # noqa: E402
from synth.photometric import apply_photometric  # noqa: E402
from synth.polygons import mask_polygon  # noqa: E402
from synth.textures import FAMILIES, make_texture  # noqa: E402

GENERATOR_VERSION = "1.0.0"
SPLITS = ("train", "val", "test")


# ------------------------------------------------------------- one sample


def render_sample(seed: int, split_index: int, index: int, size: int):
    """Generate one image; returns (family, rgb uint8, class mask, instances)."""
    rng = np.random.default_rng([seed, split_index, index])
    family, img = make_texture(rng, size)
    class_mask, instances = add_defects(rng, img)
    rgb = apply_photometric(rng, img)
    return family, rgb, class_mask, instances


def yolo_line(cls: int, visible: np.ndarray) -> str:
    """One YOLO-seg label line: zero-based class + normalised polygon."""
    h, w = visible.shape
    coords = []
    for x, y in mask_polygon(visible):
        coords += [f"{x / w:.8f}", f"{y / h:.8f}"]
    return " ".join([str(cls - 1)] + coords)


def coco_annotation(cls: int, visible: np.ndarray) -> dict:
    """COCO fields of one instance (ids are assigned by the caller)."""
    rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
    ys, xs = np.nonzero(visible)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "category_id": cls,
        "segmentation": {"size": [int(s) for s in rle["size"]],
                         "counts": rle["counts"].decode("ascii")},
        "area": int(visible.sum()),
        "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
        "iscrowd": 0,
    }


def write_sample(task) -> dict:
    """Render + write image, mask and YOLO label; return COCO material.

    Runs in worker processes, so it takes one picklable tuple and returns
    plain data; the parent assembles the JSON files in index order.
    """
    out, seed, split_index, index, size = task
    split = SPLITS[split_index]
    family, rgb, class_mask, instances = render_sample(seed, split_index, index, size)
    stem = f"{index:06d}"
    root = Path(out) / split
    Image.fromarray(rgb, "RGB").save(root / "images" / f"{stem}.png")
    Image.fromarray(class_mask, "L").save(root / "masks" / f"{stem}.png")
    lines = [yolo_line(cls, vis) for cls, vis in instances]
    (root / "labels" / f"{stem}.txt").write_text("".join(l + "\n" for l in lines))
    return {
        "file_name": f"{split}/images/{stem}.png",
        "family": family,
        "annotations": [coco_annotation(cls, vis) for cls, vis in instances],
    }


# ------------------------------------------------------------- data set files


def prepare_split_dirs(out: Path, split: str) -> None:
    """Fresh images/masks/labels dirs; drop stale files and YOLO caches."""
    root = out / split
    for sub in ("images", "masks", "labels"):
        if (root / sub).exists():
            shutil.rmtree(root / sub)
        (root / sub).mkdir(parents=True)
    for cache in root.glob("*.cache"):  # ultralytics labels.cache
        cache.unlink()


def coco_document(records: list[dict], size: int) -> dict:
    images, annotations = [], []
    for image_id, rec in enumerate(records, start=1):
        images.append({"id": image_id, "file_name": rec["file_name"],
                       "width": size, "height": size})
        for ann in rec["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    return {
        "info": {"description": "edgeseg synthetic industrial defects",
                 "version": GENERATOR_VERSION},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "defect"}
                       for i, n in enumerate(CLASS_NAMES)],
    }


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def write_dataset_yaml(out: Path) -> None:
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    (out / "dataset.yaml").write_text(
        f"path: {out.resolve()}\ntrain: train/images\nval: val/images\n"
        f"test: test/images\nnames:\n{names}\n")


def write_meta(out: Path, args, families: dict, counts: dict) -> None:
    meta = {
        "generator": "scripts/gen_data.py",
        "generator_version": GENERATOR_VERSION,
        "seed": args.seed,
        "size": args.size,
        "counts": counts,
        "mask_values": {"0": "background",
                        **{str(i + 1): n for i, n in enumerate(CLASS_NAMES)}},
        "yolo_names": {str(i): n for i, n in enumerate(CLASS_NAMES)},
        "texture_families": list(FAMILIES),
        "families": families,
    }
    out.joinpath("meta.json").write_text(json.dumps(meta, indent=2) + "\n")


# ------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="base seed (per-sample streams derive from it)")
    p.add_argument("--train", type=int, default=800, help="train images")
    p.add_argument("--val", type=int, default=100, help="validation images")
    p.add_argument("--test", type=int, default=100, help="test images")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--workers", type=int, default=1, help="processes (output is identical)")
    args = p.parse_args(argv)
    if args.size < 64 or args.size % 2:
        p.error("--size must be even and >= 64")
    if min(args.train, args.val, args.test) < 0 or args.seed < 0:
        p.error("counts and seed must be >= 0")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    out = args.out
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    families = {}
    pool = Pool(args.workers) if args.workers > 1 else None
    try:
        for split_index, split in enumerate(SPLITS):
            prepare_split_dirs(out, split)
            tasks = [(str(out), args.seed, split_index, i, args.size)
                     for i in range(counts[split])]
            records = (list(pool.imap(write_sample, tasks, chunksize=8)) if pool
                       else [write_sample(t) for t in tasks])
            write_json(out / "annotations" / f"instances_{split}.json",
                       coco_document(records, args.size))
            families[split] = [r["family"] for r in records]
            n_inst = sum(len(r["annotations"]) for r in records)
            print(f"{split}: {len(records)} images, {n_inst} instances", flush=True)
    finally:
        if pool:
            pool.close()
            pool.join()
    write_dataset_yaml(out)
    write_meta(out, args, families, counts)
    print(f"wrote {out.resolve()}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train the classic U-Net on the synthetic defect data and export it for edgeseg.

    python3 scripts/train_unet.py --data data/defects --out models/unet_defects.onnx

Trains on random crops (fully convolutional, so the exported model runs on the
full frame), biased towards defect pixels because defects cover ~1-2 % of the
area. Loss: cross-entropy + soft Dice over the defect classes. The best
checkpoint by validation mIoU (defect classes) is exported to ONNX opset 17
with edgeseg metadata, and a model card JSON is written beside it.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from dataset import CLASS_NAMES, load_split, normalize
from onnx_meta import set_metadata, sha256, store_weights_fp16
from unet import UNet, count_parameters
from metrics import confusion, iou_report


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/defects"))
    p.add_argument("--out", type=Path, default=Path("models/unet_defects.onnx"))
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128, help="training crop size (multiple of 16)")
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--val-limit", type=int, default=None, help="validate on the first N val images")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N images (smoke tests)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="exported input size (square)")
    p.add_argument("--fp32-weights", action="store_true", help="store weights as float32 (2x larger file)")
    p.add_argument("--checkpoint", type=Path, help="also save the best PyTorch weights here (.pt)")
    p.add_argument("--init", type=Path, help="start from these PyTorch weights (.pt) instead of random init")
    return p.parse_args()


def sample_batch(rng, images, masks, batch, crop, defect_bias=0.7):
    """Random crops with flips/rot90; most crops are centred on a defect pixel."""
    n, h, w = images.shape
    xs = np.empty((batch, crop, crop), np.uint8)
    ys = np.empty((batch, crop, crop), np.int64)
    for b in range(batch):
        i = rng.integers(n)
        cy, cx = rng.integers(h), rng.integers(w)
        if rng.random() < defect_bias:
            fg = np.flatnonzero(masks[i])
            if fg.size:
                cy, cx = divmod(int(fg[rng.integers(fg.size)]), w)
        y0 = int(np.clip(cy - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, h - crop))
        x0 = int(np.clip(cx - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, w - crop))
        img = images[i, y0:y0 + crop, x0:x0 + crop]
        msk = masks[i, y0:y0 + crop, x0:x0 + crop]
        k = int(rng.integers(4))
        img, msk = np.rot90(img, k), np.rot90(msk, k)
        if rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        xs[b], ys[b] = img, msk
    return xs, ys


def dice_loss(logits, target, num_classes):
    """Soft Dice over the defect classes only (background would dominate)."""
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(target, num_classes).permute(0, 3, 1, 2).float()[:, 1:]
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


@torch.no_grad()
def predict(model, x_norm, batch=8):
    out = []
    for i in range(0, len(x_norm), batch):
        x = torch.from_numpy(x_norm[i:i + batch]).to(memory_format=torch.channels_last)
        out.append(model(x).argmax(1).numpy().astype(np.uint8))
    return np.concatenate(out)


def dataset_summary(root: Path) -> dict:
    """The generator's scalar settings (seed, counts, version), without per-image lists."""
    path = root / "meta.json"
    if not path.exists():
        return {}
    def scalar(v):
        return not isinstance(v, (list, dict)) or (isinstance(v, dict) and not any(isinstance(x, list) for x in v.values()))
    return {k: v for k, v in json.loads(path.read_text()).items() if scalar(v)}


def export_onnx(model, path: Path, size: int, meta: dict, fp16_weights: bool):
    model.eval()
    dummy = torch.zeros(1, 1, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"], do_constant_folding=True)
    proto = onnx.load(str(path))
    if fp16_weights:
        store_weights_fp16(proto)
    set_metadata(proto, meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    train_x, train_y = load_split(args.data, "train", "gray", args.train_limit)
    val_x, val_y = load_split(args.data, "val", "gray", args.val_limit)
    # Normalisation constants from the training pixels, rounded so that the
    # metadata is short and exact.
    mean = round(float(train_x.mean()) / 255, 4)
    std = round(float(train_x.std()) / 255, 4)
    val_norm = normalize(val_x, [mean], [std])
    print(f"train {train_x.shape}, val {val_x.shape}, mean {mean}, std {std}", flush=True)

    # channels_last lets oneDNN pick its fast CPU convolution kernels (~3x here).
    model = UNet(in_channels=1, num_classes=len(CLASS_NAMES)).to(memory_format=torch.channels_last)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        print(f"initialised from {args.init}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)

    best = (-1.0, None, 0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        model.train()
        xb, yb = sample_batch(rng, train_x, train_y, args.batch, args.crop)
        x = torch.from_numpy(normalize(xb, [mean], [std])).to(memory_format=torch.channels_last)
        y = torch.from_numpy(yb)
        logits = model(x)
        loss = F.cross_entropy(logits, y) + dice_loss(logits, y, len(CLASS_NAMES))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0:
            print(f"step {step}/{args.steps} loss {loss.item():.4f} "
                  f"{(time.time() - t0) / step:.2f}s/step", flush=True)
        if step % args.val_every == 0 or step == args.steps:
            model.eval()
            report = iou_report(confusion(predict(model, val_norm), val_y, len(CLASS_NAMES)), CLASS_NAMES)
            print(f"step {step} val mIoU(defects) {report['miou_defects']:.4f} "
                  f"per-class {[round(v, 3) for v in report['iou'].values()]}", flush=True)
            if report["miou_defects"] > best[0]:
                best = (report["miou_defects"], {k: v.clone() for k, v in model.state_dict().items()}, step)

    train_seconds = time.time() - t0
    model.load_state_dict(best[1])
    if args.checkpoint:
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(best[1], args.checkpoint)
    model = model.to(memory_format=torch.contiguous_format)
    meta = {
        "edgeseg.schema": "1",
        "edgeseg.task": "semantic",
        "edgeseg.classes": CLASS_NAMES,
        "edgeseg.input_layout": "NCHW",
        "edgeseg.input_size": f"{args.size}x{args.size}",
        "edgeseg.color": "gray",
        "edgeseg.mean": [mean],
        "edgeseg.std": [std],
        "edgeseg.resize": "stretch",
        "edgeseg.output_activation": "softmax",
        "edgeseg.name": "unet-defects",
        "edgeseg.version": "1",
        "edgeseg.trained_on": "edgeseg synthetic defects (scripts/gen_data.py)",
    }
    export_onnx(model, args.out, args.size, meta, fp16_weights=not args.fp32_weights)
    card = {
        "name": "unet-defects",
        "file": args.out.name,
        "architecture": "U-Net, encoder 32-64-128-256, bridge 512, transposed-conv decoder, BN+ReLU",
        "task": "semantic",
        "classes": CLASS_NAMES,
        "input": {"size": [args.size, args.size], "color": "gray", "layout": "NCHW", "mean": [mean], "std": [std]},
        "parameters": count_parameters(model),
        "weights_storage": "float32" if args.fp32_weights else "float16 initializers + Cast (computes in float32)",
        "data": {"root": str(args.data), "train_images": len(train_x), "val_images": len(val_x),
                 "generator": dataset_summary(args.data)},
        "training": {"init": str(args.init) if args.init else "random", "steps": args.steps, "batch": args.batch, "crop": args.crop, "lr": args.lr,
                     "optimizer": "AdamW + OneCycle", "loss": "cross-entropy + soft Dice (defect classes)",
                     "best_step": best[2], "val_miou_defects": round(best[0], 4),
                     "seconds": round(train_seconds, 1), "threads": args.threads,
                     "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "seed": args.seed},
        "file_bytes": args.out.stat().st_size,
        "sha256": sha256(args.out),
    }
    card_path = args.out.with_suffix(".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out} ({card['file_bytes']} bytes) and {card_path}; best val mIoU {best[0]:.4f} at step {best[2]}")


if __name__ == "__main__":
    main()

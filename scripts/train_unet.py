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

import torch

from dataset import CLASS_NAMES, load_split
from onnx_meta import sha256
from seg_train import add_training_args, dataset_summary, export_onnx, gflops, pixel_stats, train
from unet import UNet, count_parameters


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("models/unet_defects.onnx"))
    add_training_args(p, steps=5000, crop=128, lr=1.5e-3, val_every=500)
    return p.parse_args()


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    train_x, train_y = load_split(args.data, "train", "gray", args.train_limit)
    val_x, val_y = load_split(args.data, "val", "gray", args.val_limit)
    mean, std = pixel_stats(train_x)
    print(f"train {train_x.shape}, val {val_x.shape}, mean {mean}, std {std}", flush=True)

    # channels_last lets oneDNN pick its fast CPU convolution kernels (~3x here).
    model = UNet(in_channels=1, num_classes=len(CLASS_NAMES)).to(memory_format=torch.channels_last)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        print(f"initialised from {args.init}", flush=True)
    best_miou, best_state, best_step, train_seconds = train(model, args, train_x, train_y, val_x, val_y, mean, std)
    model.load_state_dict(best_state)
    if args.checkpoint:
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(best_state, args.checkpoint)
    model = model.to(memory_format=torch.contiguous_format)
    meta = {
        "edgeseg.schema": "1",
        "edgeseg.task": "semantic",
        "edgeseg.classes": CLASS_NAMES,
        "edgeseg.input_layout": "NCHW",
        "edgeseg.input_size": f"{args.size}x{args.size}",
        "edgeseg.color": "gray",
        "edgeseg.mean": mean,
        "edgeseg.std": std,
        "edgeseg.resize": "stretch",
        "edgeseg.output_activation": "softmax",
        "edgeseg.name": "unet-defects",
        "edgeseg.version": "1",
        "edgeseg.trained_on": "edgeseg synthetic defects (scripts/gen_data.py)",
    }
    export_onnx(model, args.out, args.size, 1, meta, fp16_weights=not args.fp32_weights)
    card = {
        "name": "unet-defects",
        "file": args.out.name,
        "architecture": "U-Net, encoder 32-64-128-256, bridge 512, transposed-conv decoder, BN+ReLU",
        "task": "semantic",
        "classes": CLASS_NAMES,
        "input": {"size": [args.size, args.size], "color": "gray", "layout": "NCHW", "mean": mean, "std": std},
        "parameters": count_parameters(model),
        "gflops": gflops(model, 1, args.size),
        "weights_storage": "float32" if args.fp32_weights else "float16 initializers + Cast (computes in float32)",
        "data": {"root": str(args.data), "train_images": len(train_x), "val_images": len(val_x),
                 "generator": dataset_summary(args.data)},
        "training": {"init": str(args.init) if args.init else "random", "steps": args.steps, "batch": args.batch, "crop": args.crop, "lr": args.lr,
                     "optimizer": "AdamW + OneCycle", "loss": "cross-entropy + soft Dice (defect classes)",
                     "best_step": best_step, "val_miou_defects": round(best_miou, 4),
                     "seconds": round(train_seconds, 1), "threads": args.threads,
                     "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "seed": args.seed},
        "file_bytes": args.out.stat().st_size,
        "sha256": sha256(args.out),
    }
    card_path = args.out.with_suffix(".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out} ({card['file_bytes']} bytes) and {card_path}; best val mIoU {best_miou:.4f} at step {best_step}")


if __name__ == "__main__":
    main()

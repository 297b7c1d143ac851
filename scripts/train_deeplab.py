#!/usr/bin/env python3
"""Train a DeepLab-family model (LR-ASPP or DeepLabV3+, MobileNetV3 backbone) on the
synthetic defect data and export it for edgeseg.

    python3 scripts/train_deeplab.py --arch lraspp --out models/lraspp_defects.onnx
    python3 scripts/train_deeplab.py --arch deeplabv3plus --internal-scale 2 --crop 128 \
        --steps 2400 --out models/deeplabv3plus_defects.onnx

Same recipe as the U-Net (seg_train.py), on the RGB image: no pretrained weights, nothing
downloaded. Writes the ONNX model with edgeseg metadata and a model card beside it.
"""

import argparse
from pathlib import Path

from dataset import CLASS_NAMES
from deeplab import ARCHITECTURES, build
from seg_train import add_training_args, train_and_export


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--internal-scale", type=int, default=1, choices=[1, 2],
                   help="upsample the frame inside the graph (2: the decoder's 1/4 output is at half the frame resolution)")
    add_training_args(p, steps=3000, crop=192, lr=2e-3, val_every=500)
    return p.parse_args()


def main():
    args = parse_args()
    architecture = ARCHITECTURES[args.arch]
    if args.internal_scale > 1:
        architecture += f"; input upsampled x{args.internal_scale} inside the graph, logits average-pooled back"
    train_and_export(args, lambda: build(args.arch, len(CLASS_NAMES), args.internal_scale),
                     name=f"{args.arch}-defects", architecture=architecture, color="rgb")


if __name__ == "__main__":
    main()

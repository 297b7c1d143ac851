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
from pathlib import Path

from dataset import CLASS_NAMES
from seg_train import add_training_args, train_and_export
from unet import UNet


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("models/unet_defects.onnx"))
    add_training_args(p, steps=5000, crop=128, lr=1.5e-3, val_every=500)
    return p.parse_args()


def main():
    args = parse_args()
    train_and_export(args, lambda: UNet(in_channels=1, num_classes=len(CLASS_NAMES)), name="unet-defects",
                     architecture="U-Net, encoder 32-64-128-256, bridge 512, transposed-conv decoder, BN+ReLU",
                     color="gray")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Rebuild the committed U-Net from nothing: data, training, export, model card,
# evaluation and the golden files the Rust tests compare against.
#
#   bash scripts/reproduce_unet.sh            # about 45 min on 2 CPU cores (a CUDA GPU is not used by default)
#
# Deterministic data (seed 0); training on CPU is reproducible on the same
# machine and torch version, and within noise elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r scripts/requirements-train.txt
python3 scripts/gen_data.py --out data/defects --seed 0 --train 800 --val 100 --test 100 --size 256 --workers 2
python3 scripts/train_unet.py --data data/defects --out models/unet_defects.onnx --steps 5000 --lr 1.5e-3 --val-every 500
python3 scripts/evaluate.py --model models/unet_defects.onnx --data data/defects --split test --card
python3 scripts/golden.py --model models/unet_defects.onnx

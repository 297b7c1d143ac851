#!/usr/bin/env python3
"""onnxruntime latency on the same model, input and thread count as `edgeseg bench`.

    python3 scripts/bench_ort.py --model models/unet_defects.onnx --threads 2 [--image IMG] [--json]

Same fields as `edgeseg bench --json`: nearest-rank percentiles of the
network's run time alone (input prepared once, outside the timing).
"""

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dataset import load_image, normalize
from evaluate import model_config, read_metadata


def input_config(path: Path) -> dict:
    """What the input looks like: edgeseg metadata, or ultralytics' (RGB, 0..1, imgsz)."""
    meta = read_metadata(path)
    if "imgsz" in meta and "edgeseg.input_size" not in meta:
        h, w = json.loads(meta["imgsz"])
        return {"size": (w, h), "color": "rgb", "mean": [0.0], "std": [1.0]}
    return model_config(path)


def percentile(sorted_ms, p):
    rank = max(1, math.ceil(p / 100 * len(sorted_ms)))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--image", type=Path, help="default: a uniform mid-gray frame, as edgeseg bench")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    cfg = input_config(args.model)
    w, h = cfg["size"]
    if args.image:
        img = load_image(args.image, cfg["color"])
        if img.shape[:2] != (h, w):
            raise SystemExit(f"{args.image} is not {w}x{h}; bench_ort.py feeds images at the model size")
    else:
        img = np.full((h, w) if cfg["color"] == "gray" else (h, w, 3), 128, np.uint8)
    x = normalize(img[None], cfg["mean"], cfg["std"])

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(args.model), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feed = {inp.name: x.astype(np.float16) if inp.type == "tensor(float16)" else x}
    for _ in range(args.warmup):
        sess.run(None, feed)
    samples = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(None, feed)
        samples.append((time.perf_counter() - t) * 1e3)
    s = sorted(samples)
    lat = {"median": percentile(s, 50), "p90": percentile(s, 90), "p99": percentile(s, 99),
           "mean": sum(s) / len(s), "min": s[0]}
    report = {
        "runtime": f"onnxruntime {ort.__version__}", "model": str(args.model), "threads": args.threads,
        "input_shape": list(x.shape), "warmup": args.warmup, "runs": args.runs, "latency_ms": lat,
        "fps": 1000 / lat["median"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['runtime']} on {args.model} ({args.threads} thread(s), input {report['input_shape']})")
        print("latency ms   " + "  ".join(f"{k} {v:.2f}" for k, v in lat.items()))
        print(f"throughput   {report['fps']:.2f} FPS (1 / median)")
        print(f"peak RSS     {report['peak_rss_mib']:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

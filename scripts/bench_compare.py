#!/usr/bin/env python3
"""Alternate `edgeseg bench` and `scripts/bench_ort.py` on the same model, input
and thread count, and print each runtime's median latency and the ratio.

    cargo build --release
    python3 scripts/bench_compare.py --model models/unet_defects.onnx --threads 1 2 --rounds 5

Each round runs edgeseg then onnxruntime (fresh processes, `--runs` timed runs
each); the figure per runtime is the median of the per-round medians, so slow
drift of the machine hits both alike. Ratio = edgeseg / onnxruntime (< 1: edgeseg faster).
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_json(cmd):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/unet_defects.onnx"))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "edgeseg")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if not args.bin.exists():
        raise SystemExit(f"{args.bin} not found: run `cargo build --release` (or pass --bin)")
    rows = []
    for threads in args.threads:
        common = ["--model", args.model, "--threads", threads, "--runs", args.runs, "--json"]
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(run_json([args.bin, "bench", *map(str, common)])["latency_ms"]["median"])
            theirs.append(run_json([sys.executable, "scripts/bench_ort.py", *map(str, common)])["latency_ms"]["median"])
        e, o = statistics.median(ours), statistics.median(theirs)
        rows.append({"model": str(args.model), "threads": threads, "edgeseg_ms": round(e, 2),
                     "onnxruntime_ms": round(o, 2), "ratio": round(e / o, 3), "rounds": args.rounds})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'model':<28} {'threads':>7} {'edgeseg ms':>11} {'ORT ms':>9} {'ratio':>7}")
        for r in rows:
            print(f"{Path(r['model']).name:<28} {r['threads']:>7} {r['edgeseg_ms']:>11.2f} {r['onnxruntime_ms']:>9.2f} {r['ratio']:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

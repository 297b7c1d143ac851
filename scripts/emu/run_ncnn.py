"""ncnn inference for scripts/emu_bench.py, run inside an emulated Python (numpy + ncnn only).

    python run_ncnn.py --param M.ncnn.param --bin M.ncnn.bin --input x.npy --outputs out0,out1 \\
        --threads T --runs N --mode fp32|default [--save-outputs out.npz]

`--mode fp32`: fp16 and bf16 storage, packing and arithmetic off (ncnn turns fp16 on by
default on ARMv8.2 cores with asimdhp, such as the Cortex-A76, and on x86 with F16C).
`--mode default`: ncnn's own defaults. Both set num_threads=T; everything else (Winograd,
packing, OpenMP spin time) stays at ncnn's default. The input is the host-prepared tensor
(batch 1, NCHW) loaded from .npy; one extractor per run, every output extracted.
Prints one JSON line describing the run.
"""
import argparse
import json

import ncnn
import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--param", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--input-name", default="in0")
    p.add_argument("--outputs", required=True, help="comma-separated blob names")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--mode", choices=["fp32", "default"], required=True)
    p.add_argument("--save-outputs")
    a = p.parse_args()
    x = np.ascontiguousarray(np.load(a.input)[0], dtype=np.float32)
    net = ncnn.Net()
    net.opt.num_threads = a.threads
    if a.mode == "fp32":
        net.opt.use_fp16_packed = False
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_arithmetic = False
        net.opt.use_bf16_storage = False
        if hasattr(net.opt, "use_bf16_packed"):
            net.opt.use_bf16_packed = False
    if net.load_param(a.param) != 0 or net.load_model(a.bin) != 0:
        raise SystemExit(f"ncnn could not load {a.param} / {a.bin}")
    mat = ncnn.Mat(x)
    names = a.outputs.split(",")
    outs = {}
    for _ in range(a.runs):
        ex = net.create_extractor()
        ex.input(a.input_name, mat)
        for n in names:
            ret, m = ex.extract(n)
            if ret != 0:
                raise SystemExit(f"ncnn extract {n} failed ({ret})")
            outs[n] = m
        del ex
    if a.save_outputs:
        np.savez(a.save_outputs, **{n: np.array(m)[None] for n, m in outs.items()})
    opt = net.opt
    settings = {k: getattr(opt, k) for k in dir(opt) if k.startswith("use_") and isinstance(getattr(opt, k), bool)}
    settings["num_threads"] = opt.num_threads
    settings["openmp_blocktime"] = getattr(opt, "openmp_blocktime", None)
    cpu = {k: bool(getattr(ncnn, k)()) for k in dir(ncnn) if k.startswith("cpu_support_")}
    print(json.dumps({"runtime": f"ncnn {ncnn.__version__}", "mode": a.mode, "threads": a.threads, "runs": a.runs,
                      "input_shape": list(x.shape), "options": settings, "cpu_support": cpu}))


if __name__ == "__main__":
    main()

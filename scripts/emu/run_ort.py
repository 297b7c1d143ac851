"""onnxruntime inference for scripts/emu_bench.py, run inside an emulated Python (numpy + onnxruntime only).

    python run_ort.py --model M.onnx --input x.npy --threads T --runs N [--save-outputs out.npz]

Same session options as scripts/bench_ort.py: intra_op_num_threads=T, inter_op_num_threads=1,
sequential execution, CPU provider, spinning at onnxruntime's default. The input tensor is
prepared by the host (bench_ort.py's mid-gray frame) and loaded from .npy. Prints one JSON
line describing the run.
"""
import argparse
import json

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--save-outputs")
    a = p.parse_args()
    x = np.load(a.input)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    outs = None
    for _ in range(a.runs):
        outs = sess.run(None, feed)
    if a.save_outputs:
        np.savez(a.save_outputs, **{o.name: v for o, v in zip(sess.get_outputs(), outs)})
    print(json.dumps({"runtime": f"onnxruntime {ort.__version__}", "threads": a.threads, "runs": a.runs,
                      "input_shape": list(x.shape), "providers": sess.get_providers()}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tiny hand-built int8 QDQ model for the Rust tests of per-channel quantized convolutions.

    python3 scripts/make_perchannel_test_model.py [--out tests/models] [--seed 0]

writes (deterministic for a given --seed; see tests/models/README.md):

    perchannel_qdq.onnx            the model (opset 17, edgeseg metadata, a few KB)
    perchannel_qdq.input.f32       the fixed input, float32 little-endian, [1, 3, 20, 20]
    perchannel_qdq.ort.f32         onnxruntime's output (default optimisation: its int8
                                   QLinearConv kernels), float32 LE, [1, 3, 10, 10]
    perchannel_qdq.ort_noopt.f32   onnxruntime with graph optimisation off: the QDQ graph
                                   executed literally in float (DQ -> float Conv -> Q)

The graph is built node by node with onnx.helper, in exactly the form
onnxruntime.quantization.quantize_static (QDQ, uint8 asymmetric activations, int8
symmetric per-channel weights) gives the committed models (scripts/quantize.py):

    x -> Q -> DQ -> Conv 3x3 pad 1, 3->8     (per-channel weight scales 1e-4 .. 1e-1, shuffled)
      -> Q -> DQ -> Relu -> Q(zp 0) -> DQ
      -> Conv 3x3 stride 2 pad 1, group 2, 8->8          20x20 -> 10x10
      -> Q -> DQ -> Conv 3x3 stride 2 pad 1, depthwise (group 8)   -> 5x5
      -> Q -> DQ -> ConvTranspose 2x2 stride 2, 8->8 (weight [Cin, Cout, 2, 2], DQ axis 1) -> 10x10
      -> Q -> DQ -> Conv 1x1, 8->3 (per-channel) -> Q -> DQ -> logits [1, 3, 10, 10]

Weights: DequantizeLinear(int8 initializer, float32 scale [Cout], int8 zero point [Cout] of
zeros, axis 0; axis 1 for ConvTranspose), values in -127..127. Biases:
DequantizeLinear(int32 initializer, scale = s_x * s_w [Cout], int32 zero point zeros, axis 0).
Activations: QuantizeLinear/DequantizeLinear with scalar float32 scale and scalar uint8 zero
point, from the min/max of the float graph on the reference input (ORT's MinMax rule:
range widened to include 0, scale = (max - min) / 255, zp = round(-min / scale)).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_meta import set_metadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["background", "blob", "edge"]
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]

# name, op, out channels, in channels per group, kernel, stride, pad, group, weight scales (per out channel)
LAYERS = [
    ("conv1", "Conv", 8, 3, 3, 1, 1, 1, np.logspace(-4, -1, 8)[[7, 0, 4, 2, 6, 1, 5, 3]]),
    ("conv2", "Conv", 8, 4, 3, 2, 1, 2, np.logspace(-3.5, -2, 8)[[2, 6, 0, 4, 7, 1, 5, 3]]),
    ("dw3", "Conv", 8, 1, 3, 2, 1, 8, np.logspace(-2.5, -1.5, 8)[[5, 1, 7, 3, 0, 6, 2, 4]]),
    ("up4", "ConvTranspose", 8, 8, 2, 2, 0, 1, np.logspace(-2.5, -1.5, 8)[[1, 4, 6, 0, 3, 7, 2, 5]]),
    ("head5", "Conv", 3, 8, 1, 1, 0, 1, np.array([0.008, 0.025, 0.015])),
]


def qparams(lo: float, hi: float):
    """ORT's asymmetric uint8 parameters for a calibrated range."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    zp = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
    return scale, zp


def make_weights(rng):
    """int8 weights (each channel reaching +-127, never -128), their scales and int32-ready float biases."""
    out = {}
    for name, op, cout, cin_g, k, _, _, group, scales in LAYERS:
        if op == "ConvTranspose":
            shape = (cin_g * group, cout // group, k, k)  # [Cin, Cout/g, kh, kw]
            axis = 1
        else:
            shape = (cout, cin_g, k, k)
            axis = 0
        # Bell-shaped like trained weights (most values small), so activations stay O(1..10).
        q = np.clip(np.round(rng.standard_normal(shape) * 24), -127, 127).astype(np.int8)
        # Make sure every output channel uses the full symmetric range, as calibration would.
        idx = [slice(None)] * 4
        for c in range(cout):
            idx[axis] = c
            flat = q[tuple(idx)].reshape(-1)
            flat[rng.integers(flat.size)] = 127 if rng.random() < 0.5 else -127
            q[tuple(idx)] = flat.reshape(q[tuple(idx)].shape)
        bias = (rng.standard_normal(cout) * 0.05).astype(np.float32)
        out[name] = {"q": q, "scale": scales.astype(np.float32), "axis": axis, "bias": bias}
    return out


def float_graph(weights):
    """The network in float (dequantized weights), every intermediate exposed: for calibration."""
    nodes, inits, outs = [], [], []
    x = "image"
    for name, op, cout, cin_g, k, stride, pad, group, _ in LAYERS:
        w = weights[name]
        bshape = [1] * 4
        bshape[w["axis"]] = -1
        wf = (w["q"].astype(np.float32) * w["scale"].reshape(bshape)).astype(np.float32)
        inits += [numpy_helper.from_array(wf, f"{name}.w"), numpy_helper.from_array(w["bias"], f"{name}.b")]
        nodes.append(helper.make_node(op, [x, f"{name}.w", f"{name}.b"], [f"{name}.y"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group))
        x = f"{name}.y"
        outs.append(x)
        if name == "conv1":
            nodes.append(helper.make_node("Relu", [x], ["relu1.y"], name="relu1"))
            x = "relu1.y"
            outs.append(x)
    g = helper.make_graph(nodes, "float", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 20, 20])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), outs


def qdq_graph(weights, ranges):
    nodes, inits = [], []

    def const(arr, name):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def qdq(tensor):
        """tensor -> QuantizeLinear -> DequantizeLinear; returns the DQ output and the scale."""
        s, z = qparams(*ranges[tensor])
        sn, zn = const(np.array(s, np.float32), f"{tensor}_scale"), const(np.array(z, np.uint8), f"{tensor}_zero_point")
        nodes.append(helper.make_node("QuantizeLinear", [tensor, sn, zn], [f"{tensor}_q"], name=f"{tensor}_QuantizeLinear"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tensor}_q", sn, zn], [f"{tensor}_dq"], name=f"{tensor}_DequantizeLinear"))
        return f"{tensor}_dq", s

    x, sx = qdq("image")
    for name, op, cout, cin_g, k, stride, pad, group, _ in LAYERS:
        w = weights[name]
        wq = const(w["q"], f"{name}.w_quantized")
        ws = const(w["scale"], f"{name}.w_scale")
        wz = const(np.zeros(cout, np.int8), f"{name}.w_zero_point")
        nodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz], [f"{name}.w_dq"], name=f"{name}.w_DequantizeLinear", axis=w["axis"]))
        bs = (np.float32(sx) * w["scale"]).astype(np.float32)
        bq = np.round(w["bias"] / bs).astype(np.int32)
        const(bq, f"{name}.b_quantized")
        const(bs, f"{name}.b_scale")
        const(np.zeros(cout, np.int32), f"{name}.b_zero_point")
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}.b_quantized", f"{name}.b_scale", f"{name}.b_zero_point"],
                                      [f"{name}.b_dq"], name=f"{name}.b_DequantizeLinear", axis=0))
        nodes.append(helper.make_node(op, [x, f"{name}.w_dq", f"{name}.b_dq"], [f"{name}.y"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group))
        x, sx = qdq(f"{name}.y")
        if name == "conv1":
            nodes.append(helper.make_node("Relu", [x], ["relu1.y"], name="relu1"))
            x, sx = qdq("relu1.y")
    nodes.append(helper.make_node("Identity", [x], ["logits"], name="logits"))
    g = helper.make_graph(nodes, "perchannel_qdq",
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 20, 20])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 10, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                          producer_name="scripts/make_perchannel_test_model.py")
    return m


def run(model: onnx.ModelProto, x: np.ndarray, optimize: bool):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    if not optimize:
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])
    return s.run(None, {"image": x})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "models")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    weights = make_weights(rng)
    # A fixed "normalised image": (u - mean) / std with u in 0..1, float32.
    u = rng.random((1, 3, 20, 20), dtype=np.float32)
    x = ((u - np.float32(0.5)) / np.float32(0.25)).astype(np.float32)

    fmodel, names = float_graph(weights)
    vals = dict(zip(names, run(fmodel, x, optimize=False)))
    vals["image"] = x
    ranges = {k: (float(v.min()), float(v.max())) for k, v in vals.items()}
    model = qdq_graph(weights, ranges)
    set_metadata(model, {
        "edgeseg.schema": "1", "edgeseg.task": "semantic", "edgeseg.classes": CLASSES,
        "edgeseg.input_layout": "NCHW", "edgeseg.input_size": "20x20", "edgeseg.color": "rgb",
        "edgeseg.mean": MEAN, "edgeseg.std": STD, "edgeseg.resize": "stretch",
        "edgeseg.output_activation": "softmax", "edgeseg.name": "perchannel-qdq-test", "edgeseg.version": "1",
        "edgeseg.trained_on": "nothing: random int8 weights (scripts/make_perchannel_test_model.py)",
        "edgeseg.quantization": json.dumps({
            "format": "QDQ", "activations": "uint8 per-tensor asymmetric", "weights": "int8 per-channel symmetric",
            "calibration": {"method": "MinMax", "images": 1, "split": "reference input", "seed": args.seed},
            "float_model": None, "float_sha256": None}),
    })
    onnx.checker.check_model(model, full_check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "perchannel_qdq.onnx"
    onnx.save(model, str(path))
    y = run(model, x, optimize=True)[0]
    y_ref = run(model, x, optimize=False)[0]
    assert y.shape == (1, 3, 10, 10) and y.dtype == np.float32
    x.astype("<f4").tofile(args.out / "perchannel_qdq.input.f32")
    y.astype("<f4").tofile(args.out / "perchannel_qdq.ort.f32")
    y_ref.astype("<f4").tofile(args.out / "perchannel_qdq.ort_noopt.f32")
    step = float(qparams(*ranges["head5.y"])[0])
    yf = vals["head5.y"]
    print(f"wrote {path} ({path.stat().st_size} bytes) and its .input.f32 / .ort.f32 / .ort_noopt.f32")
    print(f"output quantization step {step:.6g}; ORT optimised vs. unoptimised: max |diff| "
          f"{np.abs(y - y_ref).max():.6g} ({np.abs(y - y_ref).max() / step:.2f} steps, "
          f"{int((y != y_ref).sum())} of {y.size} values differ); vs. the float network: max |diff| "
          f"{np.abs(y - yf).max():.6g}, output range [{yf.min():.4g}, {yf.max():.4g}]")
    print("argmax classes (optimised):", np.bincount(y[0].argmax(0).ravel(), minlength=3).tolist())
    for name, *_ in LAYERS:
        s = weights[name]["scale"]
        print(f"  {name}: weight {list(weights[name]['q'].shape)} axis {weights[name]['axis']}, "
              f"scales {s.min():.2e}..{s.max():.2e} (x{s.max() / s.min():.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

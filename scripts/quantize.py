#!/usr/bin/env python3
"""Static int8 quantization (ONNX QDQ) of a committed float model, with its model card.

    python3 scripts/quantize.py --model models/unet_defects.onnx --data data/defects
    python3 scripts/quantize.py --model models/deeplabv3plus_defects.onnx --data data/defects
    python3 scripts/quantize.py --model models/yolov8n_seg_defects.onnx --data data/defects

writes models/NAME_int8.onnx and models/NAME_int8.card.json. The data set comes from
`python3 scripts/gen_data.py --out data/defects --seed 0 --train 800 --val 100 --test 100`.

What it does, in order:

 1. Loads the float model and folds every float16 initializer -> Cast(to=FLOAT)
    (onnx_meta.store_weights_fp16) back into a float32 initializer, so that Conv
    weights are initializers feeding the Conv directly.
 2. onnxruntime.quantization.shape_inference.quant_pre_process (ORT basic graph
    optimisation + shape inference); the symbolic shape step is skipped if it fails.
 3. quantize_static: QDQ format, activations uint8 per-tensor asymmetric, weights int8
    symmetric per output channel (Conv axis 0; ConvTranspose axis 1, its weight being
    [Cin, Cout/group, kh, kw]), reduce_range off, bias int32 with scale = s_x * s_w[c]
    and zero point 0 (ORT's default). Only Conv, ConvTranspose, MatMul and Gemm are
    quantized: every other op (Relu, Sigmoid, Mul, Resize, ...) stays float, between
    the Q/DQ pairs of its neighbours.
    Calibration: --images (default 64) images of the TRAIN split, drawn with
    numpy.random.default_rng(--seed), preprocessed exactly as the runtime does
    (semantic: edgeseg metadata + dataset.normalize; ultralytics models: RGB,
    letterbox to imgsz with OpenCV-exact bilinear and gray 114, /255).
 4. Checks the result (weight zero points 0, int8 weights, per-channel axis, bias
    scale = input scale x weight scale, dequantized weights within half a step of the
    float ones), copies the float model's metadata_props unchanged and adds
    `edgeseg.quantization` (JSON: format, types, calibration, float model and sha256).
 5. Measures accuracy with onnxruntime (semantic: evaluate.py, mIoU on --split,
    default test; instance models: no Python mask-mAP path, use `edgeseg eval`), the
    output fidelity (SQNR vs. the float model) and writes the card.

--method minmax|percentile|entropy picks the calibration; --method auto (default)
tries MinMax and, when the int8 model loses more than --max-drop (0.01 = 1 point of
mIoU over the defect classes) against the float model on the --select-split (val: the
choice never looks at the test split), also Percentile (--percentile, 99.999) and
Entropy, keeping the best. Instance models have no Python metric: auto means MinMax.

Other modes:
    python3 scripts/quantize.py --inspect models/unet_defects_int8.onnx   # QDQ structure report
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset import load_image, normalize, split_files  # noqa: E402
from evaluate import evaluate  # noqa: E402
from onnx_meta import read_metadata, sha256  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OP_TYPES = ["Conv", "ConvTranspose", "MatMul", "Gemm"]
METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}
METHOD_NAMES = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
LETTERBOX_FILL = 114


# ------------------------------------------------------------- preprocessing (as the runtime)


def input_config(path: Path) -> dict:
    """Input description from edgeseg metadata, or from ultralytics' (RGB, 0..1, letterbox to imgsz)."""
    meta = read_metadata(path)
    if "imgsz" in meta and "edgeseg.input_size" not in meta:
        h, w = json.loads(meta["imgsz"])
        return {"task": "instance", "size": (w, h), "color": "rgb", "mean": [0.0], "std": [1.0],
                "resize": "letterbox", "classes": list(_ultralytics_names(meta["names"]))}
    return {
        "task": meta.get("edgeseg.task", "semantic"),
        "size": tuple(int(v) for v in meta["edgeseg.input_size"].split("x")),
        "color": meta.get("edgeseg.color", "rgb"),
        "mean": json.loads(meta.get("edgeseg.mean", "[0]")),
        "std": json.loads(meta.get("edgeseg.std", "[1]")),
        "resize": meta.get("edgeseg.resize", "stretch"),
        "classes": json.loads(meta["edgeseg.classes"]),
    }


def _ultralytics_names(text: str):
    import ast
    names = ast.literal_eval(text)
    return [names[k] for k in sorted(names)]


def _cv_axis(src: int, dst: int, clamp_weights: bool):
    """Taps of OpenCV's INTER_LINEAR on one axis (src/model/resample_cv.rs, line for line)."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        lo = s < 0
        f[lo], s[lo] = 0, 0
        hi = s >= src - 1
        f[hi], s[hi] = 0, src - 1
    s0, s1 = np.clip(s, 0, src - 1), np.clip(s + 1, 0, src - 1)
    a0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)  # round half to even
    a1 = np.rint(f * np.float32(2048)).astype(np.int64)
    return s0, s1, a0, a1


def cv_resize(img: np.ndarray, dw: int, dh: int) -> np.ndarray:
    """cv2.resize(img, (dw, dh), interpolation=INTER_LINEAR) on uint8 HxW[xC], bit-exact like edgeseg."""
    squeeze = img.ndim == 2
    src = img[:, :, None] if squeeze else img
    sh, sw = src.shape[:2]
    if (sw, sh) == (dw, dh):
        return img.copy()
    if sw == 2 * dw and sh == 2 * dh:  # OpenCV's exact-2x shortcut to INTER_AREA
        s = src.astype(np.uint32)
        out = ((s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2] + 2) >> 2).astype(np.uint8)
    else:
        x0, x1, a0, a1 = _cv_axis(sw, dw, True)
        y0, y1, b0, b1 = _cv_axis(sh, dh, False)
        s = src.astype(np.int64)
        rows = s[:, x0, :] * a0[None, :, None] + s[:, x1, :] * a1[None, :, None]
        v = (((rows[y0] >> 4) * b0[:, None, None]) >> 16) + (((rows[y1] >> 4) * b1[:, None, None]) >> 16)
        out = np.clip((v + 2) >> 2, 0, 255).astype(np.uint8)
    return out[:, :, 0] if squeeze else out


def letterbox(img: np.ndarray, tw: int, th: int) -> np.ndarray:
    """Ultralytics-style letterbox as edgeseg's preprocess.rs: scale to fit, centre, pad with 114."""
    sh, sw = img.shape[:2]
    s = min(np.float32(tw) / np.float32(sw), np.float32(th) / np.float32(sh))
    nw = int(min(max(math.floor(np.float32(sw) * s + 0.5), 1), tw))
    nh = int(min(max(math.floor(np.float32(sh) * s + 0.5), 1), th))
    px, py = (tw - nw) // 2, (th - nh) // 2
    canvas = np.full((th, tw) + img.shape[2:], LETTERBOX_FILL, np.uint8)
    canvas[py:py + nh, px:px + nw] = cv_resize(img, nw, nh)
    return canvas


def preprocess(path: Path, cfg: dict) -> np.ndarray:
    """One image file -> the model's 1xCxHxW float32 input, as edgeseg computes it."""
    img = load_image(path, "gray" if cfg["color"] == "gray" else "rgb")
    if cfg["color"] == "bgr":
        img = img[:, :, ::-1]
    w, h = cfg["size"]
    if img.shape[:2] != (h, w):
        if cfg["resize"] != "letterbox":
            raise SystemExit(f"{path} is not {w}x{h}; only letterbox resizing is implemented here")
        img = letterbox(img, w, h)
    return normalize(np.ascontiguousarray(img)[None], cfg["mean"], cfg["std"])


def calibration_files(data: Path, n: int, seed: int):
    files = [img for img, _ in split_files(data, "train")]
    if n > len(files):
        raise SystemExit(f"--images {n}: the train split has only {len(files)} images")
    pick = np.sort(np.random.default_rng(seed).choice(len(files), size=n, replace=False))
    return [files[i] for i in pick]


class Reader(CalibrationDataReader):
    """Preloaded inputs; set_range lets ORT calibrate in chunks (CalibStridedMinMax) to bound memory."""

    def __init__(self, input_name: str, arrays):
        self.input_name, self.arrays = input_name, arrays
        self.set_range(0, len(arrays))

    def __len__(self):
        return len(self.arrays)

    def set_range(self, start_index: int, end_index: int):
        self._it = iter(self.arrays[start_index:end_index])

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}


# ------------------------------------------------------------- graph preparation


def fold_fp16_casts(model: onnx.ModelProto) -> int:
    """Replace float16 initializer -> Cast(to=FLOAT) by one float32 initializer; returns the count."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    uses = collections.Counter(n for node in g.node for n in node.input)
    keep, folded = [], 0
    for node in g.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        src = inits.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if src is not None and src.data_type == TensorProto.FLOAT16 and to == TensorProto.FLOAT:
            arr = numpy_helper.to_array(src).astype(np.float32)
            g.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            uses[src.name] -= 1
            if uses[src.name] == 0:
                g.initializer.remove(src)
            folded += 1
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    return folded


def prepare(float_path: Path, tmp: Path) -> tuple[Path, dict]:
    model = onnx.load(str(float_path))
    folded = fold_fp16_casts(model)
    onnx.checker.check_model(model)
    folded_path = tmp / "folded.onnx"
    onnx.save(model, str(folded_path))
    pre_path = tmp / "pre.onnx"
    info = {"fp16_casts_folded": folded, "symbolic_shape_inference": True}
    try:
        quant_pre_process(str(folded_path), str(pre_path))
    except Exception as e:  # noqa: BLE001 -- ORT raises assorted errors from the symbolic step
        print(f"quant_pre_process with symbolic shape inference failed ({e}); retrying without it", flush=True)
        info["symbolic_shape_inference"] = False
        quant_pre_process(str(folded_path), str(pre_path), skip_symbolic_shape=True)
    return pre_path, info


def chunk(n: int, at_most: int = 8) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def quantize(pre_path: Path, out_path: Path, reader: Reader, method: str, percentile: float):
    extra = {
        "ActivationSymmetric": False,
        "WeightSymmetric": True,
        "CalibTensorRangeSymmetric": False,  # asymmetric activation ranges for every method
        "CalibStridedMinMax": chunk(len(reader)),  # collect in chunks: bounded memory, same MinMax result
        # Defaults kept explicit: bias -> int32, scale = s_x * s_w, zero point 0.
        "QuantizeBias": True,
    }
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    quantize_static(
        str(pre_path), str(out_path), reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=OP_TYPES,
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=METHODS[method],
        extra_options=extra,
    )


# ------------------------------------------------------------- checks and structure


def _consts(model: onnx.ModelProto) -> dict:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def verify(qmodel: onnx.ModelProto, float_model: onnx.ModelProto) -> dict:
    """Assert the properties the Rust side relies on; returns a summary."""
    c = _consts(qmodel)
    fc = _consts(float_model)
    producer = {o: n for n in qmodel.graph.node for o in n.output}
    fnodes = {n.name: n for n in float_model.graph.node}
    checked = 0
    worst_bias_rel = 0.0
    for node in qmodel.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        dq_w = producer.get(node.input[1])
        assert dq_w is not None and dq_w.op_type == "DequantizeLinear", f"{node.name}: weight is not dequantized"
        w, ws = c[dq_w.input[0]], c[dq_w.input[1]]
        wz = c[dq_w.input[2]] if len(dq_w.input) > 2 and dq_w.input[2] else np.zeros_like(ws, np.int8)
        assert w.dtype == np.int8 and wz.dtype == np.int8, f"{node.name}: weight {w.dtype}, zero point {wz.dtype}"
        assert not wz.any(), f"{node.name}: non-zero weight zero point"
        axis = _attr(dq_w, "axis", 1)
        want = 0 if node.op_type == "Conv" else 1
        assert ws.ndim == 1 and ws.size == w.shape[want] and axis == want, \
            f"{node.name}: weight scale {ws.shape} on axis {axis}, weight {w.shape}"
        assert w.min() >= -127, f"{node.name}: -128 in a symmetric weight"
        fnode = fnodes[node.name]
        fw = fc[fnode.input[1]]
        bshape = [1] * w.ndim
        bshape[want] = -1
        err = np.abs(w.astype(np.float32) * ws.reshape(bshape) - fw) / ws.reshape(bshape)
        assert err.max() <= 0.5 + 1e-3, f"{node.name}: dequantized weight off by {err.max():.3f} steps"
        if len(node.input) > 2 and node.input[2]:
            dq_b = producer[node.input[2]]
            b, bs = c[dq_b.input[0]], c[dq_b.input[1]]
            assert b.dtype == np.int32, f"{node.name}: bias {b.dtype}"
            if len(dq_b.input) > 2 and dq_b.input[2]:
                assert not c[dq_b.input[2]].any(), f"{node.name}: non-zero bias zero point"
            dq_x = producer[node.input[0]]
            xs = c[dq_x.input[1]]
            rel = np.abs(bs - xs * ws) / (xs * ws)
            worst_bias_rel = max(worst_bias_rel, float(rel.max()))
            assert rel.max() < 1e-6, f"{node.name}: bias scale is not s_x * s_w"
        checked += 1
    return {"conv_nodes_checked": checked, "bias_scale_max_rel_diff_vs_sx_sw": worst_bias_rel}


def structure(model: onnx.ModelProto) -> dict:
    """What the QDQ graph looks like, in numbers (printed by --inspect, stored in the card)."""
    g = model.graph
    c = _consts(model)
    producer = {o: n for n in g.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    ops = collections.Counter(n.op_type for n in g.node)
    out = {"opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
           "op_counts": dict(sorted(ops.items(), key=lambda kv: -kv[1]))}
    # Q/DQ parameter types
    kinds = collections.Counter()
    dq_nonconst_perchannel = 0
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        const_in = n.input[0] in c
        s = c.get(n.input[1])
        z = c.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        key = (n.op_type, "const" if const_in else "activation",
               str(c[n.input[0]].dtype) if const_in else "-",
               f"scale {s.dtype} shape {list(s.shape)}" if s is not None else "scale non-constant",
               f"zp {z.dtype} shape {list(z.shape)}{' all 0' if not z.any() else ''}" if z is not None else "no zp",
               f"axis={_attr(n, 'axis', 1)}" if s is not None and s.ndim > 0 else "")
        kinds[" | ".join(k for k in key if k)] += 1
        if n.op_type == "DequantizeLinear" and not const_in and s is not None and s.size > 1:
            dq_nonconst_perchannel += 1
    out["qdq_kinds"] = dict(kinds)
    out["dequantize_linear_with_activation_input_and_per_channel_scale"] = dq_nonconst_perchannel

    def describe_input(name):
        p = producer.get(name)
        if p is None:
            return "graph input" if name not in c else "initializer"
        return p.op_type

    # For each quantized op: what feeds it and what consumes its output.
    patterns = collections.Counter()
    per_ct = []
    for n in g.node:
        if n.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        x = producer.get(n.input[0])
        xsrc = describe_input(x.input[0]) if x is not None and x.op_type == "DequantizeLinear" else "-"
        qx = producer.get(x.input[0]) if x is not None and x.op_type == "DequantizeLinear" else None
        before = f"{describe_input(qx.input[0])}->Q->DQ" if qx is not None and qx.op_type == "QuantizeLinear" else f"{xsrc}"
        outs = consumers.get(n.output[0], [])
        after = ",".join(sorted(o.op_type for o in outs)) or "graph output"
        after2 = ""
        if len(outs) == 1 and outs[0].op_type == "QuantizeLinear":
            dqs = consumers.get(outs[0].output[0], [])
            after2 = "->" + ",".join(sorted(d.op_type for d in dqs))
            nxt = sorted({cc.op_type for d in dqs for cc in consumers.get(d.output[0], [])}) or ["graph output"]
            after2 += "->{" + ",".join(nxt) + "}"
        patterns[f"{before} -> {n.op_type} -> {after}{after2}"] += 1
        if n.op_type == "ConvTranspose":
            dq_w = producer[n.input[1]]
            ws = c[dq_w.input[1]]
            per_ct.append({"node": n.name, "weight": list(c[dq_w.input[0]].shape), "axis": _attr(dq_w, "axis", 1),
                           "scale_len": int(ws.size), "group": _attr(n, "group", 1),
                           "kernel": _attr(n, "kernel_shape"), "strides": _attr(n, "strides")})
    out["patterns"] = dict(patterns.most_common())
    out["conv_transpose"] = per_ct
    # Float ops left between QDQ pairs
    out["float_ops"] = {k: v for k, v in ops.items()
                        if k not in ("QuantizeLinear", "DequantizeLinear", "Conv", "ConvTranspose", "MatMul", "Gemm")}
    return out


def parameter_count(model: onnx.ModelProto) -> int:
    """Elements of the quantized weights and biases (the int8 and int32 tensors DequantizeLinear reads)."""
    c = {i.name: i for i in model.graph.initializer}
    return int(sum(int(np.prod(c[n.input[0]].dims)) for n in model.graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in c))


# ------------------------------------------------------------- accuracy and fidelity


def sqnr(float_path: Path, q_path: Path, arrays) -> dict:
    """Signal-to-quantization-noise ratio (dB) of each output over the given inputs."""
    def sess(p):
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        return ort.InferenceSession(str(p), o, providers=["CPUExecutionProvider"])
    fs, qs = sess(float_path), sess(q_path)
    name = fs.get_inputs()[0].name
    sig = collections.defaultdict(float)
    noise = collections.defaultdict(float)
    for x in arrays:
        for o, a, b in zip(fs.get_outputs(), fs.run(None, {name: x}), qs.run(None, {name: x})):
            sig[o.name] += float(np.square(a.astype(np.float64)).sum())
            noise[o.name] += float(np.square(a.astype(np.float64) - b).sum())
    return {k: round(10 * math.log10(sig[k] / max(noise[k], 1e-30)), 2) for k in sig}


def metric_block(report: dict) -> dict:
    return {"miou_defects": round(report["miou_defects"], 4), "miou": round(report["miou"], 4),
            "pixel_accuracy": round(report["pixel_accuracy"], 5),
            "iou": {k: round(v, 4) for k, v in report["iou"].items()},
            "images": report["images"], "evaluated_with": f"onnxruntime {ort.__version__}"}


# ------------------------------------------------------------- main


def finalize(q_path: Path, out: Path, float_model: onnx.ModelProto, quant_meta: dict):
    q = onnx.load(str(q_path))
    del q.metadata_props[:]
    for p in float_model.metadata_props:
        q.metadata_props.add(key=p.key, value=p.value)
    q.metadata_props.add(key="edgeseg.quantization", value=json.dumps(quant_meta))
    # ORT's optimiser (quant_pre_process) declares every domain it knows; keep the used ones.
    used = {n.domain for n in q.graph.node} | {""}
    keep = [o for o in q.opset_import if o.domain in used or (o.domain == "ai.onnx" and "" in used)]
    del q.opset_import[:]
    q.opset_import.extend(keep)
    onnx.checker.check_model(q)
    onnx.save(q, str(out))
    return q


def rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def inspect(path: Path):
    m = onnx.load(str(path))
    print(json.dumps({"file": str(path), "bytes": path.stat().st_size, "parameters": parameter_count(m),
                      "metadata": {p.key: p.value for p in m.metadata_props if p.key.startswith("edgeseg.")},
                      **structure(m)}, indent=2))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="float model, e.g. models/unet_defects.onnx")
    p.add_argument("--out", type=Path, help="default: MODEL with _int8 before .onnx")
    p.add_argument("--data", type=Path, default=Path("data/defects"))
    p.add_argument("--images", type=int, default=64, help="calibration images from the train split (default 64)")
    p.add_argument("--seed", type=int, default=0, help="which train images (numpy default_rng seed)")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto", help="calibration method (default auto)")
    p.add_argument("--percentile", type=float, default=99.999, help="for --method percentile")
    p.add_argument("--max-drop", type=float, default=0.01, help="auto: accepted mIoU(defects) loss (default 0.01)")
    p.add_argument("--select-split", default="val", help="split auto compares methods on (default val)")
    p.add_argument("--split", default="test", help="split the card's accuracy is measured on (default test)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads for the evaluations")
    p.add_argument("--no-card", action="store_true", help="do not write OUT.card.json")
    p.add_argument("--max-bytes", type=int, default=15_000_000, help="refuse larger outputs (default 15 MB)")
    p.add_argument("--inspect", type=Path, metavar="QDQ_MODEL", help="print the QDQ structure of a model and exit")
    args = p.parse_args()
    if args.inspect:
        inspect(args.inspect)
        return 0
    if not args.model:
        p.error("--model is required")
    t0 = time.time()
    fmodel_path = args.model
    out = args.out or fmodel_path.with_name(fmodel_path.stem + "_int8.onnx")
    cfg = input_config(fmodel_path)
    semantic = cfg["task"] == "semantic"
    float_model = onnx.load(str(fmodel_path))
    files = calibration_files(args.data, args.images, args.seed)
    input_name = float_model.graph.input[0].name
    arrays = [preprocess(f, cfg) for f in files]
    select_files = [img for img, _ in split_files(args.data, args.select_split)]
    fidelity_inputs = [preprocess(f, cfg) for f in select_files[:16]]
    methods = ([args.method] if args.method != "auto" else ["minmax", "percentile", "entropy"] if semantic
               else ["minmax"])

    with tempfile.TemporaryDirectory(prefix="edgeseg-quant-") as tmpd:
        tmp = Path(tmpd)
        pre_path, prep_info = prepare(fmodel_path, tmp)
        pre_model = onnx.load(str(pre_path))
        float_select = evaluate(fmodel_path, args.data, args.select_split, threads=args.threads) if semantic and len(methods) > 1 else None
        tried, best = [], None
        for method in methods:
            q_path = tmp / f"q_{method}.onnx"
            t = time.time()
            quantize(pre_path, q_path, Reader(input_name, arrays), method, args.percentile)
            entry = {"method": METHOD_NAMES[method], "seconds": round(time.time() - t, 1)}
            if method == "percentile":
                entry["percentile"] = args.percentile
            if float_select is not None:
                r = evaluate(q_path, args.data, args.select_split, threads=args.threads)
                entry[f"{args.select_split}_miou_defects"] = round(r["miou_defects"], 4)
                entry["drop"] = round(float_select["miou_defects"] - r["miou_defects"], 4)
            print(f"calibration {entry}", flush=True)
            tried.append(entry)
            if best is None or ("drop" in entry and entry["drop"] < best[1]["drop"]):
                best = (q_path, entry, method)
            if "drop" not in entry or entry["drop"] <= args.max_drop:
                break
        q_path, chosen, method = best
        quant_meta = {
            "format": "QDQ",
            "activations": "uint8 per-tensor asymmetric",
            "weights": "int8 per-channel symmetric",
            "calibration": {"method": chosen["method"], "images": args.images, "split": "train", "seed": args.seed},
            "float_model": fmodel_path.name,
            "float_sha256": sha256(fmodel_path),
        }
        if method == "percentile":
            quant_meta["calibration"]["percentile"] = args.percentile
        qmodel = finalize(q_path, out, float_model, quant_meta)
        checks = verify(qmodel, pre_model)
    size = out.stat().st_size
    if size > args.max_bytes:
        raise SystemExit(f"{out}: {size} bytes, over --max-bytes {args.max_bytes}")
    print(f"wrote {out} ({size} bytes), checks {checks}", flush=True)

    fid = sqnr(fmodel_path, out, fidelity_inputs)
    card = {}
    float_card_path = fmodel_path.with_suffix(".card.json")
    fcard = json.loads(float_card_path.read_text()) if float_card_path.exists() else {}
    cmd = f"python3 scripts/quantize.py --model {rel(fmodel_path)} --data {args.data}"
    if args.method != "auto":
        cmd += f" --method {args.method}"
    for flag, val, default in (("--images", args.images, 64), ("--seed", args.seed, 0), ("--percentile", args.percentile, 99.999)):
        if val != default:
            cmd += f" {flag} {val}"
    card.update({
        "name": f"{fcard.get('name', fmodel_path.stem)}-int8",
        "file": out.name,
        "float_model": fmodel_path.name,
        "architecture": fcard.get("architecture", ""),
        "task": cfg["task"],
        "classes": fcard.get("classes", cfg["classes"]),
        "input": fcard.get("input", {}),
        "parameters": parameter_count(qmodel),
        "float_parameters": fcard.get("parameters"),
        "weights_storage": "int8 per-output-channel symmetric weights (zero point 0), int32 biases "
                           "(scale = input scale x weight scale, zero point 0), uint8 per-tensor asymmetric "
                           "activations: ONNX QuantizeLinear/DequantizeLinear (QDQ) around Conv/ConvTranspose "
                           "only; every other op stays float32",
        "quantization": {
            **quant_meta,
            "tool": f"onnxruntime.quantization.quantize_static (onnxruntime {ort.__version__}), onnx {onnx.__version__}",
            "op_types_to_quantize": OP_TYPES,
            "per_channel_axis": {"Conv": 0, "ConvTranspose": 1},
            "reduce_range": False,
            "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True, "CalibTensorRangeSymmetric": False,
                              "CalibStridedMinMax": chunk(args.images), "QuantizeBias": True},
            "preparation": {**prep_info, "quant_pre_process": "ORT basic optimisation + shape inference"},
            "calibration_files": [f"train/images/{f.name}" for f in files],
            "tried": tried,
            "selection": (f"first method within {args.max_drop} mIoU(defects) of the float model on the "
                          f"{args.select_split} split, else the best" if len(methods) > 1 else "as requested"),
            "checks": checks,
        },
        "graph": structure(qmodel),
        "file_bytes": size,
        "sha256": sha256(out),
        "reproduce": cmd,
    })
    gen = args.data / "meta.json"
    if gen.exists():
        g = json.loads(gen.read_text())
        card["data"] = {"root": str(args.data), "generator": {k: v for k, v in g.items() if k != "families"}}
    card["fidelity"] = {"sqnr_db_vs_float": fid,
                        "inputs": f"first {len(fidelity_inputs)} images of the {args.select_split} split"}
    if semantic:
        fr = evaluate(fmodel_path, args.data, args.split, threads=args.threads)
        qr = evaluate(out, args.data, args.split, threads=args.threads)
        card["metrics"] = {args.split: metric_block(qr)}
        card["float_metrics"] = {args.split: metric_block(fr)}
        card["delta_vs_float"] = {args.split: {
            "miou_defects": round(qr["miou_defects"] - fr["miou_defects"], 4),
            "miou": round(qr["miou"] - fr["miou"], 4),
            "iou": {k: round(qr["iou"][k] - fr["iou"][k], 4) for k in qr["iou"]}}}
        card["metrics_command"] = f"python3 scripts/evaluate.py --model {rel(out)} --data {args.data} --split {args.split}"
        print(f"{args.split}: float mIoU(defects) {fr['miou_defects']:.4f}, int8 {qr['miou_defects']:.4f} "
              f"(delta {qr['miou_defects'] - fr['miou_defects']:+.4f}); mIoU(all) {fr['miou']:.4f} -> {qr['miou']:.4f}")
        for k in qr["iou"]:
            print(f"  {k:<12} float {fr['iou'][k]:.4f}  int8 {qr['iou'][k]:.4f}")
    else:
        card["metrics"] = {args.split: "not measured here: no Python mask-mAP decoder; run "
                           f"`edgeseg eval --model {rel(out)} --data {args.data} --split {args.split}`"}
        if "test" in fcard:
            card["float_metrics"] = {"test": fcard["test"]}
    card["seconds"] = round(time.time() - t0, 1)
    print(f"fidelity (SQNR dB vs float): {fid}")
    if not args.no_card:
        card_path = out.with_suffix(".card.json")
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {card_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

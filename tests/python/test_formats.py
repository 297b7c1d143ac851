"""Models as other tools export them (issue 27), against onnxruntime on the same file.

Each model is built here with random weights (onnx.helper, no framework), has no
edgeseg metadata, and takes 64x64 RGB inputs scaled to 0..1 (edgeseg's defaults
for a model without metadata); the test images are 64x64 too, so no resampling
separates the two runtimes and masks must agree on >= 99.9 % of pixels.
"""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

SIZE = 64
AGREEMENT = 0.999


def _images(tmp_path, count=4, seed=0):
    """Smooth random RGB images: low-frequency noise, so masks have regions."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(count):
        coarse = rng.uniform(0, 255, size=(8, 8, 3)).astype(np.uint8)
        img = Image.fromarray(coarse).resize((SIZE, SIZE), Image.BILINEAR)
        img.save(folder / f"img{i}.png")
    return folder


def _network(final, classes, dtype=np.float32, seed=1):
    """conv3x3(3->16) relu, conv3x3(16->16) SiLU, conv1x1(16->classes), then `final`."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def init(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(dtype), name)

    inits = [
        init("w1", (16, 3, 3, 3), 0.5), init("b1", (16,), 0.1),
        init("w2", (16, 16, 3, 3), 0.15), init("b2", (16,), 0.1),
        init("w3", (classes, 16, 1, 1), 0.4), init("b3", (classes,), 0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["g2"]),
        helper.make_node("Mul", ["c2", "g2"], ["s2"]),
        helper.make_node("Conv", ["s2", "w3", "b3"], ["logits"]),
    ]
    if final == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["y"]))
    elif final == "softmax":
        nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["logits"], ["y"]))
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("x", elem, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", elem, [1, classes, SIZE, SIZE])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test_formats")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ort_outputs(path, folder, dtype=np.float32):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = {}
    for img in sorted(folder.glob("*.png")):
        x = np.asarray(Image.open(img).convert("RGB"), dtype=np.float32) / 255.0
        x = x.transpose(2, 0, 1)[None].astype(dtype)
        out[img.stem] = session.run(None, {"x": x})[0][0].astype(np.float32)
    return out


def _edgeseg_masks(edgeseg, model, folder, out, *flags):
    edgeseg("infer", folder, "--model", model, "--out", out, *flags)
    return {p.name.removesuffix(".mask.png"): np.asarray(Image.open(p)) for p in sorted(out.glob("*.mask.png"))}


def _agreement(ours, reference):
    assert ours.keys() == reference.keys() and ours
    same = sum(int((ours[k] == reference[k]).sum()) for k in ours)
    total = sum(reference[k].size for k in ours)
    return same / total


@pytest.mark.parametrize("threshold", [None, 0.42])
def test_binary_model_ending_in_sigmoid_is_not_activated_twice(edgeseg, tmp_path, threshold):
    model = tmp_path / "binary_sigmoid.onnx"
    onnx.save(_network("sigmoid", 1), model)
    folder = _images(tmp_path)
    probs = _ort_outputs(model, folder)
    cut = 0.5 if threshold is None else threshold
    reference = {k: (p[0] > cut).astype(np.uint8) for k, p in probs.items()}
    fraction = np.mean([m.mean() for m in reference.values()])
    assert 0.05 < fraction < 0.95, f"the test network should give a mixed mask, got {fraction:.3f} foreground"
    flags = [] if threshold is None else ["--binary-threshold", str(threshold)]
    ours = _edgeseg_masks(edgeseg, model, folder, tmp_path / "out", *flags)
    assert _agreement(ours, reference) >= AGREEMENT

    info = json.loads(edgeseg("inspect-model", model, "--json", *flags).stdout)["resolved"]
    assert info["activation"] == "none"
    assert "Sigmoid" in info["activation_reason"]
    assert info["binary_threshold"] == pytest.approx(cut)


def test_activation_flag_overrides_the_graph(edgeseg, tmp_path):
    """`--activation sigmoid` on a graph ending in Sigmoid applies it again (as asked):
    every pixel's sigmoid(p) > 0.5, so all foreground."""
    model = tmp_path / "binary_sigmoid.onnx"
    onnx.save(_network("sigmoid", 1), model)
    folder = _images(tmp_path, count=1)
    ours = _edgeseg_masks(edgeseg, model, folder, tmp_path / "out", "--activation", "sigmoid")
    assert all(m.min() == 1 for m in ours.values())
    bad = edgeseg("inspect-model", model, "--activation", "tanh", check=False)
    assert bad.returncode != 0 and "softmax, sigmoid, none" in bad.stderr


@pytest.mark.parametrize("final", ["softmax", "logits"])
def test_multiclass_model_with_or_without_final_softmax(edgeseg, tmp_path, final):
    model = tmp_path / f"{final}.onnx"
    onnx.save(_network(final, 4), model)
    folder = _images(tmp_path)
    reference = {k: p.argmax(axis=0).astype(np.uint8) for k, p in _ort_outputs(model, folder).items()}
    ours = _edgeseg_masks(edgeseg, model, folder, tmp_path / "out")
    assert _agreement(ours, reference) >= AGREEMENT
    info = json.loads(edgeseg("inspect-model", model, "--json").stdout)["resolved"]
    assert info["activation"] == ("none" if final == "softmax" else "softmax")


def test_float16_model_computes_in_float32(edgeseg, tmp_path):
    """A graph stored entirely in float16 (weights, input, output), as `half=True`
    exports are: edgeseg widens it to float32 at load and its class map agrees
    with onnxruntime's own float16 run."""
    model = tmp_path / "half.onnx"
    onnx.save(_network("logits", 4, dtype=np.float16), model)
    folder = _images(tmp_path)
    reference = {k: p.argmax(axis=0).astype(np.uint8) for k, p in _ort_outputs(model, folder, np.float16).items()}
    ours = _edgeseg_masks(edgeseg, model, folder, tmp_path / "out")
    assert _agreement(ours, reference) >= AGREEMENT
    info = json.loads(edgeseg("inspect-model", model, "--json").stdout)
    assert info["half_to_f32"]["tensors"] == 6
    assert info["half_to_f32"]["types"] == 2
    assert info["f32_rewrite"]["left_to_tract"] or info["f32_rewrite"]["convolutions"] > 0


def test_committed_unet_converted_to_float16_scores_as_onnxruntime(edgeseg, root, tmp_path):
    """The U-Net through onnxconverter-common (scripts/export_fp16.py): edgeseg's
    eval on the samples equals onnxruntime's fp16 run of the same file."""
    import subprocess
    import sys

    from evaluate import evaluate

    half = tmp_path / "unet_fp16.onnx"
    subprocess.run([sys.executable, root / "scripts" / "export_fp16.py", root / "models" / "unet_defects.onnx", half], check=True, capture_output=True)
    ours = json.loads(edgeseg("eval", "--model", half, "--data", "samples", "--json").stdout)
    ref = evaluate(half, root / "samples")
    assert ours["images"] == ref["images"] > 0
    assert abs(ours["miou"] - ref["miou"]) <= 1e-3
    info = json.loads(edgeseg("inspect-model", half, "--json").stdout)
    assert info["half_to_f32"]["tensors"] > 0 and info["compute_precision"] == "float"


def _attention_network(seed=2):
    """A float network with the ops onnxruntime's QOperator format covers: conv,
    max pool, SiLU (QLinearSigmoid, QLinearMul), residual add, channel attention
    (QLinearGlobalAveragePool), nearest upsampling and a skip concat (QLinearConcat)."""
    rng = np.random.default_rng(seed)

    def init(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("w1", (8, 3, 3, 3), 0.5), init("b1", (8,), 0.1),
        init("w2", (8, 8, 3, 3), 0.2), init("b2", (8,), 0.1),
        init("wa", (8, 8, 1, 1), 0.3), init("ba", (8,), 0.1),
        init("w3", (4, 16, 3, 3), 0.2), init("b3", (4,), 0.1),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["g2"]),
        helper.make_node("Mul", ["c2", "g2"], ["s2"]),
        helper.make_node("Add", ["s2", "p1"], ["a2"]),
        helper.make_node("GlobalAveragePool", ["a2"], ["gap"]),
        helper.make_node("Conv", ["gap", "wa", "ba"], ["att"]),
        helper.make_node("Sigmoid", ["att"], ["gate"]),
        helper.make_node("Mul", ["a2", "gate"], ["m2"]),
        helper.make_node("Resize", ["m2", "", "up"], ["u2"], mode="nearest"),
        helper.make_node("Concat", ["u2", "r1"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w3", "b3"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, SIZE, SIZE])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test_formats")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_qoperator_model_runs_on_int8_kernels_and_agrees_with_onnxruntime(edgeseg, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    folder = _images(tmp_path, count=6)
    float_path, q_path = tmp_path / "float.onnx", tmp_path / "qoperator.onnx"
    onnx.save(_attention_network(), float_path)
    arrays = [
        (np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0).transpose(2, 0, 1)[None]
        for p in sorted(folder.glob("*.png"))
    ]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({"x": a} for a in arrays)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(float_path), str(q_path), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    ops = {(n.domain, n.op_type) for n in onnx.load(q_path).graph.node}
    for op in ["QLinearConv", "QLinearMul", "QLinearAdd", "QLinearSigmoid", "QLinearGlobalAveragePool", "QLinearConcat"]:
        assert any(o == op for _, o in ops), f"onnxruntime did not write {op}: {sorted(ops)}"

    reference = {k: p.argmax(axis=0).astype(np.uint8) for k, p in _ort_outputs(q_path, folder).items()}
    ours = _edgeseg_masks(edgeseg, q_path, folder, tmp_path / "out")
    assert _agreement(ours, reference) >= AGREEMENT
    info = json.loads(edgeseg("inspect-model", q_path, "--json").stdout)
    assert info["qoperator_to_qdq"]["rewritten"]["QLinearConv"] == 4
    assert info["int8_rewrite"]["convolutions"] == 4, info["int8_rewrite"]
    assert info["compute_precision"] in ("int8", "mixed")


def test_dynamically_quantized_model_agrees_with_onnxruntime(edgeseg, tmp_path):
    """quantize_dynamic: DynamicQuantizeLinear + ConvInteger, scales computed per frame.
    tract runs these ops itself (not edgeseg's int8 kernels, which take static scales)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = _images(tmp_path)
    float_path, q_path = tmp_path / "float.onnx", tmp_path / "dynamic.onnx"
    onnx.save(_attention_network(), float_path)
    quantize_dynamic(str(float_path), str(q_path), weight_type=QuantType.QUInt8)
    ops = {n.op_type for n in onnx.load(q_path).graph.node}
    assert {"DynamicQuantizeLinear", "ConvInteger"} <= ops, sorted(ops)
    reference = {k: p.argmax(axis=0).astype(np.uint8) for k, p in _ort_outputs(q_path, folder).items()}
    ours = _edgeseg_masks(edgeseg, q_path, folder, tmp_path / "out")
    assert _agreement(ours, reference) >= AGREEMENT

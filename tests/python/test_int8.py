"""The committed int8 models: their cards, their metadata, and edgeseg computing them in int8."""

import json

import pytest

from evaluate import evaluate
from onnx_meta import read_metadata, sha256

MODELS = ["unet_defects", "deeplabv3plus_defects", "yolov8n_seg_defects"]


@pytest.mark.parametrize("name", MODELS)
def test_int8_card_matches_the_file_and_keeps_float_accuracy(root, name):
    model = root / "models" / f"{name}_int8.onnx"
    card = json.loads(model.with_name(f"{name}_int8.card.json").read_text())
    assert card["sha256"] == sha256(model), f"{model} changed without its card: rerun scripts/quantize.py"
    assert card["file_bytes"] == model.stat().st_size
    assert model.stat().st_size < 16 * 1024 * 1024, "committed models stay under ~15 MB"
    float_meta = read_metadata(root / "models" / f"{name}.onnx")
    meta = read_metadata(model)
    # The runtime reads the same keys from both files: nothing was lost in quantization.
    assert {k: meta[k] for k in float_meta} == float_meta
    q = json.loads(meta["edgeseg.quantization"])
    assert q["format"] == "QDQ" and "per-channel" in q["weights"]
    metric = "miou_defects" if "mask_map50" not in card["metrics"]["test"] else "mask_map50_95"
    got, ref = card["metrics"]["test"][metric], card["float_metrics"]["test"][metric]
    assert abs(got - ref) <= 0.01, f"{name}: int8 {metric} {got} vs float {ref}"


@pytest.mark.parametrize("name", MODELS)
def test_edgeseg_computes_every_convolution_in_int8(edgeseg, name):
    info = json.loads(edgeseg("inspect-model", f"models/{name}_int8.onnx", "--json").stdout)
    assert info["compute_precision"] == "int8"
    assert info["graph"]["float_compute_ops"] == 0
    assert info["int8_rewrite"]["left_in_float"] == []
    assert info["int8_rewrite"]["convolutions"] == info["graph"]["int8_compute_ops"]


@pytest.mark.parametrize("name", ["unet_defects", "deeplabv3plus_defects"])
def test_int8_eval_agrees_with_onnxruntime(edgeseg, root, name):
    model = f"models/{name}_int8.onnx"
    ours = json.loads(edgeseg("eval", "--model", model, "--data", "samples", "--json").stdout)
    ref = evaluate(root / model, root / "samples")
    # onnxruntime's QLinearConv re-quantizes with its own rounding: boundary pixels may
    # differ (tests/golden.rs holds the masks to >= 99.9 % equal pixels).
    for key in ("miou", "miou_defects", "pixel_accuracy"):
        assert abs(ours[key] - ref[key]) <= 2e-3, key

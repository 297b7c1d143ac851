"""edgeseg's outputs read back with the Python tools a user would use."""

import json

import numpy as np
import pytest
import pycocotools.mask as mask_util
from PIL import Image

from evaluate import evaluate

MODEL = "models/unet_defects.onnx"


def test_infer_rle_decodes_with_pycocotools(edgeseg, root, tmp_path):
    edgeseg("infer", "samples/images", "--model", MODEL, "--out", tmp_path)
    reports = sorted(tmp_path.glob("*.json"))
    assert reports, "no reports written"
    checked = 0
    for path in reports:
        report = json.loads(path.read_text())
        mask = np.asarray(Image.open(tmp_path / report["mask_png"]))
        assert mask.shape == (report["height"], report["width"])
        for cls in report["classes"]:
            rle = {"size": cls["rle"]["size"], "counts": cls["rle"]["counts"].encode()}
            decoded = mask_util.decode(rle).astype(bool)
            assert np.array_equal(decoded, mask == cls["id"]), f"{path.name} class {cls['name']}"
            assert int(mask_util.area(rle)) == cls["area"]
            x, y, w, h = mask_util.toBbox(rle)
            assert [int(x), int(y), int(w), int(h)] == cls["bbox"]
            checked += 1
        # Classes absent from the report are absent from the mask.
        present = {c["id"] for c in report["classes"]}
        assert set(np.unique(mask)) - {0} == present
    assert checked > 0, "samples should contain defects"


def test_eval_matches_evaluate_py(edgeseg, root):
    ours = json.loads(edgeseg("eval", "--model", MODEL, "--data", "samples", "--json").stdout)
    ref = evaluate(root / MODEL, root / "samples")
    assert ours["images"] == ref["images"]
    for key in ("miou", "miou_defects", "pixel_accuracy"):
        assert abs(ours[key] - ref[key]) <= 1e-4, key
    for c in ours["per_class"]:
        assert abs(c["iou"] - ref["iou"][c["name"]]) <= 1e-4, c["name"]


def test_inspect_reports_metadata_and_precision(edgeseg):
    info = json.loads(edgeseg("inspect-model", MODEL, "--json").stdout)
    assert info["resolved"]["classes"] == ["background", "scratch", "spot", "crack", "pit"]
    assert info["metadata_props"]["edgeseg.task"] == "semantic"
    assert info["compute_precision"] == "float"
    assert info["graph"]["float_compute_ops"] > 0


@pytest.mark.parametrize("name", ["unet_defects", "deeplabv3plus_defects"])
def test_model_card_matches_the_committed_file(root, name):
    from onnx_meta import read_metadata, sha256

    model = root / "models" / f"{name}.onnx"
    card = json.loads(model.with_suffix(".card.json").read_text())
    assert card["sha256"] == sha256(model), f"{model} changed without its card: retrain or rerun evaluate.py --card"
    assert card["file_bytes"] == model.stat().st_size
    assert model.stat().st_size < 16 * 1024 * 1024, "committed models stay under ~15 MB"
    assert card["metrics"]["test"]["miou_defects"] >= 0.80
    meta = read_metadata(model)
    assert json.loads(meta["edgeseg.classes"]) == card["classes"]
    assert json.loads(meta["edgeseg.mean"]) == card["input"]["mean"]

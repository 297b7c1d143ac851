"""Instance models (YOLO-seg): edgeseg against ultralytics' own predictor and
pycocotools on the committed model, and the YOLOv5 output layout."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, TensorProto
from pycocotools import mask as mask_utils

MODEL = "models/yolov8n_seg_defects.onnx"


@pytest.fixture(scope="module")
def test_split(root, tmp_path_factory):
    """The synthetic test split (seed 0) with its COCO ground truth."""
    data = tmp_path_factory.mktemp("defects")
    proc = subprocess.run(
        [sys.executable, "scripts/gen_data.py", "--out", str(data), "--train", "0", "--val", "0", "--test", "100"],
        cwd=root, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return data


def decode(rle):
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def edgeseg_instances(edgeseg, model, images, out):
    edgeseg("infer", *images, "--model", model, "--out", out, "--no-overlay")
    return {p.stem: json.loads((out / f"{p.stem}.json").read_text())["instances"] for p in images}


def test_instances_match_ultralytics_predictor(root, test_split, edgeseg, tmp_path):
    """Same ONNX file, 20 test images: every instance ultralytics' predictor
    (onnxruntime backend) finds, edgeseg finds too, with mask IoU >= 0.9 and
    score within 1e-3, and nothing more."""
    os.environ["YOLO_OFFLINE"] = "1"
    ultralytics = pytest.importorskip("ultralytics")
    from ultralytics.utils import ops

    images = sorted((test_split / "test" / "images").glob("*.png"))[:20]
    ours = edgeseg_instances(edgeseg, root / MODEL, images, tmp_path)
    yolo = ultralytics.YOLO(str(root / MODEL), task="segment")
    matched, worst_iou, worst_score = 0, 1.0, 0.0
    for path in images:
        r = yolo.predict(str(path), conf=0.25, iou=0.7, verbose=False)[0]
        theirs = []
        if r.masks is not None:
            masks = ops.scale_masks(r.masks.data[None].float(), r.orig_shape)[0] > 0.5
            theirs = [(int(c), float(s), masks[i].numpy()) for i, (c, s) in enumerate(zip(r.boxes.cls, r.boxes.conf))]
        mine = ours[path.stem]
        assert len(mine) == len(theirs), f"{path.name}: edgeseg {len(mine)} instances, ultralytics {len(theirs)}"
        used = set()
        for cls, score, mask in theirs:
            best = None
            for j, inst in enumerate(mine):
                if j in used or inst["class_id"] != cls:
                    continue
                m = decode(inst["rle"])
                iou = (m & mask).sum() / max(1, (m | mask).sum())
                if best is None or iou > best[0]:
                    best = (iou, j, abs(inst["score"] - score))
            assert best is not None, f"{path.name}: no edgeseg instance of class {cls}"
            iou, j, dscore = best
            used.add(j)
            assert iou >= 0.9 and dscore <= 1e-3, f"{path.name} class {cls}: IoU {iou:.3f}, score diff {dscore:.2e}"
            matched += 1
            worst_iou, worst_score = min(worst_iou, iou), max(worst_score, dscore)
    print(f"{matched} instances matched; worst mask IoU {worst_iou:.4f}, worst score difference {worst_score:.2e}")
    assert matched >= 20


def test_mask_map_matches_pycocotools(root, test_split, edgeseg, tmp_path):
    """edgeseg eval's COCO mask mAP equals pycocotools' COCOeval on the same
    detections, and the committed model reaches mask mAP@0.5 >= 0.70."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import contextlib
    import io

    preds = tmp_path / "preds.json"
    ours = json.loads(edgeseg("eval", "--model", root / MODEL, "--data", test_split, "--split", "test", "--json", "--predictions", preds).stdout)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(test_split / "annotations" / "instances_test.json"))
        ev = COCOeval(gt, gt.loadRes(str(preds)), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    print(f"mask mAP50 {ours['map50']:.4f} (pycocotools {ev.stats[1]:.4f}), mAP50-95 {ours['map50_95']:.4f} (pycocotools {ev.stats[0]:.4f})")
    assert abs(ours["map50_95"] - ev.stats[0]) <= 1e-6
    assert abs(ours["map50"] - ev.stats[1]) <= 1e-6
    assert ours["map50"] >= 0.70


def to_yolov5_layout(src, dst):
    """Rewrite a YOLOv8-seg export ([1, 4+nc+32, N], no objectness) into the
    YOLOv5-seg signature [1, N, 5+nc+32]: objectness = best class score and
    class scores divided by it, so obj x cls gives the same scores back."""
    m = onnx.load(str(src))
    g = m.graph
    names = {p.key: p.value for p in m.metadata_props}
    nc = len(eval(names["names"]))  # noqa: S307 - a dict literal ultralytics wrote
    out = g.output[0]
    n = out.type.tensor_type.shape.dim[2].dim_value
    v8 = out.name
    out_name = "output0_v5"
    c = lambda name, vals: helper.make_tensor(name, TensorProto.INT64, [len(vals)], vals)  # noqa: E731
    g.initializer.extend([c("s_box", [0]), c("e_box", [4]), c("s_cls", [4]), c("e_cls", [4 + nc]), c("s_coef", [4 + nc]), c("e_coef", [4 + nc + 32]), c("ax", [2])])
    g.node.extend([
        helper.make_node("Transpose", [v8], ["t"], perm=[0, 2, 1]),
        helper.make_node("Slice", ["t", "s_box", "e_box", "ax"], ["box"]),
        helper.make_node("Slice", ["t", "s_cls", "e_cls", "ax"], ["cls"]),
        helper.make_node("Slice", ["t", "s_coef", "e_coef", "ax"], ["coef"]),
        helper.make_node("ReduceMax", ["cls"], ["obj"], axes=[2], keepdims=1),
        helper.make_node("Div", ["cls", "obj"], ["cls_v5"]),
        helper.make_node("Concat", ["box", "obj", "cls_v5", "coef"], [out_name], axis=2),
    ])
    del g.output[0]
    g.output.insert(0, helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, n, 5 + nc + 32]))
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def test_yolov5_layout_decodes_like_v8(root, edgeseg, tmp_path):
    v5 = tmp_path / "yolov5_layout.onnx"
    to_yolov5_layout(root / MODEL, v5)
    shapes = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in onnx.load(str(v5)).graph.output]
    assert shapes[0][2] == 5 + 4 + 32 and shapes[0][1] > shapes[0][2], shapes
    images = sorted((root / "samples" / "images").glob("*.png"))
    a = edgeseg_instances(edgeseg, root / MODEL, images, tmp_path / "v8")
    b = edgeseg_instances(edgeseg, v5, images, tmp_path / "v5")
    total = 0
    for stem in a:
        assert [i["class_id"] for i in a[stem]] == [i["class_id"] for i in b[stem]], stem
        for x, y in zip(a[stem], b[stem]):
            assert abs(x["score"] - y["score"]) <= 1e-5
            assert x["rle"] == y["rle"] and np.allclose(x["bbox"], y["bbox"], atol=1e-3)
            total += 1
    assert total >= 8, f"only {total} instances on the samples"


def test_yolo_training_smoke_exports_a_model_edgeseg_runs(root, edgeseg, tmp_path):
    """scripts/train_yolo.py end to end on a tiny split: builds YOLOv8n-seg from
    its yaml (nothing downloaded), trains one epoch, exports ONNX that edgeseg
    loads from ultralytics' metadata alone."""
    pytest.importorskip("ultralytics")
    data = tmp_path / "tiny"
    for args in (["scripts/gen_data.py", "--out", data, "--train", 16, "--val", 4, "--test", 2],
                 ["scripts/train_yolo.py", "--data", data, "--epochs", 1, "--imgsz", 128, "--batch", 8, "--workers", 0,
                  "--project", tmp_path / "runs", "--out", tmp_path / "smoke.onnx"]):
        proc = subprocess.run([sys.executable, *map(str, args)], cwd=root, capture_output=True, text=True,
                              env={**os.environ, "YOLO_OFFLINE": "1"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = json.loads(edgeseg("inspect-model", tmp_path / "smoke.onnx", "--json").stdout)
    assert info["resolved"]["task"] == "instance", info["resolved"]
    assert info["resolved"]["classes"] == ["scratch", "spot", "crack", "pit"]
    edgeseg("infer", data / "test" / "images", "--model", tmp_path / "smoke.onnx", "--out", tmp_path / "out")
    assert len(list((tmp_path / "out").glob("*.json"))) == 2

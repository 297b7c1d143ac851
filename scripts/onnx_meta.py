"""ONNX export helpers: edgeseg metadata and compact weight storage.

edgeseg reads these `metadata_props` so that a model file describes itself:
the runtime needs no flags for a model exported here. Keys (all strings):

  edgeseg.schema            "1"
  edgeseg.task              "semantic" | "instance"
  edgeseg.classes           JSON list of class names, index = class id
  edgeseg.input_layout      "NCHW" | "NHWC"
  edgeseg.input_size        "WIDTHxHEIGHT", e.g. "256x256"
  edgeseg.color             "gray" | "rgb" | "bgr"
  edgeseg.mean, edgeseg.std JSON lists, one per channel, on the 0..1 pixel scale
  edgeseg.resize            "stretch" | "letterbox"
  edgeseg.output_activation "softmax" | "sigmoid" | "none"  (what turns outputs into scores)
  edgeseg.name, edgeseg.version, edgeseg.trained_on  free text
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def set_metadata(model: onnx.ModelProto, meta: dict) -> None:
    del model.metadata_props[:]
    for key, value in meta.items():
        if not isinstance(value, str):
            value = json.dumps(value)
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value


def read_metadata(path: Path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def store_weights_fp16(model: onnx.ModelProto, min_elements: int = 1024) -> int:
    """Store large float32 initializers as float16 followed by a Cast to float32.

    The graph still computes in float32 (tract and onnxruntime fold the Cast at
    load time); only the file halves, which keeps the classic 7.8 M-parameter
    U-Net near the 15 MB budget for committed models. Returns the number of
    tensors converted.
    """
    graph = model.graph
    casts, converted = [], 0
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            continue
        half_name = init.name + "__fp16"
        half = numpy_helper.from_array(arr.astype(np.float16), half_name)
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half_name], [init.name],
                                      to=TensorProto.FLOAT, name=init.name + "__cast"))
        converted += 1
    # Cast nodes first so the node list stays topologically sorted.
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return converted


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

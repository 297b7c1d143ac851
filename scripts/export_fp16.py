#!/usr/bin/env python3
"""Write a float16 copy of an ONNX model, as fp16 exports from other tools are.

    python3 scripts/export_fp16.py models/unet_defects.onnx /tmp/unet_fp16.onnx [--keep-io-types]

Every weight, activation and (unless --keep-io-types) the input and output are
float16, converted by onnxconverter-common's `convert_float_to_float16` (what
onnxruntime's documentation points fp16 users to). edgeseg's own exports keep
their weights in float16 behind `Cast` nodes; those are folded to float32 first,
because the converter would otherwise declare the casts' outputs float16 while
they still cast to float32 (a file onnxruntime refuses). Metadata is kept.

Used to test and benchmark edgeseg on fp16 graphs (tests/python/test_formats.py,
README "Model formats").
"""

import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnxconverter_common import float16


def fold_weight_casts(model: onnx.ModelProto) -> int:
    """Replace `Cast(initializer, to=FLOAT)` by a float32 initializer; returns how many."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    folded = 0
    keep = []
    for node in graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and to == TensorProto.FLOAT and node.input[0] in inits:
            values = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(values, node.output[0]))
            folded += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    live = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)
    return folded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--keep-io-types", action="store_true", help="keep a float32 input and output (casts inside)")
    args = ap.parse_args()
    model = onnx.load(args.model)
    folded = fold_weight_casts(model)
    half = float16.convert_float_to_float16(model, keep_io_types=args.keep_io_types, check_fp16_ready=False)
    onnx.checker.check_model(half)
    onnx.save(half, args.out)
    print(f"{args.out}: float16 copy of {args.model} ({folded} weight casts folded first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

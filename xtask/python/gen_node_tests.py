"""Writes the ONNX backend node test cases of the installed `onnx` package to a folder.

Each case becomes <out>/<name>/model.onnx plus test_data_set_0/{input,output}_N.pb, the
layout of onnx's own `backend-test-tools generate-data`, which covers only model cases.
"""

import os
import shutil
import sys
import warnings

import numpy as np
from onnx import numpy_helper
from onnx.backend.test.case import node


def write_value(path, value, type_proto, name):
    if type_proto.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, name)
    elif type_proto.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, name)
    elif type_proto.HasField("map_type"):
        proto = numpy_helper.from_dict(value, name)
    elif isinstance(value, np.ndarray) or np.isscalar(value):
        proto = numpy_helper.from_array(np.asarray(value), name)
    else:
        proto = value
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def main(out):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases()
    for case in cases:
        case_dir = os.path.join(out, case.name)
        os.makedirs(case_dir)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        graph = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets):
            d = os.path.join(case_dir, f"test_data_set_{i}")
            os.makedirs(d)
            for j, v in enumerate(inputs):
                write_value(os.path.join(d, f"input_{j}.pb"), v, graph.input[j].type, graph.input[j].name)
            for j, v in enumerate(outputs):
                write_value(os.path.join(d, f"output_{j}.pb"), v, graph.output[j].type, graph.output[j].name)
    print(f"wrote {len(cases)} node test cases to {out}")


if __name__ == "__main__":
    main(sys.argv[1])

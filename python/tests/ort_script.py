"""A script written for onnxruntime, kept as users write them; test_ort_script.py runs it
unchanged with `onnxruntime` resolving to crossover."""

import sys

import numpy as np
import onnxruntime as ort


def main(model_path: str, out_path: str) -> None:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = [p for p in ("CPUExecutionProvider",) if p in ort.get_available_providers()]
    sess = ort.InferenceSession(model_path, sess_options=so, providers=providers)
    inp = sess.get_inputs()[0]
    print("input", inp.name, inp.shape, inp.type)
    for o in sess.get_outputs():
        print("output", o.name, o.shape, o.type)
    shape = [d if isinstance(d, int) else 2 for d in inp.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    names = [o.name for o in sess.get_outputs()]
    try:
        sess.run(names, {"not_an_input": x})
        print("no error for a wrong input name")
    except Exception as e:
        print("wrong input name raises", "Exception" if isinstance(e, Exception) else "?")
    result = sess.run(names, {inp.name: x})
    print("producer", sess.get_modelmeta().producer_name, "providers", sess.get_providers())
    print("result", result[0].shape, result[0].dtype)
    np.save(out_path, result[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Golden data: models built with onnx.helper, run by onnxruntime.

For every case folder under <out>, writes model.onnx (unless the folder already has one,
as for crossover's built-in models exported by `cargo xtask test`), seeded inputs as
input_<name>.npy and onnxruntime's outputs as output_<name>.npy.
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
rng = np.random.default_rng(0)


def weight(name, shape, scale=0.1):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def save(model, folder):
    onnx.checker.check_model(model)
    os.makedirs(folder, exist_ok=True)
    onnx.save(model, os.path.join(folder, "model.onnx"))


def mlp():
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["logits"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "golden-mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [weight("w1", [64, 128]), weight("b1", [128]), weight("w2", [10, 128]), weight("b2", [10])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def cnn():
    nodes = [
        helper.make_node("Conv", ["x", "c1w", "c1b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2w"], ["c2"], kernel_shape=[3, 3], strides=[2, 2], group=2, auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["p2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fcw", "fcb"], ["logits"], transB=1),
    ]
    bn = [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn_s"),
        weight("bn_b", [8]),
        weight("bn_m", [8]),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn_v"),
    ]
    graph = helper.make_graph(
        nodes,
        "golden-cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [weight("c1w", [8, 3, 3, 3], 0.3), weight("c1b", [8]), *bn, weight("c2w", [16, 4, 3, 3], 0.3),
         weight("fcw", [10, 16]), weight("fcb", [10])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def bert_block(hidden=64, heads=4, ffn=128):
    d = hidden // heads
    ints = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    scalar = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.float32), name)
    nodes = [
        # Additive mask [B, 1, 1, S]: 0 where attended, -10000 on padding.
        helper.make_node("Cast", ["mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "mask_f"], ["inv"]),
        helper.make_node("Mul", ["inv", "neg"], ["add_mask2"]),
        helper.make_node("Unsqueeze", ["add_mask2", "mask_axes"], ["add_mask"]),
    ]
    for n in ["q", "k", "v"]:
        nodes += [
            helper.make_node("MatMul", ["x", f"w{n}"], [f"{n}0"]),
            helper.make_node("Add", [f"{n}0", f"b{n}"], [f"{n}1"]),
            helper.make_node("Reshape", [f"{n}1", "heads_shape"], [f"{n}2"]),
            helper.make_node("Transpose", [f"{n}2"], [f"{n}h"], perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3]),
        ]
    nodes += [
        helper.make_node("MatMul", ["qh", "kh"], ["s0"]),
        helper.make_node("Div", ["s0", "sqrt_d"], ["s1"]),
        helper.make_node("Add", ["s1", "add_mask"], ["s2"]),
        helper.make_node("Softmax", ["s2"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "vh"], ["c0"]),
        helper.make_node("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["c1", "merge_shape"], ["c2"]),
        helper.make_node("MatMul", ["c2", "wo"], ["o0"]),
        helper.make_node("Add", ["o0", "bo"], ["o1"]),
        helper.make_node("Add", ["o1", "x"], ["r1"]),
        helper.make_node("LayerNormalization", ["r1", "ln1_g", "ln1_b"], ["n1"], axis=-1, epsilon=1e-12),
        helper.make_node("MatMul", ["n1", "wf1"], ["f0"]),
        helper.make_node("Add", ["f0", "bf1"], ["f1"]),
        helper.make_node("Div", ["f1", "sqrt2"], ["g0"]),
        helper.make_node("Erf", ["g0"], ["g1"]),
        helper.make_node("Add", ["g1", "one"], ["g2"]),
        helper.make_node("Mul", ["f1", "g2"], ["g3"]),
        helper.make_node("Mul", ["g3", "half"], ["gelu"]),
        helper.make_node("MatMul", ["gelu", "wf2"], ["f2"]),
        helper.make_node("Add", ["f2", "bf2"], ["f3"]),
        helper.make_node("Add", ["f3", "n1"], ["r2"]),
        helper.make_node("LayerNormalization", ["r2", "ln2_g", "ln2_b"], ["y"], axis=-1, epsilon=1e-12),
    ]
    inits = [
        scalar("one", 1.0), scalar("neg", -10000.0), scalar("sqrt_d", np.sqrt(d)), scalar("sqrt2", np.sqrt(2.0)),
        scalar("half", 0.5), ints("mask_axes", [1, 2]), ints("heads_shape", [0, 0, heads, d]),
        ints("merge_shape", [0, 0, hidden]),
        *[weight(f"w{n}", [hidden, hidden]) for n in "qkvo"], *[weight(f"b{n}", [hidden]) for n in "qkvo"],
        weight("wf1", [hidden, ffn]), weight("bf1", [ffn]), weight("wf2", [ffn, hidden]), weight("bf2", [hidden]),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, hidden).astype(np.float32), "ln1_g"), weight("ln1_b", [hidden]),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, hidden).astype(np.float32), "ln2_g"), weight("ln2_b", [hidden]),
    ]
    graph = helper.make_graph(
        nodes,
        "golden-bert-block",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", hidden])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def sample(info, batch=3, seq=12):
    """Seeded input for a graph input: ids below 1000, masks with padding, floats ~ N(0,1)."""
    dims = []
    for i, d in enumerate(info.type.tensor_type.shape.dim):
        dims.append(d.dim_value if d.HasField("dim_value") else (batch if i == 0 else seq))
    if info.type.tensor_type.elem_type == TensorProto.INT64:
        if "mask" in info.name:
            m = np.ones(dims, dtype=np.int64)
            m[-1, dims[1] // 2 :] = 0
            return m
        return rng.integers(0, 1000, dims, dtype=np.int64)
    return rng.standard_normal(dims).astype(np.float32)


def run(folder):
    model = onnx.load(os.path.join(folder, "model.onnx"))
    feeds = {i.name: sample(i) for i in model.graph.input}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(os.path.join(folder, "model.onnx"), opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    for name, v in feeds.items():
        np.save(os.path.join(folder, f"input_{name}.npy"), v)
    for o, v in zip(sess.get_outputs(), outs):
        np.save(os.path.join(folder, f"output_{o.name}.npy"), v)


def main(out):
    for name, build in [("mlp", mlp), ("cnn", cnn), ("bert_block", bert_block)]:
        save(build(), os.path.join(out, name))
    for case in sorted(os.listdir(out)):
        run(os.path.join(out, case))
    print(f"wrote golden data for {len(os.listdir(out))} models to {out}")


if __name__ == "__main__":
    main(sys.argv[1])

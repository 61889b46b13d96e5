"""Small models built with onnx.helper for the API tests."""

import numpy as np
import onnx
from onnx import TensorProto, helper


def model_bytes(graph: onnx.GraphProto, opset: int = 17, **fields) -> bytes:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **fields)
    m.ir_version = 8
    return m.SerializeToString()


def identity(elem_type: int, shape=("n", 3)) -> bytes:
    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem_type, list(shape))],
        [helper.make_tensor_value_info("y", elem_type, list(shape))],
    )
    return model_bytes(g)


def add_mul() -> bytes:
    """Two inputs with a symbolic batch, two outputs: s = a + b, p = a * b."""
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["a", "b"], ["p"])],
        "add_mul",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 4]),
        ],
        doc_string="adds and multiplies",
    )
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="crossover-tests",
        domain="test.crossover",
        model_version=7,
        doc_string="a small model",
    )
    m.ir_version = 8
    helper.set_model_props(m, {"author": "tests", "purpose": "metadata"})
    return m.SerializeToString()


def gemm_relu(seed: int = 0) -> bytes:
    """y = relu(x @ W + b) with x: [batch, 16] -> [batch, 8]."""
    rng = np.random.default_rng(seed)
    w = helper.make_tensor("W", TensorProto.FLOAT, [16, 8], rng.standard_normal((16, 8)).astype(np.float32).ravel())
    b = helper.make_tensor("B", TensorProto.FLOAT, [8], rng.standard_normal(8).astype(np.float32))
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "gemm_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        initializer=[w, b],
    )
    return model_bytes(g)

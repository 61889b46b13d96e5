"""crossover.onnx_backend's functions used directly, as tools built on onnx.backend do."""

import numpy as np
import onnx
import pytest
from onnx import helper

import crossover
import crossover.onnx_backend as backend

from models import add_mul


def test_run_node():
    node = helper.make_node("Add", ["a", "b"], ["c"])
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((1, 3), np.float32)
    (c,) = backend.run_node(node, [a, b])
    np.testing.assert_array_equal(c, a + b)


def test_run_model_and_prepare():
    model = onnx.load_from_string(add_mul())
    a = np.ones((2, 4), np.float32)
    b = np.full((1, 4), 3.0, np.float32)
    out = backend.run_model(model, [a, b])
    np.testing.assert_array_equal(out.s, a + b)
    np.testing.assert_array_equal(out.p, a * b)
    rep = backend.prepare(model, "CPU")
    np.testing.assert_array_equal(rep.run({"a": a, "b": b})[1], a * b)


def test_devices():
    assert backend.supports_device("CPU")
    assert not backend.supports_device("CUDA")
    assert not backend.supports_device("nonsense")
    with pytest.raises(ValueError, match="cannot run on device 'CUDA'"):
        backend.prepare(onnx.load_from_string(add_mul()), "CUDA")


def test_errors():
    node = helper.make_node("Add", ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="cannot infer the types of outputs"):
        backend.run_node(node, [np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)])
    rep = backend.prepare(onnx.load_from_string(add_mul()))
    with pytest.raises(crossover.InvalidArgument, match='input "a" expects shape'):
        rep.run([np.ones((2, 5), np.float32), np.ones((1, 4), np.float32)])

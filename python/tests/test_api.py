"""The ONNX Runtime-compatible API, checked against onnxruntime on the same models."""

import pathlib

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

import crossover

from models import add_mul, gemm_relu, identity

ATOL = 1e-4


def concrete(shape, batch=3, seq=12):
    return [d if isinstance(d, int) else (batch if k == 0 else seq) for k, d in enumerate(shape)]


def random_feed(session, seed=0, batch=3):
    """Token ids below 1000 and padded masks for int64 inputs, N(0, 1) floats otherwise."""
    rng = np.random.default_rng(seed)
    feed = {}
    for i in session.get_inputs():
        dims = concrete(i.shape, batch)
        if i.type == "tensor(int64)" and "mask" in i.name:
            m = np.ones(dims, np.int64)
            m[-1, dims[1] // 2 :] = 0
            feed[i.name] = m
        elif i.type == "tensor(int64)":
            feed[i.name] = rng.integers(0, 1000, dims, dtype=np.int64)
        else:
            assert i.type == "tensor(float)", i
            feed[i.name] = rng.standard_normal(dims).astype(np.float32)
    return feed


def test_zoo_models_match_onnxruntime(zoo_model):
    ours = crossover.InferenceSession(str(zoo_model))
    ref = ort.InferenceSession(str(zoo_model), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in ours.get_inputs()] == [
        (i.name, i.type, i.shape) for i in ref.get_inputs()
    ]
    assert [(o.name, o.type) for o in ours.get_outputs()] == [
        (o.name, o.type) for o in ref.get_outputs()
    ]
    for batch in (1, 4):
        feed = random_feed(ours, seed=batch, batch=batch)
        got = ours.run(None, feed)
        want = ref.run(None, feed)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=ATOL, rtol=ATOL)


def test_helper_model_matches_onnxruntime():
    model = gemm_relu()
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    got = crossover.InferenceSession(model).run(None, {"x": x})[0]
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=ATOL)


def test_node_args_like_onnxruntime():
    s = crossover.InferenceSession(add_mul())
    r = ort.InferenceSession(add_mul(), providers=["CPUExecutionProvider"])
    for ours, ref in ((s.get_inputs(), r.get_inputs()), (s.get_outputs(), r.get_outputs())):
        assert [(a.name, a.type, a.shape) for a in ours] == [(a.name, a.type, a.shape) for a in ref]
    assert s.get_inputs()[0].shape == ["batch", 4]
    assert "NodeArg(name='a'" in repr(s.get_inputs()[0])


def test_output_names_select_and_order():
    s = crossover.InferenceSession(add_mul())
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((1, 4), 2.0, dtype=np.float32)
    total, product = s.run(None, {"a": a, "b": b})
    np.testing.assert_array_equal(total, a + b)
    np.testing.assert_array_equal(product, a * b)
    (p,) = s.run(["p"], {"a": a, "b": b})
    np.testing.assert_array_equal(p, a * b)
    p2, s2, p3 = s.run(["p", "s", "p"], {"a": a, "b": b})
    np.testing.assert_array_equal(s2, a + b)
    np.testing.assert_array_equal(p3, p2)


def test_modelmeta_like_onnxruntime():
    ours = crossover.InferenceSession(add_mul()).get_modelmeta()
    ref = ort.InferenceSession(add_mul(), providers=["CPUExecutionProvider"]).get_modelmeta()
    for f in ("producer_name", "graph_name", "domain", "description", "graph_description", "version", "custom_metadata_map"):
        assert getattr(ours, f) == getattr(ref, f), f
    assert ours.custom_metadata_map == {"author": "tests", "purpose": "metadata"}


def test_path_forms(mlp_model):
    x = random_feed(crossover.InferenceSession(str(mlp_model)))
    a = crossover.InferenceSession(str(mlp_model)).run(None, x)[0]
    b = crossover.InferenceSession(pathlib.Path(mlp_model)).run(None, x)[0]
    c = crossover.InferenceSession(mlp_model.read_bytes()).run(None, x)[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


DTYPES = [
    (TensorProto.FLOAT, np.float32),
    (TensorProto.DOUBLE, np.float64),
    (TensorProto.FLOAT16, np.float16),
    (TensorProto.BFLOAT16, ml_dtypes.bfloat16),
    (TensorProto.INT8, np.int8),
    (TensorProto.INT16, np.int16),
    (TensorProto.INT32, np.int32),
    (TensorProto.INT64, np.int64),
    (TensorProto.UINT8, np.uint8),
    (TensorProto.UINT16, np.uint16),
    (TensorProto.UINT32, np.uint32),
    (TensorProto.UINT64, np.uint64),
    (TensorProto.BOOL, np.bool_),
]


@pytest.mark.parametrize("elem,dtype", DTYPES, ids=[np.dtype(d).name for _, d in DTYPES])
def test_every_dtype_round_trips(elem, dtype):
    s = crossover.InferenceSession(identity(elem))
    x = (np.arange(6).reshape(2, 3) % 2 == 1) if dtype is np.bool_ else np.arange(6).reshape(2, 3).astype(dtype)
    (y,) = s.run(None, {"x": x})
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, x)


def test_strings_round_trip_like_onnxruntime():
    model = identity(TensorProto.STRING)
    x = np.array([["a", "bb", "ccc"], ["", "é", "z"]], dtype=object)
    (y,) = crossover.InferenceSession(model).run(None, {"x": x})
    (want,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.dtype == want.dtype == np.dtype(object)
    assert y.tolist() == want.tolist()
    (u,) = crossover.InferenceSession(model).run(None, {"x": x.astype(str)})
    assert u.tolist() == x.tolist()


def test_non_contiguous_and_fortran_inputs():
    s = crossover.InferenceSession(gemm_relu())
    base = np.random.default_rng(2).standard_normal((6, 32)).astype(np.float32)
    strided = base[:, ::2]
    fortran = np.asfortranarray(base[:, :16])
    for x in (strided, fortran):
        assert not x.flags.c_contiguous
        want = s.run(None, {"x": np.ascontiguousarray(x)})[0]
        np.testing.assert_array_equal(s.run(None, {"x": x})[0], want)


def test_inputs_are_read_in_place_and_released():
    """C-contiguous inputs are borrowed for the run, not copied; misaligned or read-only
    ones work too, and the run lets go of every array it borrowed."""
    import sys

    s = crossover.InferenceSession(gemm_relu())
    x = np.random.default_rng(3).standard_normal((5, 16)).astype(np.float32)
    want = ort.InferenceSession(gemm_relu(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    before = sys.getrefcount(x)
    for _ in range(3):
        np.testing.assert_allclose(s.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-6)
    assert sys.getrefcount(x) == before, "a run kept a reference to its input"

    raw = bytearray(x.nbytes + 1)
    misaligned = np.frombuffer(raw, dtype=np.float32, count=x.size, offset=1).reshape(x.shape)
    misaligned[...] = x
    assert not misaligned.flags.aligned
    readonly = x.copy()
    readonly.flags.writeable = False
    for arr in (misaligned, readonly):
        np.testing.assert_allclose(s.run(None, {"x": arr})[0], want, rtol=1e-5, atol=1e-6)


def test_input_is_not_modified_and_outputs_are_writable():
    s = crossover.InferenceSession(identity(TensorProto.FLOAT))
    x = np.ones((2, 3), dtype=np.float32)
    (y,) = s.run(None, {"x": x})
    y[0, 0] = 5
    assert x[0, 0] == 1


def test_run_with_info_and_memory(mlp_model):
    s = crossover.InferenceSession(mlp_model)
    feed = random_feed(s)
    info = s.run_with_info(None, feed)
    assert info.device == "cpu"
    np.testing.assert_array_equal(info.outputs[0], s.run(None, feed)[0])
    t = info.timings
    assert t.compute > 0 and t.queue >= 0 and t.upload >= 0 and t.download >= 0
    assert t.total == pytest.approx(t.queue + t.upload + t.compute + t.download)
    mem = s.memory()
    assert list(mem) == ["cpu"]
    # The MLP's weights are float32; their bytes are counted.
    assert mem["cpu"].weights >= 784 * 4


def test_providers_and_devices():
    model = add_mul()
    assert crossover.InferenceSession(model).get_providers() == ["CPUExecutionProvider"]
    assert crossover.InferenceSession(model, devices="cpu").devices == ["cpu"]
    assert crossover.InferenceSession(model, devices=["cpu"]).devices == ["cpu"]
    assert crossover.InferenceSession(model, providers=["CPUExecutionProvider"]).devices == ["cpu"]
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider is not available"):
        s = crossover.InferenceSession(model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert s.get_providers() == ["CPUExecutionProvider"]
    assert crossover.get_available_providers() == ["CPUExecutionProvider"]
    so = crossover.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = crossover.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = crossover.InferenceSession(model, sess_options=so)
    assert s.get_session_options() is so


def test_session_config_entries():
    so = crossover.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.some_onnxruntime_key", "x")
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(crossover.InvalidArgument, match="no session config entry"):
        so.get_session_config_entry("session.unset")
    with pytest.raises(crossover.InvalidArgument, match='must be "0" or "1"'):
        so.add_session_config_entry("session.intra_op.allow_spinning", "yes")
    with pytest.raises(crossover.InvalidArgument, match="two strings"):
        so.add_session_config_entry("session.intra_op.allow_spinning", 0)
    # Workers that sleep between runs give the same answers.
    model = gemm_relu()
    x = np.random.default_rng(3).standard_normal((5, 16), dtype=np.float32)
    want = crossover.InferenceSession(model, devices="cpu").run(None, {"x": x})[0]
    s = crossover.InferenceSession(model, sess_options=so, devices="cpu")
    for _ in range(3):
        np.testing.assert_array_equal(s.run(None, {"x": x})[0], want)
    # The entry is read from onnxruntime's own SessionOptions too.
    from crossover._session import _allow_spinning

    assert _allow_spinning(so) is False
    assert _allow_spinning(crossover.SessionOptions()) is True
    ort_so = ort.SessionOptions()
    assert _allow_spinning(ort_so) is True
    ort_so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    assert _allow_spinning(ort_so) is False
    s = crossover.InferenceSession(model, sess_options=ort_so, devices="cpu")
    np.testing.assert_array_equal(s.run(None, {"x": x})[0], want)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"devices": "cuda:7"}, crossover.InvalidArgument, "cuda:7 is not on this machine"),
        ({"devices": ["cpu", "wgpu:9"]}, crossover.InvalidArgument, "wgpu:9 is not on this machine"),
        ({"devices": "tpu"}, crossover.InvalidArgument, "unknown device"),
        ({"devices": []}, crossover.InvalidArgument, "devices is empty"),
        ({"devices": ["cpu", "cpu"]}, crossover.InvalidArgument, "named twice"),
        ({"devices": ["auto", "cpu"]}, crossover.InvalidArgument, "cannot be combined"),
        ({"devices": 3}, crossover.InvalidArgument, "devices must be"),
        ({"policy": "cost"}, crossover.InvalidArgument, "needs prices"),
        ({"policy": "latency", "prices": {"cpu": 1.0}}, crossover.InvalidArgument, "belong to the cost policy"),
        ({"policy": "pinned:cuda:7", "devices": "cpu"}, crossover.InvalidArgument, "not among the session's devices"),
        ({"policy": "fastest"}, crossover.InvalidArgument, "unknown policy"),
        ({"threads": 0}, crossover.InvalidArgument, "threads must be at least 1"),
        ({"providers": ["NoSuchExecutionProvider"]}, crossover.InvalidArgument, "unknown provider"),
        ({"providers": ["CPUExecutionProvider"], "devices": "cpu"}, crossover.InvalidArgument, "not both"),
    ],
)
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        crossover.InferenceSession(add_mul(), **kwargs)


def test_policies_stats_and_profile():
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = np.array([[-1.0, 2.0, -3.0, 4.0]] * 3, np.float32)
    for policy, extra in [
        ("throughput", {}),
        ("round-robin", {}),
        ("pinned:cpu", {}),
        ("cost", {"prices": {"cpu": 0.1}, "p99_ms": 100.0}),
    ]:
        s = crossover.InferenceSession(model, devices="cpu", policy=policy, **extra)
        assert s.policy.startswith(policy.split(":")[0])
        np.testing.assert_array_equal(s.run(None, {"x": x})[0], np.maximum(x, 0))
    s = crossover.InferenceSession(model, devices="cpu")
    for _ in range(3):
        s.run(None, {"x": x})
    (cpu,) = s.stats()
    assert cpu["device"] == "cpu" and cpu["requests"] == 3 and cpu["healthy"]
    assert 0 < cpu["p50_s"] <= cpu["p99_s"]
    table = s.profile(max_batch=4, time_budget_s=5)
    assert [r["batch"] for r in table] == [1, 2, 4]
    assert all(r["device"] == "cpu" and r["latency_s"] > 0 for r in table)
    listed = crossover.devices()
    assert any(d["device"] == "cpu" and d["usable"] for d in listed)

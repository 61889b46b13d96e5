"""Bad inputs raise crossover exceptions that name the problem."""

import numpy as np
import pytest
from onnx import TensorProto

import crossover

from models import add_mul, identity


@pytest.fixture(scope="module")
def session():
    return crossover.InferenceSession(add_mul())


def feed(**over):
    f = {"a": np.ones((2, 4), np.float32), "b": np.ones((1, 4), np.float32)}
    f.update(over)
    return f


def test_hierarchy():
    for cls in (crossover.InvalidArgument, crossover.InvalidModel, crossover.Unsupported, crossover.DeviceError):
        assert issubclass(cls, crossover.Error)
    assert issubclass(crossover.Error, Exception)


def test_wrong_input_name(session):
    with pytest.raises(crossover.InvalidArgument, match=r'no input "c"; its inputs are \["a", "b"\]'):
        session.run(None, {**feed(), "c": np.ones((1, 4), np.float32)})


def test_missing_input(session):
    with pytest.raises(crossover.InvalidArgument, match='input "b" is missing'):
        session.run(None, {"a": np.ones((2, 4), np.float32)})


def test_wrong_dtype(session):
    with pytest.raises(crossover.InvalidArgument, match='input "a" expects float, got double'):
        session.run(None, feed(a=np.ones((2, 4))))


def test_wrong_rank_and_shape(session):
    with pytest.raises(crossover.InvalidArgument, match='input "a" expects rank 2'):
        session.run(None, feed(a=np.ones(4, np.float32)))
    with pytest.raises(crossover.InvalidArgument, match=r'input "b" expects shape \[1, 4\]'):
        session.run(None, feed(b=np.ones((1, 5), np.float32)))


def test_not_an_array(session):
    with pytest.raises(crossover.InvalidArgument, match='input "a" must be a numpy.ndarray, got list'):
        session.run(None, feed(a=[[1.0] * 4] * 2))


def test_unsupported_numpy_dtype():
    s = crossover.InferenceSession(identity(TensorProto.FLOAT))
    with pytest.raises(crossover.InvalidArgument, match="complex64"):
        s.run(None, {"x": np.ones((2, 3), np.complex64)})
    with pytest.raises(crossover.InvalidArgument, match="byte order"):
        s.run(None, {"x": np.ones((2, 3), ">f4")})


def test_object_array_of_non_strings():
    s = crossover.InferenceSession(identity(TensorProto.STRING))
    with pytest.raises(crossover.InvalidArgument, match="must hold str elements, found int"):
        s.run(None, {"x": np.array([[1, "a", "b"]], dtype=object)})


def test_bad_feed_and_output_names(session):
    with pytest.raises(crossover.InvalidArgument, match="input_feed must be a dict"):
        session.run(None, [np.ones((2, 4), np.float32)])
    with pytest.raises(crossover.InvalidArgument, match=r'no output "q"; its outputs are \["s", "p"\]'):
        session.run(["q"], feed())
    with pytest.raises(crossover.InvalidArgument, match="not a single str"):
        session.run("s", feed())


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(crossover.InvalidModel, match="cannot read .*nope.onnx"):
        crossover.InferenceSession(str(missing))


def test_garbage_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff not a model")
    with pytest.raises(crossover.InvalidModel, match="bad.onnx"):
        crossover.InferenceSession(bad)
    with pytest.raises(crossover.InvalidModel):
        crossover.InferenceSession(b"\xff\xff")


def test_model_argument_type():
    with pytest.raises(crossover.InvalidArgument, match="must be a path .* or the model's bytes, got int"):
        crossover.InferenceSession(3)

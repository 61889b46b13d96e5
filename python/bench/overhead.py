"""Per-call overhead of the Python binding: a tiny model (y = x + 1 on a [1, 4] float32)
run through `crossover.InferenceSession.run`, through the extension's `Session.run`, and
through a Rust loop over the same session in the same process; onnxruntime for scale.

Prints medians in microseconds. Run with `cargo xtask overhead [--release]`.
"""

import statistics
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

import crossover
from crossover import _crossover

N = 20000
WARMUP = 2000


def tiny_model() -> bytes:
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[one],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def median_us(fn) -> float:
    for _ in range(WARMUP):
        fn()
    times = []
    clock = time.perf_counter_ns
    for _ in range(N):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times) / 1000


def main() -> int:
    model = tiny_model()
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    feed = {"x": x}
    session = crossover.InferenceSession(model, threads=1)
    raw = session._sess
    np.testing.assert_array_equal(session.run(None, feed)[0], x + 1)

    rust = statistics.median(_crossover._time_rust_runs(raw, feed, WARMUP + N)[WARMUP:]) * 1e6
    ext = median_us(lambda: raw.run(None, feed))
    py = median_us(lambda: session.run(None, feed))
    rows = [
        ("rust Session::run (same process)", rust),
        ("_crossover.Session.run", ext),
        ("crossover.InferenceSession.run", py),
    ]
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        ref = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        rows.append(("onnxruntime.InferenceSession.run", median_us(lambda: ref.run(None, feed))))
    except ImportError:
        pass
    print(f"binding overhead, tiny model (Add on [1, 4] float32), median of {N} calls:")
    for name, us in rows:
        print(f"  {name:<36} {us:8.2f} us")
    print(f"  {'overhead (InferenceSession - rust)':<36} {py - rust:8.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""crossover's CPU backend against onnxruntime's CPU provider on the same ONNX files, the
same inputs and the same thread count, in one process.

Each case (model, batch) is measured in interleaved rounds — a block of crossover runs, then
a block of onnxruntime runs, repeated — so that load from elsewhere on a shared machine
falls on both sides alike. Reports medians and the ratio crossover / onnxruntime (below 1.0:
crossover is faster). Outputs are checked to agree before anything is timed.

Run through `cargo xtask bench`, which writes the JSON this prints into a Markdown report.
"""

import argparse
import json
import os
import statistics
import sys
import time

# numpy's BLAS threads would otherwise spin beside both runtimes' workers; it only makes
# inputs here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import crossover


def gemm_model(m: int, k: int, n: int) -> bytes:
    """`Y = X @ W` with a constant W: the peer for the GEMM kernel on a single op."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        initializer=[w],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def inputs_for(session: ort.InferenceSession, batch: int, seq: int) -> dict:
    """Random inputs for a model's declared inputs, `batch` and `sequence` bound."""
    rng = np.random.default_rng(1)
    feed = {}
    for arg in session.get_inputs():
        shape = []
        for d in arg.shape:
            if isinstance(d, int):
                shape.append(d)
            elif d == "sequence":
                shape.append(seq)
            else:
                shape.append(batch)
        if arg.type == "tensor(float)":
            feed[arg.name] = rng.standard_normal(shape, dtype=np.float32)
        elif arg.name == "attention_mask":
            feed[arg.name] = np.ones(shape, dtype=np.int64)
        elif arg.type == "tensor(int64)":
            feed[arg.name] = rng.integers(0, 1000, shape, dtype=np.int64)
        else:
            raise SystemExit(f"no input generator for {arg.name}: {arg.type}")
    return feed


def measure(run, budget_s: float, rounds: int, cases: list) -> None:
    """Times `run()` in `rounds` blocks of about `budget_s / rounds` each, appending to
    `cases`; the caller interleaves the two runtimes' blocks."""
    block = budget_s / rounds
    start = time.perf_counter()
    while True:
        t = time.perf_counter_ns()
        run()
        cases.append((time.perf_counter_ns() - t) / 1e6)
        if time.perf_counter() - start >= block:
            break


def compare(name: str, model, batch: int, seq: int, threads: int, budget_s: float) -> dict:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    peer = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    ours = crossover.InferenceSession(model, devices=["cpu"], threads=threads)
    feed = inputs_for(peer, batch, seq)

    expected = peer.run(None, feed)
    got = ours.run(None, feed)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3, err_msg=f"{name} batch {batch}")

    run_ours = lambda: ours.run(None, feed)  # noqa: E731
    run_peer = lambda: peer.run(None, feed)  # noqa: E731
    for _ in range(3):
        run_ours()
        run_peer()
    rounds = 6
    ours_ms, peer_ms = [], []
    for _ in range(rounds):
        measure(run_ours, budget_s, rounds, ours_ms)
        measure(run_peer, budget_s, rounds, peer_ms)
    a, b = statistics.median(ours_ms), statistics.median(peer_ms)
    return {
        "model": name,
        "batch": batch,
        "crossover_ms": a,
        "onnxruntime_ms": b,
        "ratio": a / b,
        "runs": [len(ours_ms), len(peer_ms)],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--golden", required=True, help="folder with zoo_<model>/model.onnx")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--budget-s", type=float, default=4.0, help="time per runtime per case")
    p.add_argument("--filter", default="", help="only cases whose name contains this")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args()

    cases = [
        ("encoder", 1), ("encoder", 8), ("encoder", 32),
        ("mlp", 1), ("mlp", 8), ("mlp", 64),
        ("cnn", 1), ("cnn", 8), ("cnn", 64),
    ]
    results = []
    for model, batch in cases:
        label = f"{model} b{batch}"
        if args.filter not in label:
            continue
        path = os.path.join(args.golden, f"zoo_{model}", "model.onnx")
        results.append(compare(model, path, batch, args.seq, args.threads, args.budget_s))
        r = results[-1]
        print(f"{label:>14}: crossover {r['crossover_ms']:9.3f} ms  onnxruntime "
              f"{r['onnxruntime_ms']:9.3f} ms  ratio {r['ratio']:.2f}", flush=True)
    for m, k, n in [(1024, 1024, 1024), (128, 384, 1536)]:
        label = f"matmul {m}x{k}x{n}"
        if args.filter not in label:
            continue
        r = compare(label, gemm_model(m, k, n), m, args.seq, args.threads, args.budget_s)
        r["gflops"] = 2 * m * k * n / (r["crossover_ms"] * 1e6)
        r["onnxruntime_gflops"] = 2 * m * k * n / (r["onnxruntime_ms"] * 1e6)
        results.append(r)
        print(f"{label:>14}: crossover {r['crossover_ms']:9.3f} ms  onnxruntime "
              f"{r['onnxruntime_ms']:9.3f} ms  ratio {r['ratio']:.2f}", flush=True)

    report = {
        "threads": args.threads,
        "seq": args.seq,
        "onnxruntime": ort.__version__,
        "crossover": crossover.__version__,
        "cases": results,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

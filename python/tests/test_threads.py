"""Several Python threads run one session at once (the GIL is released during compute)."""

import threading

import numpy as np

import crossover

from models import gemm_relu


def test_concurrent_runs_are_correct(mlp_model):
    s = crossover.InferenceSession(mlp_model)
    name = s.get_inputs()[0].name
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((b % 4 + 1, 784)).astype(np.float32) for b in range(16)]
    expected = [s.run(None, {name: x})[0] for x in inputs]
    errors = []
    barrier = threading.Barrier(8)

    def worker(k):
        try:
            barrier.wait()
            for r in range(10):
                i = (k * 3 + r) % len(inputs)
                (got,) = s.run(None, {name: inputs[i]})
                # Concurrent requests are batched together, and a product of more rows
                # sums in another order: equal to rounding, not bit for bit.
                np.testing.assert_allclose(got, expected[i], rtol=1e-5, atol=1e-5)
        except Exception as e:  # reported below, with the thread that raised it
            errors.append((k, e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_sessions_in_threads_with_errors():
    s = crossover.InferenceSession(gemm_relu())
    good = np.ones((2, 16), np.float32)
    want = s.run(None, {"x": good})[0]
    results = {}

    def worker(k):
        x = good if k % 2 == 0 else np.ones((2, 15), np.float32)
        try:
            results[k] = s.run(None, {"x": x})[0]
        except crossover.InvalidArgument as e:
            results[k] = e

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, r in results.items():
        if k % 2 == 0:
            np.testing.assert_array_equal(r, want)
        else:
            assert isinstance(r, crossover.InvalidArgument) and "expects shape" in str(r)
    assert len(results) == 8

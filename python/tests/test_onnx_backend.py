"""ONNX's backend test suite (node tests) over crossover.onnx_backend.

Expected failures come from the one list the Rust conformance test also checks,
tests/conformance/cpu-expected-failures.txt: its case `test_abs` is BackendTest's
`test_abs_cpu`. A listed case that passes is an unexpected success, which fails the run,
so the list stays the truth for both harnesses.
"""

import re
import warnings

import onnx.backend.test

import crossover.onnx_backend as backend

from conftest import ROOT

EXPECTED = ROOT / "tests" / "conformance" / "cpu-expected-failures.txt"


def expected_failures():
    names = []
    for line in EXPECTED.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    backend_test = onnx.backend.test.BackendTest(backend, __name__)

_node_cases = backend_test._test_items["NodeModel"]
for _name in expected_failures():
    # Each case runs once per device; this build has the CPU.
    if f"{_name}_cpu" not in _node_cases:
        raise LookupError(f"{EXPECTED}: {_name} is not an ONNX node test case")
    backend_test.xfail(f"^{re.escape(_name)}_cpu$")

# Node tests only: the other categories download models or repeat the node cases. Each
# case exists once per ONNX device; this build runs the CPU ones (the CUDA twins would
# only be skipped by supports_device).
OnnxBackendNodeModelTest = backend_test.test_cases["OnnxBackendNodeModelTest"]
for _name in list(vars(OnnxBackendNodeModelTest)):
    if _name.endswith("_cuda"):
        delattr(OnnxBackendNodeModelTest, _name)

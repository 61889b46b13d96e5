"""Shared fixtures: the repository root, the zoo models `cargo xtask test` exports."""

import os
import pathlib
import sys

import pytest

# The suite tests the API and its results on the CPU. Sessions left on "auto" would
# otherwise also calibrate on every other device found (llvmpipe in CI); routing across
# devices is tested in Rust (tests/scheduler.rs).
os.environ.setdefault("CROSSOVER_DEVICES", "cpu")

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "target" / "golden"
ZOO = ("mlp", "cnn", "encoder")


def generated(path: pathlib.Path) -> pathlib.Path:
    """A file `cargo xtask test` generates; missing data fails under CI, skips loudly elsewhere."""
    if path.exists():
        return path
    msg = f"{path} is missing; run `cargo xtask test --prepare-only` to generate it"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    print(f"SKIPPED: {msg}", file=sys.stderr)
    pytest.skip(msg)


@pytest.fixture(params=ZOO)
def zoo_model(request) -> pathlib.Path:
    return generated(GOLDEN / f"zoo_{request.param}" / "model.onnx")


@pytest.fixture
def mlp_model() -> pathlib.Path:
    return generated(GOLDEN / "zoo_mlp" / "model.onnx")

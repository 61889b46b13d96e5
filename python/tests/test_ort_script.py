"""An onnxruntime script runs unchanged against crossover (`import crossover as onnxruntime`)."""

import pathlib
import subprocess
import sys

import numpy as np

SCRIPT = pathlib.Path(__file__).with_name("ort_script.py")
AS_CROSSOVER = (
    "import runpy, sys, crossover; sys.modules['onnxruntime'] = crossover; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_onnxruntime_script_runs_unchanged(mlp_model, tmp_path):
    ref_out, our_out = tmp_path / "ref.npy", tmp_path / "ours.npy"
    ref = run([sys.executable, str(SCRIPT), str(mlp_model), str(ref_out)])
    ours = run([sys.executable, "-c", AS_CROSSOVER, str(SCRIPT), str(mlp_model), str(our_out)])
    assert ours == ref
    np.testing.assert_allclose(np.load(our_out), np.load(ref_out), atol=1e-4, rtol=1e-4)

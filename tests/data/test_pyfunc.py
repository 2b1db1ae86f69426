"""tfft.data.pyfunc: the pipelines' Python functions run, and stop cleanly when Python exits."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfft.data import pyfunc

REPO = Path(__file__).resolve().parents[2]

# Peeks at one batch (the fused resize and warp and the builtin renderer are both numpy functions) and
# returns with the iterator alive. Without the atexit hook this hung in 4 runs of 4.
PEEK_AND_EXIT = """
import tfft.data
from tfft.config import load_config
cfg = load_config({"data": {"source": "builtin:shapes", "image_size": [64, 64], "batch_size": 16,
                            "builtin_per_class": 32, "val_split": 0.0},
                   "augment": {"placement": "pipeline", "rotation_range": 30}})
it = iter(tfft.data.build(cfg, "train"))
print(tuple(next(it)[0].shape), flush=True)
"""


def test_script_with_a_live_iterator_exits():
    try:
        proc = subprocess.run([sys.executable, "-c", PEEK_AND_EXIT], cwd=REPO, capture_output=True, text=True,
                              timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("the interpreter hung at exit with a live tfft.data iterator")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "(16, 64, 64, 3)"


def test_numpy_function_runs_and_refuses_once_closing(monkeypatch):
    ds = tf.data.Dataset.range(3).map(lambda i: pyfunc.numpy_function(lambda v: v * 2, [i], tf.int64))
    assert [int(v) for v in ds] == [0, 2, 4]
    monkeypatch.setitem(pyfunc._state, "closing", True)
    with pytest.raises(tf.errors.OpError, match="interpreter is exiting"):
        list(ds)


def test_quiesce_returns_after_one_quiet_window_when_idle(monkeypatch):
    monkeypatch.setitem(pyfunc._state, "closing", False)  # restored afterwards: _quiesce sets it
    start = time.monotonic()
    pyfunc._quiesce()
    assert pyfunc._state["closing"] and time.monotonic() - start < pyfunc._QUIET_S + 0.5


@pytest.mark.parametrize("module", ["tfft.data.resize_kernels", "tfft.augment.cpu_kernels"])
def test_the_compiled_loops_import(module):
    import importlib

    assert importlib.import_module(module) is not None  # numba is a dependency: the fast paths are the tested ones


def test_aligned_empty_is_float32_and_64_byte_aligned():
    for shape in [(1,), (3, 5, 7, 3), (32, 224, 224, 3)]:
        array = pyfunc.aligned_empty(shape)
        assert array.shape == shape and array.dtype == np.float32 and array.ctypes.data % 64 == 0

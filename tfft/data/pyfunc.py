"""`tf.numpy_function` for tf.data pipelines, made safe for the interpreter's exit, and its helpers.

A tf.data iterator that is still alive when Python shuts down (a script that peeks at one batch
of `tfft.build_data(...)` and ends, a notebook kernel stopped mid-epoch) is destroyed during
interpreter finalization. Its destructor waits for the map calls in flight, and a call that
reaches a Python function then can never finish: the thread that asks for the GIL after
finalization has begun is ended on the spot (TensorFlow issue 21277). The process hangs for good.
Measured here without the hook: a script that takes one batch of `build()` on `builtin:shapes`
and returns hung in 8 runs of 8; with the augmented pets-mini pipeline, 2 of 5. With it: 0 of 14.

Every Python function in tfft's pipelines goes through `numpy_function` below. At the first one,
an `atexit` hook is registered; at exit, before finalization, it makes these functions fail at
once and releases the GIL until no call has come for 50 ms (3 s at most). The pipelines then
fill their buffers with errors nobody reads and go quiet, so finalization finds no call in flight.
A normal exit (no live iterator) pays one 50 ms wait.

The compiled loops these functions run (`tfft.data.resize_kernels`, `tfft.augment.cpu_kernels`,
numba) are imported where they are first used, and return their images in `aligned_empty` arrays.
"""

from __future__ import annotations

import atexit
import time
from typing import Callable

_QUIET_S, _LIMIT_S = 0.05, 3.0
_state = {"closing": False, "calls": 0, "registered": False}


def traced(fn: Callable) -> Callable:
    """`fn` for a `Dataset.map` or `filter`, traced as written: AutoGraph converts neither it nor
    what it calls (the decode, the augmenter). None of tfft's map functions branches or loops on a
    tensor in Python, so the graph is the same (the batches bitwise so), and the conversion cost
    each fresh process 2.5-3 s of CPU before its first batch (benchmarks/RESULTS.md, "AutoGraph").

    Example:
    >>> import tensorflow as tf
    >>> [int(x) for x in tf.data.Dataset.range(3).map(traced(lambda x: x * 2))]
    [0, 2, 4]
    """
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


def numpy_function(func: Callable, inp: list, Tout, name: str | None = None):
    """`tf.numpy_function(func, inp, Tout, stateful=False)` that refuses to run once Python exits.

    Args:
        func: the NumPy function, as for `tf.numpy_function`.
        inp: its input tensors.
        Tout: the output dtype (or list of dtypes).
        name: an optional op name.

    Returns:
        What `tf.numpy_function` returns (shapes unknown: set them after).

    Example:
    >>> import tensorflow as tf
    >>> float(numpy_function(lambda x: x * 2, [tf.constant(1.5)], tf.float32))
    3.0
    """
    import tensorflow as tf

    if not _state["registered"]:
        _state["registered"] = True
        atexit.register(_quiesce)

    def guarded(*args):
        _state["calls"] += 1
        if _state["closing"]:
            raise RuntimeError("tfft: the Python interpreter is exiting; this pipeline is being shut down")
        return func(*args)

    return tf.numpy_function(guarded, inp, Tout, stateful=False, name=name)


def aligned_empty(shape: tuple[int, ...], dtype=None):
    """An uninitialised NumPy array (float32 unless `dtype` says) whose data is 64-byte aligned, to
    return from `numpy_function`: TF can then take its memory for the tensor without a copy.

    Example:
    >>> aligned_empty((2, 3)).ctypes.data % 64
    0
    """
    import numpy as np

    dtype = np.dtype(np.float32 if dtype is None else dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(size + 64, np.uint8)
    start = -buffer.ctypes.data % 64
    return buffer[start:start + size].view(dtype).reshape(shape)


def _quiesce() -> None:
    """At exit: stop the pipelines' Python calls and wait until none has come for `_QUIET_S`."""
    _state["closing"] = True
    deadline = time.monotonic() + _LIMIT_S
    while time.monotonic() < deadline:
        seen = _state["calls"]
        time.sleep(_QUIET_S)  # releases the GIL: calls waiting for it get in and fail at once
        if _state["calls"] == seen:
            return


__all__ = ["aligned_empty", "numpy_function"]

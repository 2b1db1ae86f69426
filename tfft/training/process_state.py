"""Process-wide settings a run makes, and their restoration when it ends.

A run sets TensorFlow's op determinism, Keras' mixed-precision policy and the random seeds, and
code under it may add warning filters or wrap Keras' downloader (`keras.utils.get_file`). All of
that is process-wide: left in place, the second `tfft.train` of a cross-validation or a tuning
study would start from what the first one left. `run_state` sets what a run needs and puts every
setting back as it found it, whether the run ends, fails or is interrupted.

Example:
>>> import keras
>>> before = keras.mixed_precision.global_policy().name
>>> with run_state(seed=1, deterministic=True, precision="mixed_bfloat16"):
...     keras.mixed_precision.global_policy().name
'mixed_bfloat16'
>>> keras.mixed_precision.global_policy().name == before
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from tfft import compat


@dataclasses.dataclass
class ProcessState:
    """A snapshot of the process-wide settings a run may change."""

    deterministic: bool
    policy: str
    warning_filters: list[Any]
    get_file: dict[str, Any]

    @classmethod
    def capture(cls) -> "ProcessState":
        import keras

        return cls(deterministic=op_determinism(),
                   policy=keras.mixed_precision.global_policy().name,
                   warning_filters=list(warnings.filters),
                   get_file=_downloaders())

    def restore(self) -> None:
        import keras

        compat.set_op_determinism(self.deterministic)
        keras.mixed_precision.set_global_policy(self.policy)
        warnings.filters[:] = self.warning_filters
        compat.warnings_changed()
        for holder, function in self.get_file.items():
            setattr(_holders()[holder], "get_file", function)


def op_determinism() -> bool:
    """Whether TensorFlow's op determinism is on (TensorFlow exports only the switch-on)."""
    return compat.op_determinism()


def _holders() -> dict[str, Any]:
    """The modules through which Keras reaches its downloader (the public one and its source)."""
    import keras

    return {"keras.utils": keras.utils, "keras.src.utils.file_utils": compat.keras_file_utils()}


def _downloaders() -> dict[str, Any]:
    return {name: module.get_file for name, module in _holders().items()}


@contextlib.contextmanager
def run_state(seed: int, deterministic: bool, precision: Optional[str] = None) -> Iterator[None]:
    """Set the seeds, op determinism and precision policy of one run; restore them after.

    Args:
        seed: the run seed (Python, NumPy, TensorFlow and Keras generators).
        deterministic: enable TensorFlow's op determinism for the run.
        precision: the Keras policy name (`float32`, `mixed_float16`, ...); None keeps the current one.

    Example:
    >>> with run_state(seed=0, deterministic=True):
    ...     op_determinism()
    True
    >>> op_determinism()
    False
    """
    import keras
    import tensorflow as tf

    saved = ProcessState.capture()
    try:
        keras.utils.set_random_seed(int(seed))
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        if precision is not None:
            keras.mixed_precision.set_global_policy(precision)
        yield
    finally:
        saved.restore()


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Write the `tfft` logger's records, details (INFO) included, to `path` (appended) for the block.

    The console shows the details only under `tfft --verbose`; the run's log always holds them.

    Example:
    >>> import logging, tempfile
    >>> log_file = Path(tempfile.mkdtemp()) / "run.log"
    >>> with run_log(log_file):
    ...     logging.getLogger("tfft.training").info("feature cache: caching the pooled features")
    >>> log_file.read_text().splitlines()[0].split(" ", 2)[2]
    'INFO tfft.training: feature cache: caching the pooled features'
    """
    logger = logging.getLogger("tfft")
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def interactive(stream: Any = None) -> bool:
    """Whether progress on `stream` (default stdout) can redraw in place: a terminal, or a notebook.

    A notebook is a running Jupyter kernel (IPython's ZMQ shell, Colab's included), not merely
    `ipykernel` in `sys.modules`: jupyter_client imports it in plain processes too (nbclient,
    a test runner), whose output goes to a log file.

    Example:
    >>> import io
    >>> interactive(io.StringIO())
    False
    """
    stream = sys.stdout if stream is None else stream
    if getattr(stream, "isatty", lambda: False)():
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)

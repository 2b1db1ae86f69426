"""What every `tfft` command runs inside: quiet TensorFlow, each warning once, details on request.

* TensorFlow's start-up chatter is hidden unless `--debug`: its C++ logging is set to errors only
  (`TF_CPP_MIN_LOG_LEVEL=3`, `GRPC_VERBOSITY=ERROR`) before it is imported, and the lines its
  runtime writes before that setting is read ("All log messages before absl::InitializeLog() is
  called are written to STDERR", "Could not find cuda drivers", twice) are caught by importing
  `tensorflow` with the process's stderr in a temporary file (shown if the import fails). Its
  Python loggers (`tensorflow`, `absl`) show errors only; `--verbose` shows their warnings.
* A warning is shown once per command (`OncePerMessage`): tfft's own (the `tfft` logger), Python
  warnings and TensorFlow's (`tf.function retracing` in every fold of a cross-validation).
* tfft's details (which backbone layer a feature cache cuts at, ...) are `INFO` records of the
  `tfft` logger: shown with `--verbose`, and written to the run's `run.log` in any case.

Everything set here is put back when the command ends (`command_runtime`).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, Optional

QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}
QUIET_LOGGERS = ("tensorflow", "absl")  # third-party Python loggers: errors only unless --verbose
_ADDRESS_OR_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")


class OncePerMessage(logging.Filter):
    """Passes a warning the first time only: records equal but for numbers and object addresses
    (`5 out of the last 5 calls to <function ... at 0x7f...>`) count as the same. Records below
    WARNING (tfft's details) always pass.

    Example:
    >>> once = OncePerMessage()
    >>> [once.filter(logging.makeLogRecord({"msg": m, "levelno": logging.WARNING}))
    ...  for m in ("skipped 3 files", "skipped 3 files", "retraced 6 times", "retraced 7 times")]
    [True, False, True, False]
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, _ADDRESS_OR_NUMBER.sub("#", record.getMessage()))
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def stderr_to_file() -> Iterator[Any]:
    """Point the process's stderr (file descriptor 2, which C++ code writes to) at a temporary
    file for the block; yields the file (read it to see what was written)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Executes the `tensorflow` package with stderr captured; on failure the captured lines are
    written out before the error propagates."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the package as if imported plainly
        with stderr_to_file() as captured:
            try:
                self.loader.exec_module(module)
            except BaseException:
                captured.seek(0)
                text = captured.read()
                failed = True
            else:
                failed = False
        if failed:
            sys.stderr.write(text.decode(errors="replace"))
            raise


class QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """A `sys.meta_path` finder: the first `import tensorflow` (direct, or through Keras) runs
    with stderr captured (`_QuietLoader`), then the finder takes itself off `sys.meta_path`."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        self.uninstall()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec

    def install(self) -> None:
        if "tensorflow" not in sys.modules and self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


@contextlib.contextmanager
def command_runtime(debug: bool = False, verbose: bool = False) -> Iterator[None]:
    """The settings one `tfft` command runs under (see the module docstring); restored after.

    Args:
        debug: show everything TensorFlow prints (nothing is hidden; warnings still once).
        verbose: show tfft's details and the warnings of TensorFlow's Python loggers.

    Example:
    >>> import logging
    >>> with command_runtime():
    ...     logging.getLogger("tensorflow").level == logging.ERROR
    True
    """
    environment = {name: os.environ.get(name) for name in QUIET_ENVIRONMENT}
    finder = QuietTensorFlowImport()
    once = OncePerMessage()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.INFO if verbose or debug else logging.WARNING)
    handler.addFilter(once)
    tfft_logger = logging.getLogger("tfft")
    saved_tfft = (tfft_logger.level, tfft_logger.propagate)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS + ("py.warnings",)}
    captured_warnings = logging.getLogger("py.warnings").handlers or getattr(logging, "_warnings_showwarning", None)
    if not debug:
        for name, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        finder.install()
    tfft_logger.addHandler(handler)
    tfft_logger.setLevel(logging.INFO)
    tfft_logger.propagate = False
    for name in QUIET_LOGGERS + ("py.warnings",):
        logger = logging.getLogger(name)
        logger.addFilter(once)
        if name in QUIET_LOGGERS and not (debug or verbose):
            logger.setLevel(logging.ERROR)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        if not captured_warnings:
            logging.captureWarnings(False)
        for name, level in quiet.items():
            logging.getLogger(name).removeFilter(once)
            logging.getLogger(name).setLevel(level)
        tfft_logger.removeHandler(handler)
        tfft_logger.setLevel(saved_tfft[0])
        tfft_logger.propagate = saved_tfft[1]
        finder.uninstall()
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def device_line() -> str:
    """One plain line naming what trains: `no GPU found, training on CPU`, or the GPUs' names.

    Example:
    >>> device_line()  # doctest: +SKIP
    'no GPU found, training on CPU'
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "no GPU found, training on CPU"
    names = []
    for gpu in gpus:
        details: Optional[dict] = None
        with contextlib.suppress(Exception):  # details are a nicety; the device list is what counts
            details = tf.config.experimental.get_device_details(gpu)
        names.append((details or {}).get("device_name") or gpu.name)
    return f"training on {len(gpus)} GPU{'s' if len(gpus) > 1 else ''}: {', '.join(names)}"

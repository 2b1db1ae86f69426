"""The exporter shape: one `Exporter` subclass per format, registered in `EXPORTERS`.

An exporter names its format, the pip extra that installs what it needs, its file names and the
quantizations it has; it writes a Keras model (`export`) and checks what it wrote in its own
runtime (`check`): the probabilities of a batch of raw 0-255 RGB images and the median latency
of one image. Formats whose runtime is not TensorFlow are checked in a subprocess that does not
import TensorFlow (`runtime_check.py`).

Example:
>>> from tfft.evaluation.exporters.base import EXPORTERS
>>> EXPORTERS.names()[:2]
['savedmodel', 'tflite']
>>> EXPORTERS.get("onnx")().default_name("dynamic")
'model_dynamic.onnx'
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tfft.errors import UserError
from tfft.registry import Registry

EXPORTERS: Registry[type[Exporter]] = Registry("export format", where="--format")
LATENCY_RUNS = 20
RUNTIME_SCRIPT = Path(__file__).with_name("runtime_check.py")


@dataclass
class ExportJob:
    """What an exporter needs besides the model: the run, the quantization, a scratch folder
    (removed after) and the calibration images (read on first use; raw 0-255 RGB float32)."""

    run: Any  # tfft.runs.directory.Run
    quantize: str = "none"
    scratch: Path = Path(".")
    thresholds: Any | None = None
    task: Any = None  # the run's tfft.task.Task (None: single-label)
    calibration: Callable[[], list] = field(default=list)


@dataclass
class RuntimeCheck:
    """What `Exporter.check` measured in the export's own runtime."""

    probabilities: np.ndarray
    latency_ms: float
    runtime: str  # e.g. "onnxruntime 1.32.0"
    threads: int
    tensorflow_loaded: bool


class Exporter:
    """One export format. Subclasses set the class attributes and implement `export` and, unless
    the runtime is run by `runtime_check.py` under `name`, `check`.

    Attributes:
        name: the `--format` name.
        extra: the pip extra that installs the exporter and its runtime ("" when none is needed).
        file_name: the default file (or folder) name; quantized variants get `_<quantize>` before the suffix.
        quantizations: the `--quantize` values it has, "none" first.
        modules: the modules the exporter needs (checked before any heavy work).
        runtime_modules: the modules its runtime check needs.
        is_folder: the export is a folder (SavedModel, OpenVINO IR), not one file.
        inputs: "images" (raw 0-255 RGB float32 NHWC) or "bytes" (encoded image files).
    """

    name = ""
    extra = ""
    file_name = ""
    quantizations: tuple[str, ...] = ("none",)
    modules: tuple[str, ...] = ()
    runtime_modules: tuple[str, ...] = ()
    quantize_modules: ClassVar[dict[str, tuple[str, ...]]] = {}
    is_folder = False
    inputs = "images"

    def default_name(self, quantize: str = "none") -> str:
        """The file or folder name of this export with `quantize`."""
        if quantize == "none":
            return self.file_name
        stem, dot, suffix = self.file_name.partition(".")
        return f"{stem}_{quantize}{dot}{suffix}"

    def missing(self, quantize: str = "none") -> list[str]:
        """The modules this export (with `quantize`) and its runtime check need that are not installed."""
        needed = self.modules + self.runtime_modules + self.quantize_modules.get(quantize, ())
        return [name for name in needed if importlib.util.find_spec(name) is None]

    def installed(self, quantize: str = "none") -> bool:
        return not self.missing(quantize)

    def install_hint(self, missing: list[str]) -> str:
        """How to install what is missing: the extra, or the modules when there is none."""
        return f"pip install 'tfft[{self.extra}]'" if self.extra else "pip install " + " ".join(missing)

    def require(self, quantize: str = "none") -> None:
        """A `UserError` naming the extra when something this export needs is not installed."""
        missing = self.missing(quantize)
        if missing:
            raise UserError(f"--format {self.name}" + (f" --quantize {quantize}" if quantize != "none" else ""),
                            f"needs {', '.join(missing)}, which is not installed",
                            f"{self.install_hint(missing)}; the formats installed here: "
                            f"{', '.join(installed_formats())}")

    def export(self, model, path: Path, job: ExportJob) -> None:
        """Write `model` (a Keras model taking raw 0-255 RGB float32 NHWC) to `path`."""
        raise NotImplementedError

    def check(self, path: Path, inputs: list, threads: int) -> RuntimeCheck:
        """Run the export in its runtime on `inputs` (batches of 32) and time one input (batch 1)."""
        return run_in_subprocess(self.name, path, np.stack(inputs).astype(np.float32), threads)


def installed_formats() -> list[str]:
    """The registered formats whose exporter and runtime are installed here."""
    return [name for name, entry in EXPORTERS.items() if entry().installed()]


def run_in_subprocess(runtime: str, path: Path, images: np.ndarray, threads: int) -> RuntimeCheck:
    """Run `runtime_check.py` (which imports numpy and the runtime, never tfft) in a fresh Python
    on `images`; its report says whether TensorFlow was loaded there."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tfft-runtime-") as folder:
        np.save(Path(folder) / "images.npy", images)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        # `-c` with the script's text: the working folder (not this package's, whose onnx.py and
        # openvino.py would shadow the real modules) comes first on sys.path.
        proc = subprocess.run([sys.executable, "-c", RUNTIME_SCRIPT.read_text(encoding="utf-8"), runtime,
                               str(Path(path).resolve()), folder, str(threads), str(LATENCY_RUNS)],
                              cwd=folder, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"checking the {runtime} export in its runtime failed:\n{proc.stderr[-3000:]}")
        report = json.loads((Path(folder) / "report.json").read_text(encoding="utf-8"))
        probabilities = np.load(Path(folder) / "probabilities.npy")
    return RuntimeCheck(probabilities=probabilities, latency_ms=report["latency_ms"], runtime=report["runtime"],
                        threads=report["threads"], tensorflow_loaded=report["tensorflow_loaded"])


def replace(tmp: Path, path: Path) -> None:
    """Move a finished export into place: into an empty or missing `path` whole; into a folder that
    holds files entry by entry, replacing only the export's own entries (the others stay)."""
    if path.is_dir() and not path.is_symlink() and any(path.iterdir()):
        for entry in sorted(tmp.iterdir()):
            target = path / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
        tmp.rmdir()
        return
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.replace(tmp, path)


def temporary_folder(path: Path) -> Path:
    """A new folder beside `path` (same file system, for the final `os.replace`), usual folder mode."""
    import tempfile

    from tfft.atomic import current_umask

    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
    return tmp


def float32_function(model, image_size):
    """`model` as a tf.function on a raw 0-255 RGB float32 NHWC batch named `image` (float32 weights
    even for a mixed-precision model: the runtimes have few float16 kernels)."""
    import tensorflow as tf

    from tfft.backbones import with_dtype_policy

    model = with_dtype_policy(model, "float32")
    height, width = int(image_size[0]), int(image_size[1])
    spec = tf.TensorSpec([None, height, width, 3], tf.float32, name="image")

    def serve(image):
        return model(image, training=False)

    # autograph off: a Keras model call needs no conversion (and autograph warns on the closure)
    return tf.function(serve, input_signature=[spec], autograph=False), spec


__all__ = ["EXPORTERS", "ExportJob", "Exporter", "RuntimeCheck", "installed_formats", "run_in_subprocess"]

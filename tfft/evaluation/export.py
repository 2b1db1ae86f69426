"""Exports of a run's model.keras, each checked in its own runtime against the original.

The formats are the exporters registered in `tfft.evaluation.exporters.EXPORTERS`: `savedmodel`
(TF Serving; encoded image bytes in), `tflite` (LiteRT), `onnx` (ONNX Runtime) and `openvino`
(OpenVINO IR). Every export is run in its runtime (all but the SavedModel in a subprocess that
does not import TensorFlow) on the same validation images as model.keras: top-1 agreement, the
largest absolute difference of probabilities, and the median latency of one image, ending with
the line `parity: top1 agreement A%, max abs diff D`.

`export_all` writes every installed format and quantization into one folder, with the input
contract beside them (export.json, README.md, labels.txt).
"""

from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfft.atomic import check_output
from tfft.errors import UserError
from tfft.evaluation.exporters import EXPORTERS, Exporter, ExportJob
from tfft.evaluation.exporters.contract import write_contract
from tfft.evaluation.exporters.images import calibration_images, parity_images
from tfft.evaluation.exporters.parity import (
    CLEAR_MARGIN,
    ExportResult,
    clear_agreement,
    compare,
    format_table,
)
from tfft.evaluation.exporters.savedmodel import serving_module
from tfft.layout import EXPORT
from tfft.runs.directory import Run, load_model, open_run, task_of
from tfft.runs.thresholds import run_thresholds

FORMATS = tuple(EXPORTERS.names())  # the built-in formats; EXPORTERS.names() also lists registered ones
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
PARITY_IMAGES = 200


@dataclass
class ExportSummary:
    """What `export_all` wrote (`results`, one per file) into `folder`, and what it skipped and why."""

    folder: str
    results: list[ExportResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "openvino int8: needs nncf (pip install nncf)"

    def table(self) -> str:
        """The deployment table: format, quantization, size, gzip size, latency, agreement, accuracy."""
        return format_table(self.results)


def _exporter(format: str, quantize: str) -> Exporter:
    """The exporter of `format`, checked to have `quantize` (UserErrors name the option)."""
    exporter = EXPORTERS.get(format)()
    if quantize not in exporter.quantizations:
        others = [name for name, entry in EXPORTERS.items() if quantize in entry.quantizations]
        raise UserError("--quantize", f"--format {format} has quantizations {', '.join(exporter.quantizations)}, "
                        f"got {quantize!r}", f"{quantize} exists for: {', '.join(others) or 'no format'}"
                        if quantize in QUANTIZATIONS else None)
    return exporter


def export(run_dir: str | os.PathLike, format: str = "savedmodel", quantize: str = "none",
           out: str | os.PathLike | None = None, parity_images: int = PARITY_IMAGES,
           overwrite: bool = False, threads: int | None = None) -> ExportResult:
    """Export a run's model.keras and check it in its own runtime against the original.

    Args:
        run_dir: a folder written by `tfft train`.
        format: a registered format: "savedmodel" (serving signature on encoded image bytes),
            "tflite", "onnx" or "openvino" (raw 0-255 RGB float32 NHWC in, probabilities out).
        quantize: "none"; tflite: "dynamic" (int8 weights), "float16" (float16 weights) or "int8"
            (full-integer, calibrated on training images; float32 I/O kept); onnx: "dynamic"
            (int8 weights, ONNX Runtime's quantize_dynamic: slow on convnets) or "int8" (static
            QDQ, calibrated); openvino: "int8" (NNCF, calibrated).
        out: where to write (default `RUN_DIR/export/<the format's file name>`, with export.json,
            README.md and labels.txt beside). An existing folder given for a one-file format
            (tflite, onnx) gets the file under its default name.
        parity_images: at most this many validation images for the parity check.
        overwrite: write into an `out` that already holds files (or is or holds the run
            directory); only the export's own files are replaced, the others stay.
        threads: the runtime's threads for the latency (default: every core).

    Returns:
        An `ExportResult(path, size_bytes, latency_ms, parity_top1, parity_max_abs_diff, ...)`.

    Raises:
        UserError: a missing run directory or model, an unknown format or quantization, a format
            whose extra is not installed, or an `out` that exists, holds files or holds the run
            (without `overwrite`).

    Example:
    >>> result = export("runs/quickstart", format="tflite", quantize="int8")  # doctest: +SKIP
    >>> print(result.parity_line())  # doctest: +SKIP
    parity: top1 agreement 99.50%, max abs diff 0.0312
    """
    exporter = _exporter(format, quantize)
    run = open_run(run_dir)
    exporter.require(quantize)
    name = exporter.default_name(quantize)
    own = run.run_dir / EXPORT
    if out is None:
        path = own / name  # tfft's own folder: replaced freely
    else:
        path = check_output(out, overwrite=overwrite, file_name=None if exporter.is_folder else name,
                            runs=[run.run_dir], own=[own])
    with _Checker(run, parity_images, threads) as checker:
        result = checker.export(exporter, quantize, path)
        if path.parent == own:
            write_contract(own, run, [result], checker.thresholds, checker.task)
    return result


def export_all(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, quantize: str | None = None,
               parity_images: int = PARITY_IMAGES, overwrite: bool = False,
               threads: int | None = None) -> ExportSummary:
    """Export a run to every installed format and each of its quantizations (or only `quantize`)
    into one folder, each checked in its own runtime, with export.json, README.md and labels.txt.

    Args:
        run_dir: a folder written by `tfft train`.
        out: the folder (default `RUN_DIR/export`); refused when it holds files, unless `overwrite`.
        quantize: only this quantization (e.g. "none": the float exports); None: every one.
        parity_images, overwrite, threads: as in `export`.

    Returns:
        An `ExportSummary` (`results`, `skipped`, `table()`).

    Example:
    >>> print(export_all("runs/quickstart", out="deploy").table())  # doctest: +SKIP
    """
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError("--quantize", f"expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    run = open_run(run_dir)
    own = run.run_dir / EXPORT
    folder = own if out is None else check_output(out, overwrite=overwrite, runs=[run.run_dir], own=[own])
    summary = ExportSummary(folder=str(folder))
    chosen = []
    for name, entry in EXPORTERS.items():
        exporter = entry()
        for variant in exporter.quantizations:
            if quantize not in (None, variant):
                continue
            missing = exporter.missing(variant)
            if missing:
                summary.skipped.append(f"{name} {variant}: needs {', '.join(missing)} ({exporter.install_hint(missing)})")
            else:
                chosen.append((exporter, variant))
    if not chosen:
        raise UserError("--format all", f"no format is installed with --quantize {quantize}",
                        "pip install 'tfft[onnx,openvino,litert]'")
    with _Checker(run, parity_images, threads) as checker:
        for exporter, variant in chosen:
            summary.results.append(checker.export(exporter, variant, folder / exporter.default_name(variant)))
        write_contract(folder, run, summary.results, checker.thresholds, checker.task)
    return summary


class _Checker:
    """One run's model, parity images, model.keras' probabilities and calibration images, loaded
    once for any number of exports (a context manager: its scratch folder is removed on exit)."""

    def __init__(self, run: Run, limit: int, threads: int | None):
        self.run = run
        self.limit = limit
        self.threads = int(threads or os.cpu_count() or 1)
        self.task = task_of(run)
        self.thresholds = run_thresholds(run, self.task)
        self._calibration: list | None = None

    def __enter__(self) -> _Checker:
        # builtin:/tfds: sources have no files: their parity and calibration images are written here.
        self._scratch = tempfile.TemporaryDirectory(prefix="tfft-export-")
        self.scratch = Path(self._scratch.name)
        try:
            self.model = load_model(self.run)
            self.paths, self.images, self.labels = parity_images(self.run, self.limit, self.scratch)
            self.reference = keras_probs(self.model, self.images)
        except BaseException:
            self._scratch.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._scratch.cleanup()

    def calibration(self) -> list:
        if self._calibration is None:
            self._calibration = calibration_images(self.run, self.scratch)
        return self._calibration

    def export(self, exporter: Exporter, quantize: str, path: Path) -> ExportResult:
        """Write one export to `path`, run it in its runtime and compare it with model.keras."""
        path.parent.mkdir(parents=True, exist_ok=True)
        job = ExportJob(run=self.run, quantize=quantize, scratch=self.scratch, thresholds=self.thresholds, task=self.task,
                        calibration=self.calibration)
        exporter.export(self.model, path, job)
        inputs = [Path(p).read_bytes() for p in self.paths] if exporter.inputs == "bytes" else self.images
        check = exporter.check(path, inputs, self.threads)
        numbers = compare(self.reference, check.probabilities, self.labels, self.thresholds, self.run.class_names,
                          self.task)
        size, gzipped = sizes(path)
        return ExportResult(path=str(path), size_bytes=size, gzip_bytes=gzipped, latency_ms=check.latency_ms,
                            format=exporter.name, quantize=quantize, runtime=check.runtime, threads=check.threads,
                            tensorflow_loaded=check.tensorflow_loaded, **numbers)


def keras_probs(model, images: list[np.ndarray]) -> np.ndarray:
    """model.keras' probabilities of raw 0-255 RGB images, batches of 32, float64."""
    out = [np.asarray(model.predict_on_batch(np.stack(images[i:i + 32]).astype(np.float32)), np.float64)
           for i in range(0, len(images), 32)]
    return np.concatenate(out)


def sizes(path: Path) -> tuple[int, int]:
    """The bytes of a file or of a folder's files, and the same gzip-compressed (level 6)."""
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    raw = sum(f.stat().st_size for f in files)
    return raw, sum(len(gzip.compress(f.read_bytes(), compresslevel=6)) for f in files)


# The names tests and callers used before the exporters became a registry.
_keras_probs = keras_probs
_serving_module = serving_module


def _parity_images(run: Run, limit: int, scratch: Path) -> tuple[list[str], list[np.ndarray]]:
    paths, images, _ = parity_images(run, limit, scratch)
    return paths, images


__all__ = [
    "CLEAR_MARGIN",
    "FORMATS",
    "QUANTIZATIONS",
    "ExportResult",
    "ExportSummary",
    "clear_agreement",
    "export",
    "export_all",
    "format_table",
]

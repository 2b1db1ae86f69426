"""The parity check of an export against model.keras, in one place: `ExportResult`, `compare`,
`clear_agreement` and the deployment table (`format_table`).

Example:
>>> ref = np.array([[0.9, 0.1], [0.3, 0.7]])
>>> numbers = compare(ref, np.array([[0.85, 0.15], [0.35, 0.65]]), labels=[0, 0])
>>> numbers["parity_top1"], round(numbers["parity_max_abs_diff"], 3), numbers["accuracy"]
(100.0, 0.05, 50.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tfft.task import Task, task_for

# An image is "clear" when model.keras' top-1 probability leads the second by at least this much.
# Its decision can only flip if the export moves the two probabilities by half the margin each
# (0.05) the wrong way, several times the error of a faithful int8 export (a few 0.01); on the
# fence (a barely trained model's near-uniform outputs) any rounding flips it, which says nothing.
CLEAR_MARGIN = 0.1


@dataclass
class ExportResult:
    """What `export` wrote and measured (latency and parity in the export's own runtime)."""

    path: str
    size_bytes: int
    latency_ms: float
    parity_top1: float  # % of validation images where the export's top-1 equals model.keras'
    parity_max_abs_diff: float
    format: str = "savedmodel"
    quantize: str = "none"
    parity_images: int = 0
    # Multi-label runs: % of images on which each label is decided (at its threshold) as model.keras decides it.
    parity_labels: dict[str, float] | None = None
    # Single-label: top-1 agreement over the "clear" images (model.keras' top-1 margin >= CLEAR_MARGIN),
    # None when there was none, and how many they were.
    parity_clear_top1: float | None = None
    parity_clear_images: int = 0
    gzip_bytes: int = 0  # the export gzip-compressed (a folder: its files, each compressed, summed)
    runtime: str = ""  # what ran the check, e.g. "onnxruntime 1.32.0"
    threads: int = 0  # the runtime's intra-op threads for the latency
    tensorflow_loaded: bool = True  # TensorFlow was imported where the check ran
    accuracy: float | None = None  # single-label: % of the parity images the export labels right
    reference_accuracy: float | None = None  # the same for model.keras

    def parity_line(self) -> str:
        """`parity: top1 agreement A%, max abs diff D` (the contract's last line), then for a
        single-label run `; clear images (top-1 margin >= 0.1) N/M: top1 agreement C%` (or `none`);
        a multi-label run adds `; label agreement NAME A%, ...` (decisions at the thresholds, per label)."""
        line = (f"parity: top1 agreement {self.parity_top1:.2f}%, "
                f"max abs diff {self.parity_max_abs_diff:.3g}")
        if self.parity_labels is None:
            clear = f"{self.parity_clear_images}/{self.parity_images}"
            line += (f"; clear images (top-1 margin >= {CLEAR_MARGIN:g}) {clear}: " +
                     (f"top1 agreement {self.parity_clear_top1:.2f}%" if self.parity_clear_top1 is not None
                      else "none"))
        if self.parity_labels:
            line += "; label agreement " + ", ".join(f"{name} {value:.2f}%" for name, value in self.parity_labels.items())
        return line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clear_agreement(reference: np.ndarray, exported: np.ndarray, margin: float = CLEAR_MARGIN
                    ) -> tuple[float | None, int]:
    """Top-1 agreement (%) over the images whose reference top-1 probability leads the second by
    at least `margin`, and how many those were (None and 0 when none).

    Example:
    >>> ref = np.array([[0.9, 0.1], [0.52, 0.48], [0.2, 0.8]])
    >>> clear_agreement(ref, np.array([[0.8, 0.2], [0.45, 0.55], [0.6, 0.4]]))
    (50.0, 2)
    """
    ordered = np.sort(np.asarray(reference, np.float64), axis=1)
    if ordered.shape[1] < 2:
        return None, 0
    chosen = (ordered[:, -1] - ordered[:, -2]) >= margin
    count = int(chosen.sum())
    if not count:
        return None, 0
    agree = np.asarray(exported).argmax(axis=1)[chosen] == np.asarray(reference).argmax(axis=1)[chosen]
    return float(agree.mean() * 100.0), count


def compare(reference: np.ndarray, exported: np.ndarray, labels: Sequence[int] | None = None,
            thresholds: Any | None = None, class_names: list[str] | None = None,
            task: Task | None = None) -> dict[str, Any]:
    """The parity numbers of `exported` probabilities against model.keras' `reference` (the
    `ExportResult` fields): top-1 agreement, max abs diff, clear-image agreement, per-label
    agreement (multi-label, with `thresholds`), and accuracy on `labels` when given: what `task`
    (default single-label) adds is `Task.parity`'s."""
    reference = np.asarray(reference, np.float64)
    exported = np.asarray(exported, np.float64)
    if exported.shape != reference.shape:
        raise RuntimeError(f"the export returned probabilities of shape {exported.shape}, expected {reference.shape}")
    clear_top1, clear = clear_agreement(reference, exported)
    numbers: dict[str, Any] = {
        "parity_top1": float((exported.argmax(axis=1) == reference.argmax(axis=1)).mean() * 100.0),
        "parity_max_abs_diff": float(np.abs(exported - reference).max()),
        "parity_images": len(reference), "parity_clear_top1": clear_top1, "parity_clear_images": clear,
        "parity_labels": None,
    }
    numbers.update((task or task_for()).parity(exported, reference, labels=labels, thresholds=thresholds,
                                               class_names=list(class_names or [])))
    return numbers


def format_table(results: Sequence[ExportResult]) -> str:
    """One row per export: format, quantization, size, gzip size, latency (threads), agreement,
    max abs diff, accuracy (single-label), runtime.

    Example:
    >>> row = ExportResult("m.onnx", 2_000_000, 4.2, 100.0, 3e-7, "onnx", gzip_bytes=1_800_000,
    ...                    runtime="onnxruntime 1.32.0", threads=2, parity_images=10)
    >>> print(format_table([row]).splitlines()[2])
    onnx      none           2.00      1.80       4.20 (2)     100.00     3e-07         -  onnxruntime 1.32.0
    """
    head = (f"{'format':<9} {'quantize':<9} {'size MB':>9} {'gzip MB':>9} {'latency ms':>10} {'(thr)':<5} "
            f"{'agree %':>8} {'max diff':>9} {'acc %':>9}  runtime")
    lines = [head, "-" * len(head)]
    for r in results:
        acc = "-" if r.accuracy is None else f"{r.accuracy:.2f}"
        lines.append(f"{r.format:<9} {r.quantize:<9} {r.size_bytes / 1e6:>9.2f} {r.gzip_bytes / 1e6:>9.2f} "
                     f"{r.latency_ms:>10.2f} {f'({r.threads})':<5} {r.parity_top1:>8.2f} "
                     f"{r.parity_max_abs_diff:>9.2g} {acc:>9}  {r.runtime}")
    return "\n".join(lines)


__all__ = ["CLEAR_MARGIN", "ExportResult", "clear_agreement", "compare", "format_table"]

"""The commands that read a finished run directory: evaluate, predict, export.

Above training. The model-level pieces they share with the trainer (metrics, plots, report.md,
`evaluate_model`) live in `tfft.reporting` and are re-exported here. TensorFlow is imported only
inside the functions that need it.

>>> from tfft.evaluation import evaluate_run, format_table
>>> print(format_table(evaluate_run("runs/quickstart")))  # doctest: +SKIP
"""

from __future__ import annotations

from tfft.evaluation.core import evaluate_run, predict_files
from tfft.evaluation.export import ExportResult, ExportSummary, export, export_all
from tfft.evaluation.exporters import EXPORTERS, Exporter
from tfft.evaluation.predict import format_rows, predict
from tfft.reporting.evaluate import evaluate_model
from tfft.reporting.metrics import binary_roc_auc, compute_metrics, confusion_matrix, format_table
from tfft.reporting.plots import plot_confusion_matrix, plot_curves, plot_gallery
from tfft.reporting.report import write_report

__all__ = [
    "EXPORTERS",
    "ExportResult",
    "ExportSummary",
    "Exporter",
    "binary_roc_auc",
    "compute_metrics",
    "confusion_matrix",
    "evaluate_model",
    "evaluate_run",
    "export",
    "export_all",
    "format_rows",
    "format_table",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_gallery",
    "predict",
    "predict_files",
    "write_report",
]

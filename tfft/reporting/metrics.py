"""The single-label metrics table, from `tfft.task.scores` (where `SingleLabel` computes it).

Kept so `from tfft.reporting.metrics import compute_metrics, format_table` goes on working; new
code asks the run's task (`task.metrics_table`, `task.format_table`).
"""

from __future__ import annotations

from tfft.task.scores import EPSILON, binary_roc_auc, compute_metrics, confusion_matrix, format_table

__all__ = ["EPSILON", "binary_roc_auc", "compute_metrics", "confusion_matrix", "format_table"]

"""A multi-label run's decision thresholds, read from its `thresholds.json`.

Example:
>>> read_run_thresholds("/nonexistent/run", ["cat", "dog"])
array([0.5, 0.5])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tfft import layout
from tfft.errors import UserError
from tfft.task import Task
from tfft.task import thresholds as _thresholds


def read_run_thresholds(run_dir: str | os.PathLike, class_names: Sequence[str]) -> np.ndarray:
    """A run's thresholds.json in labels.txt order (0.5 for every label when the file is absent).

    Args:
        run_dir: the run directory.
        class_names: labels.txt order.

    Raises:
        UserError: the file is not one threshold in [0, 1] per label.
    """
    path = Path(run_dir) / layout.THRESHOLDS
    if not path.is_file():
        return np.full(len(class_names), _thresholds.DEFAULT_THRESHOLD)
    try:
        return _thresholds.read_thresholds(path.read_text(encoding="utf-8"), class_names, str(path))
    except ValueError as exc:
        raise UserError(str(path), str(exc), "re-run `tfft train`, or write one threshold per label in [0, 1]") from None


def run_thresholds(run: Any, task: Task) -> Optional[np.ndarray]:
    """The thresholds `task` decides a run's images at (`read_run_thresholds`), or None for a
    task without thresholds."""
    return read_run_thresholds(run.run_dir, run.class_names) if task.thresholded else None

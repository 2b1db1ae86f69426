"""The run directory's layout: every file name tfft writes or reads there, in one place.

A run directory is finished when it holds both `model.keras` and `metrics.json` (`FINISHED`):
`tfft train` writes metrics.json last. `checkpoints/last.npz` makes an unfinished run resumable.

Example:
>>> import pathlib
>>> is_finished(pathlib.Path("/nonexistent"))
False
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
LABELS = "labels.txt"
MODEL = "model.keras"
HISTORY = "history.csv"
PHASES = "phases.json"
METRICS = "metrics.json"
DATA_REPORT = "data_report.json"
CONFUSION_MATRIX = "confusion_matrix.png"
CURVES = "curves.png"
ENVIRONMENT = "environment.json"
RUN_LOG = "run.log"  # the details of the run (the `tfft` logger's records: `tfft --verbose` shows them)
REPORT = "report.md"
CHECKPOINTS = "checkpoints"
CHECKPOINT = f"{CHECKPOINTS}/last.npz"  # the resumable checkpoint (tfft.training.checkpoint)
BEST_WEIGHTS = f"{CHECKPOINTS}/best.weights.npz"
STATE = f"{CHECKPOINTS}/state.json"
SPLIT_LISTS = f"{CHECKPOINTS}/splits.json"  # the examples of each split when the run started (resume checks them)
TENSORBOARD = "tensorboard"
EVAL = "eval"  # eval/<split>/ from `tfft evaluate`
LR_FIND_PLOT = "lr_find.png"
LR_FIND_JSON = "lr_find.json"

FINISHED = (MODEL, METRICS)  # both present: the run finished (metrics.json is written last)
REQUIRED = (MODEL, CONFIG, LABELS)  # what evaluate, predict and export need


def is_finished(run_dir: Path) -> bool:
    """True when `run_dir` holds a finished run."""
    return all((Path(run_dir) / name).is_file() for name in FINISHED)


def has_checkpoint(run_dir: Path) -> bool:
    """True when `run_dir` holds a resumable checkpoint."""
    return (Path(run_dir) / CHECKPOINT).is_file()


def eval_dir(run_dir: Path, split: str) -> Path:
    """Where `tfft evaluate` writes one split's results."""
    return Path(run_dir) / EVAL / split
THRESHOLDS = "thresholds.json"  # multi-label runs: one decision threshold per class
THRESHOLD_INTERVALS = "threshold_intervals.json"  # multi-label runs: how the thresholds were chosen, how sure they are

"""The run directory's layout: every file name tfft writes or reads there, in one place.

A run directory is finished when it holds both `model.keras` and `metrics.json` (`FINISHED`):
`tfft train` writes metrics.json last. `checkpoints/last.npz` makes an unfinished run resumable.

Example:
>>> import pathlib
>>> is_finished(pathlib.Path("/nonexistent"))
False
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

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
EVAL = "eval"  # eval/<split>/ from `tfft evaluate`; eval/<data slug>-<split>/ from `tfft evaluate --data`
LR_FIND_PLOT = "lr_find.png"
LR_FIND_JSON = "lr_find.json"
TOP_LOSSES = "top_losses.png"  # the val top losses with heatmaps that training draws for report.html
TOP_LOSSES_JSON = "top_losses.json"
EXPORT = "export"  # `tfft export` writes here by default (tfft's own: replaced freely)

# Beside the run directories: the per-user cache (`cache_root()`), shared by runs and processes.
FEATURES_DIR = "features"  # the disk feature store (tfft.training.feature_store)
INDEX_DIR = "index"  # the persistent scan index, one file per data source (tfft.data.index)

FINISHED = (MODEL, METRICS)  # both present: the run finished (metrics.json is written last)
REQUIRED = (MODEL, CONFIG, LABELS)  # what evaluate, predict and export need


def cache_root() -> Path:
    """tfft's cache folder: `$TFFT_CACHE_DIR`, else `$XDG_CACHE_HOME/tfft`, else `~/.cache/tfft`.

    The feature store (`FEATURES_DIR`) and the scan index (`INDEX_DIR`) live side by side in it.

    Example:
    >>> cache_root().name in ("tfft",) or "TFFT_CACHE_DIR" in os.environ
    True
    """
    base = os.environ.get("TFFT_CACHE_DIR")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tfft"


def is_finished(run_dir: Path) -> bool:
    """True when `run_dir` holds a finished run."""
    return all((Path(run_dir) / name).is_file() for name in FINISHED)


def has_checkpoint(run_dir: Path) -> bool:
    """True when `run_dir` holds a resumable checkpoint."""
    return (Path(run_dir) / CHECKPOINT).is_file()


def eval_dir(run_dir: Path, split: str, data: Optional[str] = None, source: Optional[str] = None) -> Path:
    """Where `tfft evaluate` writes one split's results: `eval/<split>/` for the run's own data
    (`data` None or the run's `source`), `eval/<data_slug(data)>-<split>/` for other data (never
    over the run's own evaluation).

    Example:
    >>> eval_dir(Path("runs/a"), "val").as_posix(), eval_dir(Path("runs/a"), "val", "/data/new_pets/").as_posix()
    ('runs/a/eval/val', 'runs/a/eval/new_pets-val')
    """
    own = data is None or (source is not None and _same_spec(str(data), str(source)))
    return Path(run_dir) / EVAL / (split if own else f"{data_slug(str(data))}-{split}")


def _same_spec(a: str, b: str) -> bool:
    if a == b:
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.realpath(a) == os.path.realpath(b)


def data_slug(spec: str) -> str:
    """A folder name for a data spec: its scheme and last path part, in letters, digits, `.`, `_`, `-`.

    Example:
    >>> data_slug("/data/other_pets"), data_slug("csv:/x/more.csv"), data_slug("tfds:cifar10:test[:10%]")
    ('other_pets', 'csv-more', 'tfds-cifar10-test-10')
    """
    text = str(spec).rstrip("/\\")
    scheme, _, rest = text.partition(":")
    if rest and re.fullmatch(r"[a-z]+", scheme) and not rest.startswith("//"):  # builtin:, tfds:, csv:...
        name = f"{scheme}-{os.path.splitext(os.path.basename(rest))[0] if scheme == 'csv' else os.path.basename(rest) or rest}"
    else:
        name = os.path.basename(text) or text
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.") or "data"
THRESHOLDS = "thresholds.json"  # multi-label runs: one decision threshold per class
THRESHOLD_INTERVALS = "threshold_intervals.json"  # multi-label runs: how the thresholds were chosen, how sure they are

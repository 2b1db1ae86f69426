"""The run directory: where it is, and atomic writes into it.

Every file is written to a temporary name in the same folder and renamed into place, so a crash
never leaves a truncated `model.keras` or `metrics.json`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tfft.errors import UserError

FINISHED_MARKER = "metrics.json"
STATE_FILE = "checkpoints/state.json"
CHECKPOINT_FILE = "checkpoints/last.npz"  # the resumable checkpoint (tfft.training.checkpoint)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    Example:
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes[-1:])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            with open(tmp_path, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (indented, NaN written as null)."""
    write_text(path, json.dumps(_finite(data), indent=2) + "\n")


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write rows as CSV atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def is_finished(run_dir: Path) -> bool:
    return (run_dir / FINISHED_MARKER).exists() and (run_dir / "model.keras").exists()


def has_state(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT_FILE).exists()


def choose_run_dir(runs_dir: str, name: str, run_dir: str | None, resume: bool, overwrite: bool) -> Path:
    """Pick the run directory: `--run-dir`, or `runs/NAME` numbered `-2`, `-3`... when taken.

    A finished run is never overwritten without `overwrite`; `resume` finds the directory to
    continue (`--run-dir`, else the newest unfinished `runs/NAME*`).
    """
    if run_dir is not None:
        path = Path(run_dir)
        if resume:
            if not has_state(path):
                raise UserError(str(path), f"nothing to resume here (no {CHECKPOINT_FILE})",
                                "drop --resume to start a new run")
            return path
        if path.exists() and any(path.iterdir()):
            if is_finished(path) and not overwrite:
                raise UserError(str(path), "already holds a finished run",
                                "pass --overwrite to replace it, or choose another --run-dir")
            if has_state(path) and not overwrite:
                raise UserError(str(path), "holds an unfinished run",
                                "pass --resume to continue it, or --overwrite to start again")
        return path
    root = Path(runs_dir)
    candidates = [root / name] + sorted(root.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
    if resume:
        unfinished = [p for p in candidates if p.exists() and has_state(p) and not is_finished(p)]
        if not unfinished:
            raise UserError(str(root / name), "no unfinished run to resume",
                            "pass --run-dir DIR of the run, or drop --resume")
        return max(unfinished, key=lambda p: p.stat().st_mtime)
    path, number = root / name, 1
    while path.exists() and any(path.iterdir()):
        number += 1
        path = root / f"{name}-{number}"
    return path

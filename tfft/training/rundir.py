"""Where a run is written: `--run-dir`, or `runs/NAME` numbered `-2`, `-3`... when taken."""

from __future__ import annotations

from pathlib import Path

from tfft.errors import UserError
from tfft.layout import CHECKPOINT, has_checkpoint, is_finished


def choose_run_dir(runs_dir: str, name: str, run_dir: str | None, resume: bool, overwrite: bool) -> Path:
    """Pick the run directory: `--run-dir`, or `runs/NAME` numbered `-2`, `-3`... when taken.

    A finished run is never overwritten without `overwrite`; `resume` finds the directory to
    continue (`--run-dir`, else the newest unfinished `runs/NAME*`).
    """
    if run_dir is not None:
        path = Path(run_dir)
        if resume:
            if not has_checkpoint(path):
                raise UserError(str(path), f"nothing to resume here (no {CHECKPOINT})",
                                "drop --resume to start a new run")
            return path
        if path.exists() and any(path.iterdir()):
            if is_finished(path) and not overwrite:
                raise UserError(str(path), "already holds a finished run",
                                "pass --overwrite to replace it, or choose another --run-dir")
            if has_checkpoint(path) and not overwrite:
                raise UserError(str(path), "holds an unfinished run",
                                "pass --resume to continue it, or --overwrite to start again")
        return path
    root = Path(runs_dir)
    candidates = [root / name] + sorted(root.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
    if resume:
        unfinished = [p for p in candidates if p.exists() and has_checkpoint(p) and not is_finished(p)]
        if not unfinished:
            raise UserError(str(root / name), "no unfinished run to resume",
                            "pass --run-dir DIR of the run, or drop --resume")
        return max(unfinished, key=lambda p: p.stat().st_mtime)
    path, number = root / name, 1
    while path.exists() and any(path.iterdir()):
        number += 1
        path = root / f"{name}-{number}"
    return path

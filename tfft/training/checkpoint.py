"""Resumable state: one .npz (no pickle) holding everything, committed by one atomic rename.

`checkpoints/last.npz` holds the model variables (including the dropout seed generators'
states), the optimizer variables, the compiled metrics' running totals (for a checkpoint taken
inside an epoch) and the progress as JSON. Because it is one file written to a temporary name and
renamed, a process killed at any moment leaves either the previous checkpoint or the new one,
never a mix of the two. `checkpoints/state.json` is a readable copy of the progress, written
after the commit. The data order and augmentation of epoch `e` (and of its batch `i`) depend only
on `(seed, e, i)`, so a resumed deterministic run continues bitwise where the killed one was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfft.atomic import atomic_path, write_json
from tfft.errors import UserError
from tfft.layout import BEST_WEIGHTS, CHECKPOINT, SPLIT_LISTS, STATE

LAST = CHECKPOINT
BEST = BEST_WEIGHTS
GROUPS = ("model", "optimizer", "metrics")


def _arrays(prefix: str, variables: Sequence[Any]) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}/{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    arrays[f"{prefix}/paths"] = np.array([v.path for v in variables], dtype=str)
    return arrays


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def save(run_dir: Path, state: dict[str, Any], model: Sequence[Any], optimizer: Sequence[Any] = (),
         metrics: Sequence[Any] = ()) -> None:
    """Commit a resumable checkpoint (variables and progress) to `run_dir/checkpoints/last.npz`."""
    arrays: dict[str, np.ndarray] = {"state": np.array(json.dumps(state))}
    for group, variables in zip(GROUPS, (model, optimizer, metrics)):
        arrays.update(_arrays(group, variables))
    _write(run_dir / LAST, arrays)
    write_json(run_dir / STATE, state)


def save_variables(path: Path, variables: Sequence[Any]) -> None:
    """Save model variables alone (the best weights) atomically."""
    _write(path, _arrays("model", variables))


def load_state(run_dir: Path) -> dict[str, Any]:
    """The progress of the last committed checkpoint."""
    with np.load(run_dir / LAST, allow_pickle=False) as data:
        return json.loads(str(data["state"]))


def _unnumbered(path: str) -> str:
    """A variable path without the per-process counter of seed generators (`seed_generator_3/`).

    Dropout's seed generator is named by a process-wide counter, so a run resumed in the same
    process (a notebook) sees `seed_generator_1/...` where the checkpoint says `seed_generator/...`.
    """
    return re.sub(r"(^|/)seed_generator_\d+/", r"\1seed_generator/", path)


def restore(path: Path, variables: Sequence[Any], group: str = "model", match_paths: bool = True) -> None:
    """Assign one group of a checkpoint's values to `variables`; raise if they do not match.

    Optimizer and metric variables are matched by order and shape only (`match_paths=False`):
    their names carry a per-process counter (`adam`, `adam_1`, ...) that differs after a restart.

    Args:
        path: `last.npz` or `best.weights.npz`.
        variables: what to assign, in the order they were saved.
        group: `model`, `optimizer` or `metrics`.
        match_paths: also require the variables' paths to match.
    """
    with np.load(path, allow_pickle=False) as data:
        paths = [_unnumbered(str(p)) for p in data[f"{group}/paths"]]
        current = [_unnumbered(v.path) for v in variables]
        shapes_match = len(paths) == len(current) and all(
            tuple(data[f"{group}/{i:05d}"].shape) == tuple(v.shape) for i, v in enumerate(variables))
        if not shapes_match or (match_paths and paths != current):
            raise RuntimeError(f"checkpoint {path} holds {len(paths)} {group} variables that do not match "
                               f"the {len(current)} here")
        for i, variable in enumerate(variables):
            variable.assign(data[f"{group}/{i:05d}"])


def check_same_data(run_dir: Path, state: dict[str, Any], lists: dict[str, list[str]], digest: str) -> None:
    """Refuse to resume on other data than the run started with (its split lists' digest differs).

    A run from before the digest was recorded resumes unchecked.

    Args:
        run_dir: the run directory (its `checkpoints/splits.json` holds the lists it started with).
        state: the checkpoint's progress (`load_state`), with the digest as `data_digest`.
        lists: the split lists now (`tfft.data.sources.split_lists`).
        digest: their `lists_digest`.

    Raises:
        UserError: the data differ; the message counts the examples added and removed per split.
    """
    recorded = state.get("data_digest")
    if recorded is None or recorded == digest:
        return
    try:
        before = json.loads((run_dir / SPLIT_LISTS).read_text())
    except (OSError, ValueError):  # removed by hand: the digest alone says that something changed
        before = {}
    changes = []
    for name in sorted(set(before) | set(lists)) if before else []:
        old, new = set(before.get(name, [])), set(lists.get(name, []))
        if old != new:
            changes.append(f"{name}: {len(new - old)} added, {len(old - new)} removed")
    what = "; ".join(changes) if changes else "the split lists differ"
    raise UserError("data.source", f"the data changed since the run started ({what}); resuming would train "
                    "and score on other splits", "restore the data as it was, or start a new run "
                    "(another --run-dir, or --overwrite)")

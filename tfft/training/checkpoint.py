"""Resumable state: model and optimizer variables as .npz (no pickle), progress as JSON.

Checkpoints are written at the end of every epoch, atomically. The model's variables include
the dropout seed generators' states, and the data order of epoch `e` depends only on
`(seed, e)`, so a resumed deterministic run continues bitwise where the killed one was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tfft.training.rundir import STATE_FILE, atomic_path, write_json

WEIGHTS = "checkpoints/last.weights.npz"
BEST = "checkpoints/best.weights.npz"
OPTIMIZER = "checkpoints/optimizer.npz"


def save_variables(path: Path, variables: list[Any]) -> None:
    """Save variables (in order, with their paths for checking) to an .npz atomically."""
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    arrays["paths"] = np.array([v.path for v in variables])
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_variables(path: Path, variables: list[Any], match_paths: bool = True) -> None:
    """Assign saved values to `variables`; raise if the saved set does not match.

    Optimizer variables are matched by order and shape only (`match_paths=False`): their names
    carry a per-process counter (`adam`, `adam_1`, ...) that differs after a restart.
    """
    with np.load(path, allow_pickle=False) as data:
        paths = [str(p) for p in data["paths"]]
        current = [v.path for v in variables]
        shapes_match = len(paths) == len(current) and all(
            tuple(data[f"v{i:05d}"].shape) == tuple(v.shape) for i, v in enumerate(variables))
        if not shapes_match or (match_paths and paths != current):
            raise RuntimeError(f"checkpoint {path} holds {len(paths)} variables that do not match "
                               f"the model's {len(current)}")
        for i, variable in enumerate(variables):
            variable.assign(data[f"v{i:05d}"])


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    write_json(run_dir / STATE_FILE, state)


def load_state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / STATE_FILE).read_text())

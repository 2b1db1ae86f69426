"""What `tfft interpret` returns and draws, shared by its single- and multi-label halves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from tfft.reporting.top_losses import tiles  # noqa: F401  (re-exported: both interpret halves draw tiles)

INTERPRET = "interpret"  # RUN_DIR/interpret/<split>/
INTERPRET_JSON = "interpret.json"
TOP_LOSSES_PNG = "top_losses.png"
MAX_CLASS_GALLERIES = 20  # one gallery per class up to here; interpret.json says when more were left out


@dataclass
class InterpretResult:
    """What `interpret` found: the top losses with their pixels and heatmaps, and the files written.

    `images` [N, H, W, 3] 0-255 and `heatmaps` [N, H, W] in [0, 1] are the top-loss examples in
    loss order, `paths` their files (None for generated data), `labels` the given label index,
    `predicted` the predicted index (multi-label: `label` the explained label, `labels` 0/1 and
    `predicted` 0/1 at the run's thresholds).
    """

    out_dir: Path
    paths: list
    labels: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    losses: np.ndarray
    images: np.ndarray
    heatmaps: np.ndarray
    most_confused: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    label: Optional[np.ndarray] = None


def slug(name: str) -> str:
    """A class name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "class"

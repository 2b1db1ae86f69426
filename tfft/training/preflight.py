"""The checks of a config that need neither TensorFlow nor a single image: run first, fail fast.

A missing `data.source` folder or a too-small `data.image_size` used to surface 40-50 s after
the start (after TensorFlow and the backbone loaded), leaving a half-made run directory behind.
`check_config` looks at the paths a config names and at the sizes its backbone accepts, with
file-system look-ups and the backbone table only; `tfft`'s commands call it before they import
TensorFlow, and `tfft.train` before it makes the run directory.

Example:
>>> from tfft.config import load_config
>>> check_config(load_config({"data": {"source": "builtin:shapes", "image_size": [64, 64]},
...                           "model": {"backbone": "mobilenet_v3_small"}}))
>>> check_config(load_config({"data": {"image_size": [16, 16]}, "model": {"backbone": "resnet50"}}))
Traceback (most recent call last):
...
tfft.errors.UserError: data.image_size: 16x16 is too small: resnet50 needs at least 32x32 pixels (hint: ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from tfft import backbones, layout
from tfft.data.sources import check_source
from tfft.errors import UserError
from tfft.task import task_for

TEACHER_KEY = "distill.teacher"


def check_config(cfg: Any) -> None:
    """Refuse a config whose paths do not exist or whose image size its backbone cannot take.

    Checks `data.source` (a folder or `csv:` manifest exists), `model.backbone` (a `keras:` file
    exists; a registry backbone's minimum input size), `model.weights` (a weights file exists) and
    `distill.teacher` (a finished run), in that order. Imports no TensorFlow.

    Args:
        cfg: a validated `tfft.config.Config`.

    Raises:
        UserError: naming the key, what was found and what to do.
    """
    check_source(cfg.data.source)
    backbones.check(cfg.model.backbone, tuple(cfg.data.image_size))
    backbones.weights_path(cfg.model.weights)
    check_teacher(cfg)


def check_teacher(cfg: Any) -> Optional[Path]:
    """The teacher run directory of a config (None without `distill.teacher`), checked before any
    data is read: a finished run of a single-label task.

    Raises:
        UserError: naming `distill.teacher`: no such folder, or a run that is not finished.
    """
    teacher = cfg.distill.teacher
    if not teacher:
        return None
    path = Path(teacher).expanduser()
    if not path.is_dir():
        raise UserError(TEACHER_KEY, f"run directory {path} not found",
                        "give the folder a finished `tfft train` printed as `run dir: PATH`")
    if not layout.is_finished(path):
        raise UserError(TEACHER_KEY, f"{path} is not a finished run (it lacks {' or '.join(layout.FINISHED)})",
                        f"finish it first (tfft train {path / layout.CONFIG} --run-dir {path} --resume), "
                        "or point distill.teacher at a finished run")
    task_for(cfg.task).refuse("distill", TEACHER_KEY)
    return path

"""The run directory: where a run is written, and what a finished one holds.

`choose_run_dir` picks `--run-dir` or `runs/NAME` (numbered `-2`, `-3`... when taken). `open_run`
reads a finished run's config and labels; `load_model`, `split_files` and `split_examples` give
what the commands that read a run directory (evaluate, predict, export, ensemble, prune, data
issues) need, listed exactly as training listed it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tfft import layout
from tfft.data.rules import split_folders
from tfft.errors import UserError
from tfft.layout import CHECKPOINT, has_checkpoint, is_finished
from tfft.task import AUTO, TASKS, Task, task_for


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


# What a run writes before its first epoch: a start refused then leaves only these behind.
SETUP_FILES = (layout.CONFIG, layout.ENVIRONMENT, layout.LABELS, layout.DATA_REPORT, layout.RUN_LOG)


def folders_to_make(path: Path) -> Optional[list[Path]]:
    """The folders that making run directory `path` creates (it and its missing parents, innermost
    first); [] when it exists empty; None when it already holds something (never cleaned up).

    Example:
    >>> [p.name for p in folders_to_make(Path("/nonexistent/runs/demo"))]
    ['demo', 'runs', 'nonexistent']
    """
    if path.exists():
        return None if not path.is_dir() or any(path.iterdir()) else []
    made = []
    while not path.exists() and path != path.parent:
        made.append(path)
        path = path.parent
    return made


def discard_unstarted(path: Path, made: Optional[list[Path]]) -> bool:
    """After a refused start, remove what this command made of run directory `path`: its set-up
    files (`SETUP_FILES`) and the folders `folders_to_make` listed, only while it holds nothing else.

    Returns:
        Whether `path` was cleaned up (False: it holds more, or was not this command's).
    """
    if made is None or not path.is_dir():
        return False
    entries = list(path.iterdir())
    if any(entry.name not in SETUP_FILES or not entry.is_file() for entry in entries):
        return False
    for entry in entries:
        entry.unlink()
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # a parent that another run has written into meanwhile
            break
    return True


# --------------------------------------------------------------------------- a finished run

@dataclass
class Run:
    """What `open_run` found in a run directory."""

    run_dir: Path
    config: Any  # tfft.config.Config
    class_names: list[str]

    @property
    def model_path(self) -> Path:
        return self.run_dir / layout.MODEL

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config.data.image_size)

    @property
    def fast_decode(self) -> bool:
        """The run's `data.fast_decode` (JPEG downscale-on-decode) as the decoders take it."""
        return str(self.config.data.fast_decode) != "off"


def open_run(run_dir: str | os.PathLike) -> Run:
    """Check a run directory and read its config and labels.

    Args:
        run_dir: a folder written by `tfft train` (config.yaml, labels.txt, model.keras).

    Returns:
        A `Run` with the resolved config and class names.

    Raises:
        UserError: the folder or one of its files is missing.

    Example:
    >>> run = open_run("runs/quickstart")  # doctest: +SKIP
    >>> run.class_names  # doctest: +SKIP
    ['cat', 'dog']
    """
    from tfft.config import load_config

    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise UserError(str(path), "run directory not found",
                        "give the folder that `tfft train` printed as `run dir: PATH`")
    for name in layout.REQUIRED:
        if not (path / name).is_file():
            raise UserError(str(path / name), f"{name} is missing from the run directory",
                            "is the run finished? `tfft train ... --resume` completes it")
    config = load_config(path / layout.CONFIG)
    class_names = read_labels(path / layout.LABELS)
    return Run(run_dir=path, config=config, class_names=class_names)


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names from labels.txt, one a line, in output index order."""
    names = [line.rstrip("\r\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n.strip()]
    if not names:
        raise UserError(str(path), "labels.txt lists no class names", "one class name a line")
    return names


def load_model(run: Run):
    """Load model.keras with safe_mode=True (built-in layers only), compile=False (`load_saved_model`)."""
    from tfft.backbones import load_saved_model

    return load_saved_model(run.model_path, str(run.model_path),
                            "re-run `tfft train`; model.keras must hold only built-in Keras layers")


def task_of(run: Run) -> Task:
    """The run's `Task`: its config's `task` (`auto`: a thresholded task when the run wrote
    thresholds.json, else single-label).

    Raises:
        UserError: the config names a task no one registered.
    """
    kind = getattr(run.config, "task", AUTO)
    if kind in (None, AUTO) and (Path(run.run_dir) / layout.THRESHOLDS).is_file():
        found = TASKS.find(lambda name, entry: entry.thresholded)
        kind = found[0] if found else AUTO
    return task_for(kind)


def data_task(task: Task) -> str:
    """The `task=` the data layer reads `task`'s labels with (multi-hot vectors or class indices)."""
    return task.data_labels if task.multi_hot else AUTO


def labelled_files(run: Run, split: str, data: Optional[str] = None) -> tuple[list[str], np.ndarray]:
    """File paths and labels of a run's split as its task reads them: `split_examples` (multi-hot
    rows) or `split_files` (class indices)."""
    return (split_examples if task_of(run).multi_hot else split_files)(run, split, data)


def generated_split(run: Run, source: str, split: str, batch_size: int, task: str = "auto"):
    """The run's `split` of a source that is not files on disk (builtin:, tfds:), checked against the run.

    Returns:
        `(splits, data_cfg)`: the loaded `DataSplits` and the run's data config with `source` and
        `batch_size` replaced, ready for `tfft.data.make_dataset(splits, split, data_cfg, ...)`.
    """
    from tfft import data as tfft_data

    data_cfg = run.config.data.model_copy(update={"source": source, "batch_size": int(batch_size)})
    splits = tfft_data.load_splits(data_cfg, run.config.seed, task=task)
    if split not in splits.splits or len(splits.splits[split]) == 0:
        raise UserError(f"{source} [{split}]", f"this source has no {split!r} split",
                        f"choose --split from {sorted(splits.splits)}")
    if list(splits.class_names) != list(run.class_names):
        raise UserError(source, f"classes {list(splits.class_names)} differ from the model's {run.class_names}",
                        "evaluate on data with the run's classes")
    return splits, data_cfg


def split_files(run: Run, split: str = "val", data: Optional[str] = None,
                ) -> tuple[list[str], np.ndarray]:
    """File paths and label indices (labels.txt order) of one split of a run's data.

    The images are listed by `tfft.data.load_splits`, exactly as training listed them (the same
    extensions, hidden files and folders ignored, the same seeded split and `limit_per_class`).

    Args:
        run: from `open_run`.
        split: train | val | test.
        data: a data spec replacing the config's `data.source`. A plain folder of class
            subfolders (no train/ val/ test/ inside) is evaluated whole, whatever `split` says.

    Returns:
        (paths, labels) with labels indexing `run.class_names`.
    """
    from tfft.data import load_splits
    from tfft.data import fs
    from tfft.data.sources import source_of

    config = run.config
    source = str(data if data is not None else config.data.source)
    data_cfg = config.data.model_copy(update={"source": source})
    root = fs.path(source_of(source).location)
    if data is not None and source_of(source).name == "folder" and root.is_dir() and not split_folders(root):
        data_cfg = data_cfg.model_copy(update={"val_split": 0.0, "test_split": 0.0, "limit_per_class": None})
        split = "train"
    splits = load_splits(data_cfg, config.seed)
    if split not in splits.splits or len(splits.splits[split]) == 0:
        raise UserError(f"{source} [{split}]", f"no images found for this split (the data has "
                        f"{sorted(k for k, v in splits.splits.items() if len(v))})",
                        "check --data / data.source and --split (train | val | test)")
    chosen = splits.splits[split]
    if chosen.paths is None or chosen.kind != "files":
        raise UserError(source, "this source has no image files to list", "give a folder or csv: source")
    names = [splits.class_names[int(i)] for i in chosen.labels]
    index = {name: i for i, name in enumerate(run.class_names)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise UserError(str(source), f"classes {unknown} are not among the model's classes "
                        f"{run.class_names}", "evaluate on data with the same class folders")
    return [str(p) for p in chosen.paths], np.asarray([index[n] for n in names], dtype=np.int64)


def split_examples(run: Any, split: str, data: Optional[str] = None) -> tuple[list[str], np.ndarray]:
    """File paths and multi-hot labels (labels.txt order) of a multi-label run's split.

    `data`: `csv:OTHER.csv` gives every row of that manifest; a folder of class subfolders is
    read whole, each image labelled with its folder; None is the run's own `data.source` split.

    Raises:
        UserError: no such split, classes that differ from the run's, a bad manifest row.
    """
    from tfft.data import load_splits
    from tfft.data import multilabel as data_multilabel
    from tfft.data.sources import source_of

    source = str(data if data is not None else run.config.data.source)
    if data is not None and source_of(source).name == "csv":
        return data_multilabel.manifest_examples(source, run.class_names)
    if data is not None:  # a folder: one label per image, from its class folder
        paths, labels = split_files(run, split, data)
        return paths, data_multilabel.one_hot(labels, len(run.class_names))
    splits = load_splits(run.config.data, run.config.seed, task=data_task(task_of(run)))
    if split not in splits.splits or len(splits.splits[split]) == 0:
        raise UserError(f"--split {split}", f"the data has no {split!r} split; it has {sorted(splits.splits)}",
                        "pick one of those")
    if list(splits.class_names) != list(run.class_names):
        raise UserError(source, f"labels {list(splits.class_names)} differ from the model's {list(run.class_names)}",
                        "evaluate on data with the run's labels")
    part = splits.splits[split]
    return [str(p) for p in part.paths], np.asarray(part.labels)

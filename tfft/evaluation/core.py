"""`tfft evaluate`: a run directory's model.keras on one split, written to RUN_DIR/eval/<split>/
(other data, `--data SPEC`: RUN_DIR/eval/<slug of SPEC>-<split>/, beside the run's own evaluation).

One path for every task: the split's labels are read as the run's task reads them, the metrics
are `task.metrics_table` at the run's thresholds (if the task has them) and the figures are the
task's (`tfft.reporting.evaluate.evaluate_split`). The trainer's own end-of-training evaluation
of an in-memory model is in `tfft.reporting.evaluate`, below training; this module reads run
directories.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional, Sequence

import numpy as np

from tfft import layout
from tfft.errors import UserError
from tfft.data import streams
from tfft.data.files import decoded_files
from tfft.data.sources import source_of
from tfft.reporting.evaluate import collect, evaluate_split
from tfft.runs.directory import data_task, generated_split, labelled_files, load_model, open_run, task_of
from tfft.runs.thresholds import run_thresholds


def predict_files(model, paths: Sequence[str], labels: Any, image_size,
                  batch_size: int = 32, *, fast_decode: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode files as training does (`fast_decode`: the run's `Run.fast_decode`) and run the
    model; unreadable files are dropped.

    Args:
        labels: one label per path (class indices [N], or multi-hot rows [N, C]).

    Returns:
        (probs [M, C] float32, labels [M] (or [M, C]), kept [M] indices into `paths`).
    """
    paths = [str(p) for p in paths]
    labels = np.asarray(labels)
    ds = decoded_files(paths, image_size, fast_decode=fast_decode).batch(int(batch_size)).prefetch(streams.PREFETCH)
    probs, kept = [], []
    for images, index in ds:
        probs.append(np.asarray(model.predict_on_batch(images), dtype=np.float32))
        kept.append(index.numpy())
    if not probs:
        return (np.zeros((0, int(model.output_shape[-1])), np.float32), labels[:0], np.zeros(0, np.int64))
    kept_all = np.concatenate(kept)
    return np.concatenate(probs), labels[kept_all], kept_all


def evaluate_run(run_dir: str | os.PathLike, data: Optional[str] = None, split: str = "val",
                 batch_size: Optional[int] = None, top_k: Optional[int] = None) -> dict[str, Any]:
    """Evaluate a run's model.keras on one split and write RUN_DIR/eval/<split>/ (with `data`
    other than the run's: RUN_DIR/eval/<slug of data>-<split>/, see `tfft.layout.eval_dir`).

    Writes `metrics.json` (`{"<split>": {...}}`, the run directory's metrics.json schema) and the
    task's figures: single-label `confusion_matrix.png`, `confusion_matrix_normalized.png` and
    `worst.png`; multi-label `pr_curves.png`, `label_cooccurrence.png` and a per-label
    `confusion_matrix.png` (at the run's thresholds; `--data` a csv: every row is scored).

    Args:
        run_dir: a folder written by `tfft train`.
        data: a data spec replacing the config's `data.source` (a folder of class subfolders
            with no train/ val/ test/ inside is evaluated whole).
        split: train | val | test.
        batch_size: default: the run's `data.batch_size`.
        top_k: default: the run's `evaluate.top_k`.

    Returns:
        The split's metrics (see `Task.metrics_table`) plus `split`, `data`, `skipped`, `out_dir`.

    Example:
    >>> m = evaluate_run("runs/quickstart", split="val")  # doctest: +SKIP
    >>> print(format_table(m))  # doctest: +SKIP
    """
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", str(split)):  # it names a folder under eval/
        raise UserError("--split", f"expected a split name (train, val, test), got {split!r}", "e.g. --split val")
    run = open_run(run_dir)
    task = task_of(run)
    batch_size = int(batch_size or run.config.data.batch_size)
    source = str(data if data is not None else run.config.data.source)
    thresholds = run_thresholds(run, task)
    model = load_model(run)
    if source_of(source).has_files:
        y, probs, images, skipped = _score_files(run, model, data, split, batch_size)
        gallery = {"image_size": run.image_size, "fast_decode": run.fast_decode}
    else:
        y, probs, images, skipped = _score_generated(run, model, source, split, batch_size)
        gallery = {}
    out_dir = layout.eval_dir(run.run_dir, split, data, run.config.data.source)
    metrics = evaluate_split(task, y, probs, run.class_names, out_dir, split=split, thresholds=thresholds,
                             top_k=int(top_k or run.config.evaluate.top_k), merge=False,
                             extra={"data": source, "skipped": skipped}, images=images, detail=True, gallery=gallery)
    metrics["out_dir"] = str(out_dir)
    return metrics


def _score_files(run: Any, model: Any, data: Optional[str], split: str, batch_size: int) -> tuple:
    """(labels, probabilities, index list -> paths, skipped paths) of a split of image files."""
    paths, labels = labelled_files(run, split, data)
    probs, y, kept = predict_files(model, paths, labels, run.image_size, batch_size, fast_decode=run.fast_decode)
    if len(kept) == 0:
        raise UserError(str(data or run.config.data.source), f"none of the {len(paths)} images of "
                        f"split {split!r} could be decoded", "run `tfft data check` on it")
    kept_set = set(kept.tolist())
    skipped = [paths[i] for i in range(len(paths)) if i not in kept_set]
    return y, probs, (lambda indices: [paths[kept[i]] for i in indices]), skipped


def _score_generated(run: Any, model: Any, source: str, split: str, batch_size: int) -> tuple:
    """The same for sources that are not files on disk (builtin:, tfds:, tfrecord:): a gallery's
    images are found by a second pass over the split (only they are kept in memory)."""
    from tfft import data as tfft_data

    splits, data_cfg = generated_split(run, source, split, batch_size, task=data_task(task_of(run)))
    dataset = tfft_data.make_dataset(splits, split, data_cfg, seed=run.config.seed, training=False)
    y, probs = collect(model, dataset)

    def images(indices: Sequence[int]) -> list:
        wanted, found, offset = set(int(i) for i in indices), {}, 0
        for batch, _ in dataset:
            for j in range(int(batch.shape[0])):
                if offset + j in wanted:
                    found[offset + j] = np.asarray(batch[j]).astype(np.uint8)
            offset += int(batch.shape[0])
        return [found[int(i)] for i in indices]

    return y, probs, images, []


__all__ = ["evaluate_run", "predict_files"]

"""`tfft evaluate`: a run directory's model.keras on one split, written to RUN_DIR/eval/<split>/
(other data, `--data SPEC`: RUN_DIR/eval/<slug of SPEC>-<split>/, beside the run's own evaluation).

The trainer's own end-of-training evaluation of an in-memory model is
`tfft.reporting.evaluate.evaluate_model`, below training; this module reads run directories.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional, Sequence

import numpy as np

from tfft import layout
from tfft.evaluation import multilabel_eval
from tfft.errors import UserError
from tfft.data.files import decoded_files
from tfft.data.sources import source_of
from tfft.runs.directory import generated_split, is_multi_label, load_model, open_run, split_files
from tfft.reporting.evaluate import worst_examples, write_split
from tfft.reporting.metrics import compute_metrics
from tfft.reporting.plots import plot_confusion_matrix, plot_gallery


def predict_files(model, paths: Sequence[str], labels: Sequence[int], image_size,
                  batch_size: int = 32, *, fast_decode: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode files as training does (`fast_decode`: the run's `Run.fast_decode`) and run the
    model; unreadable files are dropped.

    Returns:
        (probs [M, C] float32, labels [M], kept [M] indices into `paths`).
    """
    import tensorflow as tf

    paths = [str(p) for p in paths]
    labels = np.asarray(labels, dtype=np.int64)
    ds = decoded_files(paths, image_size, labels, fast_decode=fast_decode).map(lambda image, i, y: (image, y, i))
    ds = ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)
    probs, ys, kept = [], [], []
    for images, y, index in ds:
        probs.append(np.asarray(model.predict_on_batch(images), dtype=np.float32))
        ys.append(y.numpy())
        kept.append(index.numpy())
    if not probs:
        return (np.zeros((0, int(model.output_shape[-1])), np.float32), np.zeros(0, np.int64),
                np.zeros(0, np.int64))
    return np.concatenate(probs), np.concatenate(ys), np.concatenate(kept)


def evaluate_run(run_dir: str | os.PathLike, data: Optional[str] = None, split: str = "val",
                 batch_size: Optional[int] = None, top_k: Optional[int] = None) -> dict[str, Any]:
    """Evaluate a run's model.keras on one split and write RUN_DIR/eval/<split>/ (with `data`
    other than the run's: RUN_DIR/eval/<slug of data>-<split>/, see `tfft.layout.eval_dir`).

    Writes `metrics.json` (`{"<split>": {...}}`, the run directory's metrics.json schema),
    `confusion_matrix.png`, `confusion_matrix_normalized.png` and `worst.png`.

    Args:
        run_dir: a folder written by `tfft train`.
        data: a data spec replacing the config's `data.source` (a folder of class subfolders
            with no train/ val/ test/ inside is evaluated whole).
        split: train | val | test.
        batch_size: default: the run's `data.batch_size`.
        top_k: default: the run's `evaluate.top_k`.

    Returns:
        The split's metrics (see `compute_metrics`) plus `split`, `data`, `skipped`, `out_dir`.

    Example:
    >>> m = evaluate_run("runs/quickstart", split="val")  # doctest: +SKIP
    >>> print(format_table(m))  # doctest: +SKIP
    """
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", str(split)):  # it names a folder under eval/
        raise UserError("--split", f"expected a split name (train, val, test), got {split!r}", "e.g. --split val")
    run = open_run(run_dir)
    batch_size = int(batch_size or run.config.data.batch_size)
    top_k = int(top_k or run.config.evaluate.top_k)
    if is_multi_label(run):  # metrics at the run's thresholds; --data csv: scores every row
        return multilabel_eval.evaluate_run_multilabel(run, data, split, batch_size)
    source = str(data if data is not None else run.config.data.source)
    if not source_of(source).has_files:
        return _evaluate_generated(run, source, split, batch_size, top_k)
    paths, labels = split_files(run, split, data)
    model = load_model(run)
    probs, y, kept = predict_files(model, paths, labels, run.image_size, batch_size, fast_decode=run.fast_decode)
    if len(kept) == 0:
        raise UserError(str(data or run.config.data.source), f"none of the {len(paths)} images of "
                        f"split {split!r} could be decoded", "run `tfft data check` on it")
    metrics = compute_metrics(y, probs, run.class_names, top_k=top_k)
    kept_set = set(kept.tolist())
    metrics.update({
        "split": split,
        "data": str(data if data is not None else run.config.data.source),
        "skipped": [paths[i] for i in range(len(paths)) if i not in kept_set],
    })
    out_dir = layout.eval_dir(run.run_dir, split, data, run.config.data.source)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_split(out_dir, split, metrics, "confusion_matrix.png", merge=False)
    plot_confusion_matrix(metrics["confusion_matrix"], run.class_names,
                          out_dir / "confusion_matrix_normalized.png", normalize=True)
    worst, caption = worst_examples(y, probs)
    plot_gallery([paths[kept[i]] for i in worst], y[worst], probs[worst].argmax(axis=1),
                 probs[worst], run.class_names, out_dir / "worst.png", title=f"{split}: {caption}",
                 image_size=run.image_size, fast_decode=run.fast_decode)
    metrics["out_dir"] = str(out_dir)
    return metrics


def _evaluate_generated(run: Any, source: str, split: str, batch_size: int, top_k: int) -> dict[str, Any]:
    """evaluate_run for sources that are not files on disk (builtin:, tfds:, tfrecord:)."""
    from tfft import data as tfft_data

    splits, data_cfg = generated_split(run, source, split, batch_size)
    model = load_model(run)
    dataset = tfft_data.make_dataset(splits, split, data_cfg, seed=run.config.seed, training=False)
    out_dir = layout.eval_dir(run.run_dir, split, source, run.config.data.source)
    out_dir.mkdir(parents=True, exist_ok=True)
    probs, ys = [], []
    for images, labels in dataset:
        probs.append(np.asarray(model.predict_on_batch(images), np.float32))
        ys.append(np.asarray(labels))
    probs_all, y = np.concatenate(probs), np.concatenate(ys).astype(np.int64)
    metrics = compute_metrics(y, probs_all, run.class_names, top_k=top_k)
    metrics.update({"split": split, "data": source, "skipped": []})
    write_split(out_dir, split, metrics, "confusion_matrix.png", merge=False)
    plot_confusion_matrix(metrics["confusion_matrix"], run.class_names,
                          out_dir / "confusion_matrix_normalized.png", normalize=True)
    worst, caption = worst_examples(y, probs_all)
    wanted, gallery, offset = set(int(i) for i in worst), {}, 0
    for images, _ in dataset:  # a second pass keeps only the gallery's images in memory
        for j in range(int(images.shape[0])):
            if offset + j in wanted:
                gallery[offset + j] = np.asarray(images[j]).astype(np.uint8)
        offset += int(images.shape[0])
    plot_gallery([gallery[int(i)] for i in worst], y[worst], probs_all[worst].argmax(axis=1),
                 probs_all[worst], run.class_names, out_dir / "worst.png", title=f"{split}: {caption}")
    metrics["out_dir"] = str(out_dir)
    return metrics


__all__ = ["evaluate_run", "predict_files"]

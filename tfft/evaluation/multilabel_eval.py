"""Multi-label run directories: evaluating, predicting and exporting with thresholds.

The model-level part (collecting probabilities, choosing and reading thresholds, scoring a split)
is `tfft.reporting.multilabel_eval`, re-exported here for the commands.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from tfft import layout
from tfft.data.sources import source_of
from tfft.reporting.multilabel import thresholds_document
from tfft.reporting.multilabel_eval import THRESHOLDS_FILE, choose_thresholds, collect, evaluate_multilabel
from tfft.runs.thresholds import read_run_thresholds

__all__ = ["THRESHOLDS_FILE", "choose_thresholds", "collect", "evaluate_multilabel", "read_run_thresholds",
           "thresholds_document"]


def predict_manifest(model: Any, paths: Sequence[str], labels: np.ndarray, image_size: Sequence[int],
                     batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode files as training does and run the model; unreadable files are dropped.

    Returns:
        (labels [M, C], probabilities [M, C], kept [M] indices into `paths`).
    """
    import tensorflow as tf

    from tfft.data.files import decoded_files

    ds = decoded_files([str(p) for p in paths], image_size)
    probs, kept = [], []
    for images, index in ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE):
        probs.append(np.asarray(model.predict_on_batch(images), np.float32))
        kept.append(index.numpy())
    if not probs:
        width = int(model.output_shape[-1])
        return np.zeros((0, width), np.int32), np.zeros((0, width), np.float32), np.zeros(0, np.int64)
    kept_all = np.concatenate(kept)
    return np.asarray(labels)[kept_all], np.concatenate(probs), kept_all


def prediction_row(path: str, probabilities: np.ndarray, class_names: Sequence[str],
                   thresholds: np.ndarray) -> dict[str, Any]:
    """`tfft predict`'s row for a multi-label run: the labels at or above their thresholds (most
    probable first) with their probabilities, and every label's probability.

    Example:
    >>> prediction_row("a.jpg", np.array([0.9, 0.2, 0.6]), ["cat", "dog", "sofa"], np.array([0.5, 0.5, 0.4]))
    {'path': 'a.jpg', 'labels': ['cat', 'sofa'], 'probabilities': [0.9, 0.6], 'all_probabilities': {'cat': 0.9, 'dog': 0.2, 'sofa': 0.6}}
    """
    p = np.asarray(probabilities, dtype=np.float64)
    chosen = [i for i in np.argsort(-p, kind="stable") if p[i] >= thresholds[i]]
    return {"path": path, "labels": [class_names[i] for i in chosen],
            "probabilities": [round(float(p[i]), 6) for i in chosen],
            "all_probabilities": {name: round(float(p[i]), 6) for i, name in enumerate(class_names)}}


def format_prediction_rows(rows: list[dict[str, Any]], class_names: Sequence[str]) -> str:
    """Multi-label predictions as CSV: `path,labels,p_<label>...,error` (labels space-separated;
    `error` empty for a classified file).

    Example:
    >>> row = prediction_row("a.jpg", np.array([0.9, 0.2]), ["cat", "dog"], np.array([0.5, 0.5]))
    >>> print(format_prediction_rows([row], ["cat", "dog"]))
    path,labels,p_cat,p_dog,error
    a.jpg,cat,0.900000,0.200000,
    """
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "labels"] + [f"p_{name}" for name in class_names] + ["error"])
    for row in rows:
        scores = row.get("all_probabilities") or {}
        cells = [row["path"], " ".join(row["labels"])]
        cells += [f"{scores[name]:.6f}" if name in scores else "" for name in class_names]
        writer.writerow(cells + [row.get("error") or ""])
    return buffer.getvalue().rstrip("\n")


def joined_labels(probabilities: Any, labels: Any, thresholds: Any) -> Any:
    """In TensorFlow: the labels at or above their thresholds, in labels.txt order, joined by a
    space (`""` for none): tf.string [N]. What the SavedModel's `label` output is for multi-label."""
    import tensorflow as tf

    keep = probabilities >= tf.cast(thresholds, probabilities.dtype)[None, :]
    names = tf.broadcast_to(labels[None, :], tf.shape(keep))
    return tf.strings.reduce_join(tf.ragged.boolean_mask(names, keep), axis=-1, separator=" ")


def label_parity(exported: np.ndarray, reference: np.ndarray, thresholds: np.ndarray,
                 class_names: Sequence[str]) -> dict[str, float]:
    """% of images on which an export decides each label as model.keras does (at the thresholds)."""
    same = np.asarray(exported >= thresholds) == np.asarray(reference >= thresholds)
    return {name: float(same[:, i].mean() * 100.0) for i, name in enumerate(class_names)}


def evaluate_run_multilabel(run: Any, data: Optional[str], split: str, batch_size: int) -> dict[str, Any]:
    """`tfft evaluate` for a multi-label run: metrics at the run's thresholds, in RUN_DIR/eval/<split>/.

    Files are decoded as in training; a generated source (`builtin:shapes-multi`) is rendered.
    """
    from tfft import data as tfft_data
    from tfft.errors import UserError
    from tfft.runs.directory import generated_split, load_model, split_examples

    thresholds = read_run_thresholds(run.run_dir, run.class_names)
    source = str(data if data is not None else run.config.data.source)
    model = load_model(run)
    skipped: list[str] = []
    if not source_of(source).has_files:
        splits, data_cfg = generated_split(run, source, split, batch_size, task="multi_label")
        y, probs = collect(model, tfft_data.make_dataset(splits, split, data_cfg, seed=run.config.seed,
                                                         training=False))
    else:
        paths, labels = split_examples(run, split, data)
        y, probs, kept = predict_manifest(model, paths, labels, run.image_size, batch_size)
        if not len(kept):
            raise UserError(source, f"none of the {len(paths)} images could be decoded", "run `tfft data check` on it")
        kept_set = set(kept.tolist())
        skipped = [paths[i] for i in range(len(paths)) if i not in kept_set]
    out_dir = layout.eval_dir(run.run_dir, split, data, run.config.data.source)
    metrics = evaluate_multilabel(y, probs, run.class_names, thresholds, out_dir, split=split, merge=False,
                                  extra={"data": source, "skipped": skipped})
    metrics["out_dir"] = str(out_dir)
    return metrics

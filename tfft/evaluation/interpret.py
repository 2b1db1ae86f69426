"""`tfft interpret`: what a run's model gets wrong, and where it looks (Grad-CAM).

Writes `RUN_DIR/interpret/<split>/` (or `--out DIR`): `interpret.json`, `top_losses.csv`,
`top_losses.png` (each image beside its heatmap), `most_confused.png` and one gallery per class
(`class_<k>.png`: its most confident right and wrong predictions). Images are decoded and resized
exactly as training decodes them (`tfft.data.files`), so the heatmaps lie over the pixels the
model saw. Multi-label runs are explained per label: an (image, label) pair's loss is its binary
cross-entropy and its heatmap that label's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tfft import atomic, layout
from tfft.data.sources import source_of
from tfft.errors import UserError
from tfft.evaluation.core import predict_files
from tfft.evaluation.interpret_figures import (INTERPRET, INTERPRET_JSON, MAX_CLASS_GALLERIES, TOP_LOSSES_PNG,
                                              InterpretResult, slug, tiles)
from tfft.evaluation.interpret_multilabel import interpret_multilabel
from tfft.models.cam import DEFAULT_METHOD, METHODS
from tfft.models.heatmaps import heatmaps
from tfft.task.scores import confusion_matrix
from tfft.reporting.plots import plot_gallery
from tfft.reporting.top_losses import rank
from tfft.runs.directory import data_task, generated_split, labelled_files, load_model, open_run, task_of


def _source(run: Any, split: str, data: Optional[str], batch_size: int):
    """(model, probs [M, C], labels [M] or [M, C], fetch(indices) -> images, paths [M] or None)."""
    source = str(data if data is not None else run.config.data.source)
    model = load_model(run)
    if not source_of(source).has_files:
        from tfft import data as tfft_data

        splits, data_cfg = generated_split(run, source, split, batch_size, task=data_task(task_of(run)))
        dataset = tfft_data.make_dataset(splits, split, data_cfg, seed=run.config.seed, training=False)
        probs, ys = [], []
        for images, labels in dataset:
            probs.append(np.asarray(model.predict_on_batch(images), np.float32))
            ys.append(np.asarray(labels))

        def fetch(indices):  # a second pass keeps only the wanted images in memory
            wanted, found, offset = set(int(i) for i in indices), {}, 0
            for images, _ in dataset:
                for j in range(int(images.shape[0])):
                    if offset + j in wanted:
                        found[offset + j] = np.asarray(images[j], np.float32)
                offset += int(images.shape[0])
            return np.stack([found[int(i)] for i in indices]) if len(indices) else None

        return model, np.concatenate(probs), np.concatenate(ys), fetch, None
    paths, labels = labelled_files(run, split, data)
    probs, y, kept = predict_files(model, paths, labels, run.image_size, batch_size, fast_decode=run.fast_decode)
    if len(kept) == 0:
        raise UserError(source, f"none of the {len(paths)} images of split {split!r} could be decoded",
                        "run `tfft data check` on it")
    kept_paths = [paths[int(i)] for i in kept]

    def fetch(indices):
        from tfft.data.files import read_image

        return np.stack([read_image(kept_paths[int(i)], run.image_size, fast_decode=run.fast_decode)
                         for i in indices]).astype(np.float32) if len(indices) else None

    return model, probs, y, fetch, kept_paths


def _out_dir(run: Any, split: str, out: Optional[str], data: Optional[str]) -> Path:
    if out is None:  # `interpret/<split>/`, or `interpret/<name of data>-<split>/` as `tfft evaluate` names it
        return run.run_dir / INTERPRET / layout.eval_dir(Path(), split, data, str(run.config.data.source)).name
    path = Path(out).expanduser()
    if path.is_file() or (path.is_dir() and any(path.iterdir()) and not (path / INTERPRET_JSON).is_file()):
        raise UserError(f"--out {out}", "holds files that `tfft interpret` did not write",
                        "give an empty or new folder")
    return path


def interpret(run_dir: str | os.PathLike, split: str = "val", data: Optional[str] = None, top: int = 16,
              out: Optional[str] = None, batch_size: Optional[int] = None,
              member: Optional[int] = None, method: str = DEFAULT_METHOD) -> InterpretResult:
    """Top losses, most confused classes and per-class galleries of a run, with Grad-CAM heatmaps.

    Args:
        run_dir: a folder written by `tfft train` or `tfft ensemble` (an ensemble's heatmaps are
            its members' averaged).
        split: train | val | test.
        data: a data spec replacing the config's `data.source` (as `tfft evaluate --data`).
        top: N, the number of top losses (and the images per gallery, at most 8 a class).
        out: the output folder (default `RUN_DIR/interpret/<split>/`).
        batch_size: default: the run's `data.batch_size`.
        member: an ensemble's member K (1-based) whose heatmaps to draw; None: their mean.
        method: the heatmaps' `gradcam`, `gradcam++` or `scorecam` (`tfft.heatmaps`).

    Returns:
        An `InterpretResult`: arrays of the top losses (images, heatmaps, labels, predictions,
        probabilities, losses), `most_confused` rows and `files` written.

    Example:
    >>> result = interpret("runs/quickstart", split="val", top=8)  # doctest: +SKIP
    >>> result.heatmaps.shape, result.files["top_losses"]  # doctest: +SKIP
    ((8, 224, 224), PosixPath('runs/quickstart/interpret/val/top_losses.png'))
    """
    if int(top) < 1:
        raise UserError("--top", f"expected an integer >= 1, got {top}", "e.g. --top 16")
    if method not in METHODS:
        raise UserError("--method", f"got {method!r}", f"one of {', '.join(METHODS)}")
    run = open_run(run_dir)
    out_dir = _out_dir(run, split, out, data)
    task = task_of(run)
    batch_size = int(batch_size or run.config.data.batch_size)
    model, probs, y, fetch, paths = _source(run, split, data, batch_size)

    def explain(images: np.ndarray, classes: np.ndarray) -> np.ndarray:
        return heatmaps(model, images, class_index=classes, batch_size=batch_size, member=member, method=method)

    names = list(run.class_names)
    out_dir.mkdir(parents=True, exist_ok=True)
    if task.multi_hot:  # several labels an image: explained per (image, label) pair
        return interpret_multilabel(run, explain, probs, y, fetch, paths, int(top), out_dir, split, method,
                                    task)
    y = y.astype(np.int64)
    losses = task.example_losses(probs, y)
    pred = probs.argmax(axis=1)
    order = rank(losses, top)
    images = fetch(order)
    maps = explain(images, pred[order])
    files = {"top_losses": out_dir / TOP_LOSSES_PNG}
    plot_gallery(tiles(images, maps), y[order], pred[order], probs[order], names, files["top_losses"],
                 max_images=len(order), title=f"{split}: top {len(order)} losses (Grad-CAM of the predicted class)")
    rows = [{"path": paths[i] if paths else None, "index": int(i), "label": names[y[i]], "predicted": names[pred[i]],
             "probability": round(float(probs[i, pred[i]]), 6), "loss": round(float(losses[i]), 6)}
            for i in order.tolist()]
    atomic.write_csv(out_dir / "top_losses.csv", rows, ["path", "index", "label", "predicted", "probability", "loss"])
    files["top_losses_csv"] = out_dir / "top_losses.csv"

    confused = _most_confused(explain, probs, y, pred, names, fetch, out_dir, split, files)
    files.update(_class_galleries(explain, probs, y, pred, names, fetch, min(int(top), 8), out_dir))
    atomic.write_json(out_dir / INTERPRET_JSON, {
        "split": split, "data": str(data if data is not None else run.config.data.source), "method": method,
        "member": member,
        "task": "single_label", "images": int(len(y)), "top_losses": rows, "most_confused": confused,
        "class_galleries_left_out": max(0, len(names) - MAX_CLASS_GALLERIES),
        "files": {k: v.name for k, v in files.items()}})
    files["json"] = out_dir / INTERPRET_JSON
    return InterpretResult(out_dir=out_dir, paths=[r["path"] for r in rows], labels=y[order], predicted=pred[order],
                           probabilities=probs[order], losses=losses[order], images=images, heatmaps=maps,
                           most_confused=confused, files=files)


def _most_confused(explain: Any, probs: np.ndarray, y: np.ndarray, pred: np.ndarray, names: list, fetch: Any,
                   out_dir: Path, split: str, files: dict) -> list:
    """The 5 most frequent (true, predicted) mistakes, and most_confused.png of up to 4 images each."""
    cm = np.asarray(confusion_matrix(y, pred, len(names)))
    pairs = sorted(((int(cm[i, j]), i, j) for i in range(len(names)) for j in range(len(names))
                    if i != j and cm[i, j] > 0), reverse=True)[:5]
    confused = [{"label": names[i], "predicted": names[j], "count": count} for count, i, j in pairs]
    examples = np.asarray([k for _, i, j in pairs for k in
                           sorted(np.flatnonzero((y == i) & (pred == j)), key=lambda k: -probs[k, j])[:4]], np.int64)
    if len(examples):
        files["most_confused"] = out_dir / "most_confused.png"
        ex_images = fetch(examples)
        plot_gallery(tiles(ex_images, explain(ex_images, pred[examples])), y[examples],
                     pred[examples], probs[examples], names, files["most_confused"], max_images=len(examples),
                     title=f"{split}: most confused pairs, " + ", ".join(
                         f"{c['label']} -> {c['predicted']} ({c['count']})" for c in confused))
    return confused


def _class_galleries(explain: Any, probs: np.ndarray, y: np.ndarray, pred: np.ndarray, names: list,
                     fetch: Any, count: int, out_dir: Path) -> dict:
    """One PNG per predicted class: its most confident right predictions, then its most confident wrong."""
    files = {}
    for c in range(min(len(names), MAX_CLASS_GALLERIES)):
        ranked = np.argsort(-probs[:, c], kind="stable")
        right = [k for k in ranked if pred[k] == c and y[k] == c][: max(1, count // 2)]
        wrong = [k for k in ranked if pred[k] == c and y[k] != c][: max(1, count - len(right))]
        chosen = np.asarray(right + wrong, np.int64)
        if not len(chosen):
            continue
        files[f"class_{c}"] = out_dir / f"class_{c}_{slug(names[c])}.png"
        images = fetch(chosen)
        plot_gallery(tiles(images, explain(images, np.full(len(images), c))), y[chosen], pred[chosen],
                     probs[chosen], names, files[f"class_{c}"], max_images=len(chosen),
                     title=f"predicted {names[c]}: {len(right)} most confident right, {len(wrong)} wrong")
    return files


__all__ = ["InterpretResult", "interpret"]

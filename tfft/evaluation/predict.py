"""`predict`: top-k labels for image files, folders and globs with a run's model.keras."""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence

import numpy as np

from tfft.errors import UserError
from tfft.data.files import expand_paths, read_image
from tfft.runs.directory import load_model, open_run, task_of
from tfft.runs.thresholds import run_thresholds
from tfft.task import task_of_rows


def predict(run_dir: str | os.PathLike, paths: Sequence[str], top_k: int = 3, tta: bool = False,
            batch_size: int = 32) -> list[dict[str, Any]]:
    """Classify images with a run's model.keras.

    Images are decoded and resized exactly as in training, batched, and (with `tta`) averaged
    with their horizontal mirror. A file that cannot be read gets a row whose `error` says why
    (every row has `error`: None when the file was classified).

    Args:
        run_dir: a folder written by `tfft train`.
        paths: files, folders (searched recursively for image extensions) and globs
            (`photos/**/*.jpg`).
        top_k: labels per image (clipped to the number of classes).
        tta: average the probabilities of the image and its horizontal flip.
        batch_size: images per model call.

    Returns:
        One dict per file, in input order: `{"path", "labels": [...], "probabilities": [...],
        "error": None}`, or `{"path", "labels": [], "probabilities": [], "error": "..."}`. For a multi-label run
        `labels` are those at or above their thresholds (thresholds.json; `top_k` does not
        apply) and `all_probabilities` maps every label to its probability.

    Example:
    >>> rows = predict("runs/quickstart", ["photos/"], top_k=2)  # doctest: +SKIP
    >>> rows[0]["labels"], rows[0]["probabilities"]  # doctest: +SKIP
    (['dog', 'cat'], [0.93, 0.07])
    """
    if top_k < 1:
        raise UserError("--top-k", f"expected an integer >= 1, got {top_k}", "e.g. --top-k 3")
    run = open_run(run_dir)
    files = expand_paths(list(paths))
    if not files:
        raise UserError(" ".join(map(str, paths)) or "PATH", "no image files found",
                        f"give files, folders or globs of {', '.join(('.jpg', '.png', '.gif', '.bmp', '.webp'))} images")
    model = load_model(run)
    task = task_of(run)
    thresholds = run_thresholds(run, task)
    rows: list[Optional[dict[str, Any]]] = [None] * len(files)
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        batch = np.stack([image for _, image in pending]).astype(np.float32)
        probs = np.asarray(model.predict_on_batch(batch), dtype=np.float64)
        if tta:
            probs = (probs + np.asarray(model.predict_on_batch(batch[:, :, ::-1, :]), np.float64)) / 2.0
        for (index, _), p in zip(pending, probs):
            rows[index] = {**task.prediction_row(files[index], p, run.class_names, thresholds, top_k=int(top_k)),
                           "error": None}
        pending.clear()

    for index, path in enumerate(files):
        try:
            if not os.path.isfile(path):
                raise FileNotFoundError("file not found")
            image = read_image(path, run.image_size, fast_decode=run.fast_decode)
        except Exception as exc:  # one bad file must not stop the others
            rows[index] = {"path": path, "labels": [], "probabilities": [], "error": _reason(exc)}
            continue
        pending.append((index, image))
        if len(pending) >= batch_size:
            flush()
    flush()
    return [row for row in rows if row is not None]


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def failures(rows: list[dict[str, Any]]) -> int:
    """How many of `predict`'s rows are files that could not be classified.

    Example:
    >>> failures([{"path": "a.jpg", "error": None}, {"path": "b.jpg", "error": "file not found"}])
    1
    """
    return sum(1 for row in rows if row.get("error"))


def format_rows(rows: list[dict[str, Any]], fmt: str = "csv", top_k: Optional[int] = None) -> str:
    """Predictions as CSV (`path,label_1,prob_1,...,error`: the same columns whatever the files;
    `error` is empty for a classified file) or a JSON list.

    Args:
        rows: from `predict`.
        fmt: "csv" or "json".
        top_k: the number of label/probability column pairs (default: the widest row).

    Example:
    >>> print(format_rows([{"path": "a.jpg", "labels": ["dog"], "probabilities": [0.9]}]))
    path,label_1,prob_1,error
    a.jpg,dog,0.900000,
    """
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt != "csv":
        raise UserError("--format", f"expected csv or json, got {fmt!r}")
    return task_of_rows(rows).format_predictions(rows, top_k=top_k)

"""The images an export is checked and calibrated on, decoded exactly as in training.

Parity: up to N validation images (every n-th file; test or train when the run has no val split),
with their labels for single-label runs. Calibration (int8): ~100 training images, a seeded sample.
builtin:/tfds: sources have no files: their images are written as lossless PNGs into `scratch`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tfft.data.files import read_images
from tfft.data.sources import source_of
from tfft.errors import UserError
from tfft.runs.directory import Run, labelled_files, task_of

CALIBRATION_IMAGES = 100


def _generated_files(run: Run, split: str, limit: int, scratch: Path) -> tuple[list[str], list[int]]:
    """For sources that are not files (builtin:, tfds:): up to `limit` images as lossless PNGs in
    a new folder inside `scratch` (the caller's temporary folder, removed by it), and their labels."""
    from PIL import Image

    from tfft import data as tfft_data

    splits = tfft_data.load_splits(run.config.data, run.config.seed)
    if split not in splits.splits or len(splits.splits[split]) == 0:
        raise UserError(str(run.config.data.source), f"no {split!r} split")
    folder = Path(tempfile.mkdtemp(prefix=f"{split}-", dir=scratch))
    paths: list[str] = []
    labels: list[int] = []
    dataset = tfft_data.make_dataset(splits, split, run.config.data, seed=run.config.seed, training=False)
    for images, targets in dataset:
        targets = np.asarray(targets)
        for image, target in zip(np.asarray(images), targets):
            if len(paths) >= limit:
                return paths, labels
            path = folder / f"{len(paths):05d}.png"
            Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(path)
            paths.append(str(path))
            labels.append(int(np.argmax(target)) if np.ndim(target) else int(target))
    return paths, labels


def _split_paths(run: Run, split: str, limit: int, scratch: Path) -> tuple[list[str], list[int] | None]:
    if not source_of(run.config.data.source).has_files:
        paths, labels = _generated_files(run, split, limit, scratch)
        return paths, (None if task_of(run).multi_hot else labels)
    paths, labels = labelled_files(run, split)
    return paths, (None if task_of(run).multi_hot else [int(label) for label in labels])


def parity_images(run: Run, limit: int, scratch: Path) -> tuple[list[str], list[np.ndarray], list[int] | None]:
    """Up to `limit` validation images (every n-th file), decoded as in training, and their labels
    (single-label runs; None otherwise)."""
    for split in ("val", "test", "train"):
        try:
            paths, labels = _split_paths(run, split, limit, scratch)
        except UserError:
            continue
        step = max(1, len(paths) // limit)
        chosen = paths[::step][:limit]
        good, images = read_images(chosen, run.image_size, fast_decode=run.fast_decode)
        if good:
            if labels is not None:
                by_path = dict(zip(paths, labels))
                labels = [by_path[path] for path in good]
            return good, images, labels
    raise UserError(str(run.config.data.source), "no validation images to check parity on",
                    "the run's data.source must still exist where it was when training")


def calibration_images(run: Run, scratch: Path, count: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """`count` training images (a sample seeded by the run's seed) for int8 calibration."""
    for split in ("train", "val"):
        try:
            paths, _ = _split_paths(run, split, int(count * 1.2) + 1, scratch)
        except UserError:
            continue
        rng = np.random.default_rng(run.config.seed)
        order = rng.permutation(len(paths))[: int(count * 1.2) + 1]
        _, images = read_images([paths[int(i)] for i in order], run.image_size, fast_decode=run.fast_decode)
        if images:
            return images[:count]
    raise UserError(str(run.config.data.source), "no training images to calibrate int8 on",
                    "the run's data.source must still exist, or use --quantize dynamic")

"""A multi-label image set from a single-label one: mosaics of two photos side by side.

Each mosaic puts two photos of the same split next to each other and is labelled with the set of
classes they show (`cat`, `dog` or `cat dog` from a cat/dog folder), written with a
`path,labels,split` manifest that `data.source: csv:MANIFEST` reads as multi-label data. Every
photo appears in two mosaics of its own split (once on the left, once on the right, with two
random partners), so N photos make N mosaics and no photo crosses splits.

The source is a folder with `train/CLASS/` and `val/CLASS/`; the val photos are divided per class
into a `val` part (where a run chooses its thresholds) and a `test` part (`test_fraction`), so
tuned thresholds can be scored on images that did not choose them. What the multi-label
benchmark (`benchmarks/bench_multilabel.py`) and the pets-mini multi-label tests train on.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional, Union

import numpy as np

from tfft.atomic import write_text

MANIFEST = "manifest.csv"


def build_mosaics(data: Union[str, Path], out: Union[str, Path], size: int = 160, seed: int = 0,
                  photos_per_class: Optional[int] = None, test_fraction: float = 0.5) -> Path:
    """Write the mosaics (JPEG, `size` x `2 * size`) and `OUT/manifest.csv`; returns the manifest.

    Args:
        data: a folder with `train/CLASS/` and `val/CLASS/` image folders.
        out: where the mosaics (`train/0000.jpg`, ...) and the manifest go.
        size: each photo is resized to `size` x `size`.
        seed: the val/test division and the pairing depend only on it.
        photos_per_class: use only the first N photos (sorted) of each class in each split.
        test_fraction: the share of each class's val photos that go to `test` instead.

    Returns:
        The manifest path (`path,labels,split`, paths relative to `out`).

    Example:
    >>> manifest = build_mosaics("../shared/datasets/pets-mini", "/tmp/mosaics", size=64)  # doctest: +SKIP
    >>> open(manifest).readline().strip()  # doctest: +SKIP
    'path,labels,split'
    """
    from PIL import Image

    from tfft.data.sources import list_class_folders, list_images

    data, out = Path(data), Path(out)
    rng = np.random.default_rng(seed)
    classes = list_class_folders(data / "train")
    photos: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for name in classes:
        photos["train"] += [(p, name) for p in list_images(data / "train" / name)[:photos_per_class]]
        held = list_images(data / "val" / name)[:photos_per_class]
        order = rng.permutation(len(held))
        kept = int(round(len(held) * (1.0 - float(test_fraction))))
        photos["val"] += [(held[i], name) for i in order[:kept]]
        photos["test"] += [(held[i], name) for i in order[kept:]]
    rows = []
    for split, items in photos.items():
        if not items:
            continue
        (out / split).mkdir(parents=True, exist_ok=True)
        order = rng.permutation(len(items))  # photo order[i] is left in mosaic i, right in mosaic i - 1
        for k in range(len(order)):
            left, right = items[order[k]], items[order[(k + 1) % len(order)]]
            canvas = Image.new("RGB", (2 * size, size))
            for slot, (path, _) in enumerate((left, right)):
                with Image.open(path) as photo:
                    canvas.paste(photo.convert("RGB").resize((size, size), Image.BILINEAR), (slot * size, 0))
            name = f"{split}/{k:04d}.jpg"
            canvas.save(out / name, quality=92)
            rows.append((name, " ".join(sorted({left[1], right[1]})), split))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "labels", "split"])
    writer.writerows(rows)
    manifest = out / MANIFEST
    write_text(manifest, buffer.getvalue())
    return manifest


__all__ = ["MANIFEST", "build_mosaics"]

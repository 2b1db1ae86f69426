"""`tfft data pack SOURCE --out DIR`: a dataset written as TFRecord shards, read back as `tfrecord:DIR`.

The source is listed and split as training lists it (`load_splits`: the same seeded split,
unreadable files left out); each split's examples are written in that order, `per_shard` to a
shard (`train-00000-of-00004.tfrecord`). A record is a `tf.train.Example`: the encoded image
(JPEG bytes kept as they are; re-encoded only above `max_side`, or as a lossless PNG when the
image needs PIL to decode: EXIF rotation, CMYK, 16-bit), its label(s), split, key and size.
Beside each shard a JSON sidecar lists its examples and their byte offsets (what `tfrecord:`
lists without opening a shard); `index.json` (written last) holds the counts, classes, shards,
per-shard counts and the source's digest.

Resumable: `pack.json` (the plan) is written first; each shard is written to a temporary file
and renamed, then its sidecar; a re-run with the same plan skips the shards whose sidecar is
there. A non-empty DIR that is not this plan's is refused without `overwrite`.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from tfft import atomic
from tfft.config import DataConfig
from tfft.data import decode as _decode
from tfft.data import fs as _fs
from tfft.data.sources import load_splits, source_of
from tfft.data.sources.split import lists_digest, split_lists
from tfft.data.sources.tfrecord import FORMAT, INDEX, sidecar
from tfft.errors import UserError

PLAN = "pack.json"
_HEADER, _FOOTER = 12, 4  # a TFRecord record: length (8 bytes) + its crc (4), the data, the data's crc (4)


def _plan(splits: Any, source: str, per_shard: int, max_side: Optional[int]) -> dict[str, Any]:
    """What to write: each split's examples in order, cut into shards, and a digest of it all."""
    base = _fs.absolute(source_of(source).location)
    base = os.path.dirname(base) if source_of(source).name == "csv" else base
    shards = []
    for name, split in splits.splits.items():
        count = len(split)
        total = max(1, -(-count // per_shard))
        for i in range(total):
            shards.append({"file": f"{name}-{i:05d}-of-{total:05d}.tfrecord", "split": name,
                           "start": i * per_shard, "count": min(per_shard, count - i * per_shard)})
    digest = lists_digest({"lists": split_lists(splits), "per_shard": [per_shard], "max_side": [str(max_side)]})
    return {"format": FORMAT, "source": source, "base": base, "classes": list(splits.class_names),
            "task": splits.task, "max_side": max_side, "per_shard": per_shard, "digest": digest,
            "shards": [s for s in shards if s["count"] > 0]}


def _key(path: str, base: str) -> str:
    """An example's key: its path below the source's folder (the path itself elsewhere)."""
    path = _fs.absolute(path)
    return path[len(base) + 1:] if path.startswith(base.rstrip("/") + "/") else path


def _encoded(path: str, size: tuple[int, int], fmt: str, route: int, max_side: Optional[int]) -> tuple[bytes, tuple[int, int], str]:
    """(bytes to store, (width, height), format): the file's bytes as they are, unless too large or PIL-routed."""
    data = _fs.read_bytes(path)
    large = max_side is not None and max(size) > max_side
    if route != _decode.ROUTE_PIL and not large:
        return data, size, fmt
    from PIL import Image

    pixels = _decode.pil_decode(data)  # EXIF rotation, CMYK, 16-bit as training reads them
    image = Image.fromarray(pixels)
    if large:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    out = io.BytesIO()
    jpeg = fmt == "JPEG" and large
    image.save(out, format="JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {}))
    return out.getvalue(), (image.width, image.height), "JPEG" if jpeg else "PNG"


def _example(data: bytes, label: Any, split: str, key: str, size: tuple[int, int]) -> bytes:
    import tensorflow as tf

    labels = [int(i) for i in np.flatnonzero(label)] if np.ndim(label) else [int(label)]
    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
               "label": tf.train.Feature(int64_list=tf.train.Int64List(value=labels)),
               "split": tf.train.Feature(bytes_list=tf.train.BytesList(value=[split.encode()])),
               "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[key.encode()])),
               "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(size[0])])),
               "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(size[1])]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shard(out: Path, shard: dict[str, Any], split: Any, plan: dict[str, Any]) -> int:
    """Write one shard (a temporary file renamed) and then its sidecar; the bytes written."""
    import tensorflow as tf

    listed: dict[str, list[Any]] = {k: [] for k in ("key", "label", "split", "offset", "length", "size", "format")}
    position = 0
    with atomic.atomic_path(out / shard["file"]) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for i in range(shard["start"], shard["start"] + shard["count"]):
            size = (int(split.sizes[i][0]), int(split.sizes[i][1]))
            data, size, fmt = _encoded(str(split.paths[i]), size, str(split.formats[i]), int(split.routes[i]),
                                       plan["max_side"])
            key = _key(str(split.paths[i]), plan["base"])
            record = _example(data, split.labels[i], shard["split"], key, size)
            writer.write(record)
            label = split.labels[i]
            listed["key"].append(key)
            listed["label"].append([int(j) for j in np.flatnonzero(label)] if np.ndim(label) else int(label))
            listed["split"].append(shard["split"])
            listed["offset"].append(position + _HEADER)
            listed["length"].append(len(record))
            listed["size"].append(list(size))
            listed["format"].append(fmt)
            position += _HEADER + len(record) + _FOOTER
    atomic.write_json(out / sidecar(shard["file"]), {"count": shard["count"], "bytes": position,
                                                     "digest": plan["digest"], **listed})
    return position


def _done(out: Path, shard: dict[str, Any], digest: str) -> bool:
    side = out / sidecar(shard["file"])
    if not (side.is_file() and (out / shard["file"]).is_file()):
        return False
    listed = json.loads(side.read_text(encoding="utf-8"))
    return (listed.get("digest") == digest and listed.get("count") == shard["count"]
            and (out / shard["file"]).stat().st_size == listed.get("bytes"))


def pack(source: str, out: str, *, max_side: Optional[int] = None, per_shard: int = 1000, val_split: float = 0.2,
         test_split: float = 0.0, seed: int = 42, overwrite: bool = False,
         echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Write `source` as TFRecord shards in `out` (see the module docstring); returns the index.

    Args:
        source: a `data.source` whose examples are image files (a folder, `csv:MANIFEST`).
        out: the output folder (local).
        max_side: re-encode images whose longer side is larger (JPEG at quality 95; others PNG).
        per_shard: examples per shard.
        val_split, test_split, seed: the split, as `data.val_split` / `data.test_split` / `seed`
            give it in training (a source with val/ or test/ folders keeps them).
        overwrite: write into a non-empty `out` that holds another pack or other files.
        echo: where the progress lines go.

    Raises:
        UserError: a source without files, bad numbers, a non-empty `out` without `overwrite`.

    Example:
    >>> index = pack("photos/", "packed/", max_side=512)  # doctest: +SKIP
    >>> index["counts"]  # doctest: +SKIP
    {'train': 640, 'val': 160}
    """
    if max_side is not None and int(max_side) < 8:
        raise UserError("--max-side", f"expected at least 8 pixels, got {max_side}", "e.g. --max-side 512")
    for option, value in (("--val-split", val_split), ("--test-split", test_split)):
        if not 0.0 <= float(value) < 1.0:
            raise UserError(option, f"expected a fraction in [0, 1), got {value}", f"e.g. {option} 0.2")
    if int(per_shard) < 1:
        raise UserError("--per-shard", f"expected at least 1, got {per_shard}", "e.g. --per-shard 1000")
    origin = source_of(source)
    if not origin.has_files:
        raise UserError("SOURCE", f"{source!r} has no image files to pack", "pack a folder or csv:MANIFEST")
    origin.check()
    if not _fs.is_local(out):
        raise UserError("--out", f"packs are written to a local folder, got {out!r}",
                        "pack locally, then copy the folder (gsutil cp -r, ...)")
    cfg = DataConfig(source=origin.spec, val_split=val_split, test_split=test_split)
    splits = load_splits(cfg, seed)
    plan = _plan(splits, origin.spec, int(per_shard), None if max_side is None else int(max_side))
    folder = Path(out).expanduser()
    previous = _read(folder / PLAN)
    if previous.get("digest") != plan["digest"]:
        folder = atomic.check_output(folder, overwrite=overwrite,
                                     hint="choose another --out, or pass --overwrite (a pack of the same "
                                          "source and options resumes without it)")
        if (folder / INDEX).is_file():  # another pack's index (--overwrite): this one's is written last
            (folder / INDEX).unlink()
        atomic.write_json(folder / PLAN, plan)
    started, written = time.perf_counter(), 0
    for number, shard in enumerate(plan["shards"], start=1):
        if _done(folder, shard, plan["digest"]):
            echo(f"pack: [{number}/{len(plan['shards'])}] {shard['file']}: done before, skipped")
            continue
        size = _write_shard(folder, shard, splits.splits[shard["split"]], plan)
        written += shard["count"]
        rate = written / max(1e-9, time.perf_counter() - started)
        echo(f"pack: [{number}/{len(plan['shards'])}] {shard['file']}: {shard['count']} images, "
             f"{size / 1e6:.1f} MB ({rate:.0f} images/s)")
    index = _index(folder, plan, splits)
    atomic.write_json(folder / INDEX, index)
    echo(f"pack: wrote {sum(index['counts'].values())} images in {len(index['shards'])} shards to {folder} "
         f"(read it with data.source: tfrecord:{folder})")
    return index


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _index(folder: Path, plan: dict[str, Any], splits: Any) -> dict[str, Any]:
    return {"format": FORMAT, "source": plan["source"], "source_digest": plan["digest"],
            "classes": plan["classes"], "task": plan["task"], "max_side": plan["max_side"],
            "counts": {name: len(split) for name, split in splits.splits.items()},
            "per_class": {name: splits.counts(name) for name in splits.splits},
            "shards": [{"file": s["file"], "split": s["split"], "count": s["count"],
                        "bytes": (folder / s["file"]).stat().st_size} for s in plan["shards"]],
            "skipped": list(splits.skipped)}

"""Sources whose examples are image files (a folder, a CSV manifest): listing, scanning, `Split`s.

Files are scanned through the source's persistent index (`tfft.data.index`): a local file by a
header probe and a check decode, a file on another file system (`gs://`, `ram://`, ...) by reading
it once through `tf.io.gfile` and probing its header from the bytes; either only when it is new
or changed. Remote files must decode with TensorFlow's own decoders (JPEG, PNG, GIF, BMP, WebP):
one that needs PIL (EXIF rotation, CMYK, 16-bit) is skipped with the reason, since PIL reads
local files only (`tfft data pack` such a folder instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from tfft.config import DataConfig
from tfft.data import decode as _decode
from tfft.data import index as _index
from tfft.data import probe as _probe
from tfft.data.rules import SPLIT_NAMES
from tfft.data import fs as _fs
from tfft.data.sources.base import DataSplits, Split
from tfft.data.sources.split import take_limit
from tfft.errors import DataError

REMOTE_NEEDS_PIL = _probe.REMOTE_NEEDS_PIL


def list_images(folder: Union[str, Path]) -> list[str]:
    """Image files under `folder` (recursively, sorted; hidden files/folders and other extensions
    ignored); `folder` may be on any file system `tfft.data.fs` knows."""
    found = []
    for dirpath, dirnames, filenames in _fs.walk(str(folder)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _decode.is_image_file(name):
                found.append(_fs.join(dirpath, name))
    return found


def scan(paths: list[str], source: Optional[str] = None,
         listed: Optional[dict[str, tuple[str, str]]] = None) -> list[_probe.Probe]:
    """One `Probe` per path, through `source`'s persistent index (`tfft.data.index`: only new or
    changed files are opened, local or remote); without `source`, local files by `scan_files` and
    others from their bytes (gfile). `listed`: `{path: (label, split)}` the index records with each file."""
    if source is not None:
        return _index.scan(source, paths, listed)
    local = [p for p in paths if _fs.is_local(p)]
    probes = {p.path: p for p in _probe.scan_files(local)} if local else {}
    remote = [p for p in paths if p not in probes]
    probes.update(zip(remote, _probe.scan_remote(remote)))
    return [probes[p] for p in paths]


def finish_files(source: str, class_names: list[str], per_split: dict[str, dict[str, list[str]]],
                  data_cfg: DataConfig, seed: int, skipped: list[dict[str, str]],
                  where_root: Optional[Path] = None, train_dir: Optional[Path] = None) -> DataSplits:
    """Apply the per-class limit, scan the chosen files, drop unreadable ones, build `Split`s."""
    for split_name, per_class in per_split.items():
        for c in class_names:
            per_class[c] = take_limit(per_class.get(c, []), data_cfg.limit_per_class, seed, c, split_name)
    every = [p for per_class in per_split.values() for c in class_names for p in per_class[c]]
    listed = {p: (c, split) for split, per_class in per_split.items() for c in class_names for p in per_class[c]}
    probes = {p.path: p for p in scan(every, source, listed)}
    bad = [probes[p] for p in every if not probes[p].ok]
    if bad and data_cfg.on_bad_image == "error":
        first = bad[0]
        raise DataError(first.path, f"unreadable image: {first.reason}"
                        + (f" ({len(bad) - 1} more unreadable)" if len(bad) > 1 else ""),
                        "remove or fix the file, or set data.on_bad_image: skip to skip unreadable files")
    skipped = list(skipped) + [{"path": p.path, "reason": p.reason or "unreadable"} for p in bad]
    splits: dict[str, Split] = {}
    for split_name in SPLIT_NAMES:
        if split_name not in per_split:
            continue
        paths, labels, routes, sizes, formats = [], [], [], [], []
        for index, c in enumerate(class_names):
            for p in per_split[split_name][c]:
                probe = probes[p]
                if not probe.ok:
                    continue
                paths.append(p)
                labels.append(index)
                routes.append(probe.route)
                sizes.append((probe.width, probe.height))
                formats.append(probe.format or "")
        if split_name == "train":
            counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
            empty = [c for c, n in zip(class_names, counts) if n == 0]
            if empty:
                where = str((train_dir / empty[0]) if train_dir is not None
                            else (where_root / empty[0]) if where_root else source)
                raise DataError(where, f"no readable images for class(es) {empty} in the training split",
                                "every class needs at least one readable training image; "
                                "see the skipped files above")
        splits[split_name] = Split(
            name=split_name, kind="files",
            paths=np.asarray(paths, dtype=object),
            labels=np.asarray(labels, dtype=np.int32),
            routes=np.asarray(routes, dtype=np.int8),
            sizes=np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
            formats=np.asarray(formats, dtype=object))
    return DataSplits(class_names=list(class_names), splits=splits, skipped=skipped, source=source,
                      kind="files")

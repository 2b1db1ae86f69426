"""Images read from a list of files, decoded and resized exactly as training decodes them.

Evaluate, predict, every export's parity check and the studies read files through these, so that
they see the pixels a run was trained on (the same route per file, TF or PIL, and the same JPEG
downscale-on-decode).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np


def decode_bytes(data, image_size, *, fast_decode: bool = True):
    """Encoded bytes (a scalar tf.string) -> float32 [H, W, 3] 0..255, as in training.

    `fast_decode` is the run's `data.fast_decode` (`Run.fast_decode`): JPEG downscale-on-decode.
    """
    from tfft.data import decode

    return decode.decode_and_resize(data, tuple(image_size), fast_decode=fast_decode)


def read_image(path: str | os.PathLike, image_size, *, fast_decode: bool = True) -> np.ndarray:
    """One file -> float32 [H, W, 3] 0..255, decoded as training decodes it (pass the run's
    `Run.fast_decode`).

    Raises:
        Exception: the file is missing or not a readable image.
    """
    from tfft.data import decode  # probes the header: odd files (CMYK, EXIF-rotated) go through PIL

    return np.asarray(decode.decode_and_resize(os.fspath(path), tuple(image_size), fast_decode=fast_decode))


def decoded_files(paths: list[str], image_size, *extra: np.ndarray, fast_decode: bool = True):
    """A dataset of (image float32 [H, W, 3], index into `paths`, *extra[index]) for the files
    that decode, each decoded by the route training uses (TF or PIL; JPEGs DCT-scaled unless
    `fast_decode` is False); unreadable files dropped."""
    import tensorflow as tf

    from tfft.data import decode, pyfunc, streams
    from tfft.data.sources.files import scan

    size = (int(image_size[0]), int(image_size[1]))
    probes = scan(paths)  # local files by scan_files, others (gs://, ram://) from their bytes
    ok = np.asarray([p.ok for p in probes], dtype=bool)
    routes = np.asarray([p.route if p.ok else 0 for p in probes], dtype=np.int32)
    index = np.arange(len(paths), dtype=np.int64)[ok]
    columns = ([paths[i] for i in index], routes[ok], index) + tuple(np.asarray(e)[ok] for e in extra)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.map(pyfunc.traced(lambda p, r, i, *rest: (decode.decode_path(p, r, size, fast_decode=fast_decode),
                                                     i, *rest)), num_parallel_calls=streams.PARALLEL)
    return ds.ignore_errors().with_options(streams.options())


def read_images(paths: list[str], image_size, *, fast_decode: bool = True) -> tuple[list[str], list[np.ndarray]]:
    """Many files -> (readable paths, float32 [H, W, 3] images), decoded in parallel as in
    training (pass the run's `Run.fast_decode`); unreadable files are left out."""
    paths = [str(p) for p in paths]
    kept, images = [], []
    for image, i in decoded_files(paths, image_size, fast_decode=fast_decode).as_numpy_iterator():
        kept.append(paths[int(i)])
        images.append(image)
    return kept, images


def expand_paths(inputs: list[str]) -> list[str]:
    """Files, folders (recursive, as `tfft.data` lists them) and globs -> a list of files.

    A path that does not exist and is no glob is kept, so that it gets an error row.
    """
    from tfft.data.decode import is_image_file
    from tfft.data import fs
    from tfft.data.sources import list_images

    out: list[str] = []
    for item in inputs:
        item = str(item)
        path = fs.path(item)  # a local Path, or a gs://, ram://... one
        if path.is_dir():
            out.extend(list_images(str(path)))
        elif path.exists():
            out.append(str(path))
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
            out.extend(m for m in matches if Path(m).is_file() and is_image_file(m))
        else:
            out.append(item)
    return out

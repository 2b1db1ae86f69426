"""Reading a run directory: config, labels, model, images.

Everything in `tfft.evaluation` goes through these helpers so that evaluate, predict and every
export decode and resize images the same way as training does.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tfft import layout
from tfft.errors import UserError

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Run:
    """What `open_run` found in a run directory."""

    run_dir: Path
    config: Any  # tfft.config.Config
    class_names: list[str]

    @property
    def model_path(self) -> Path:
        return self.run_dir / layout.MODEL

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config.data.image_size)

    @property
    def fast_decode(self) -> bool:
        """The run's `data.fast_decode` (JPEG downscale-on-decode) as the decoders take it."""
        return str(self.config.data.fast_decode) != "off"


def open_run(run_dir: str | os.PathLike) -> Run:
    """Check a run directory and read its config and labels.

    Args:
        run_dir: a folder written by `tfft train` (config.yaml, labels.txt, model.keras).

    Returns:
        A `Run` with the resolved config and class names.

    Raises:
        UserError: the folder or one of its files is missing.

    Example:
    >>> run = open_run("runs/quickstart")  # doctest: +SKIP
    >>> run.class_names  # doctest: +SKIP
    ['cat', 'dog']
    """
    from tfft.config import load_config

    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise UserError(str(path), "run directory not found",
                        "give the folder that `tfft train` printed as `run dir: PATH`")
    for name in layout.REQUIRED:
        if not (path / name).is_file():
            raise UserError(str(path / name), f"{name} is missing from the run directory",
                            "is the run finished? `tfft train ... --resume` completes it")
    config = load_config(path / layout.CONFIG)
    class_names = read_labels(path / layout.LABELS)
    return Run(run_dir=path, config=config, class_names=class_names)


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names from labels.txt, one a line, in output index order."""
    names = [line.rstrip("\r\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n.strip()]
    if not names:
        raise UserError(str(path), "labels.txt lists no class names", "one class name a line")
    return names


def load_model(run: Run):
    """Load model.keras with safe_mode=True (built-in layers only), compile=False."""
    import keras

    try:
        return keras.models.load_model(run.model_path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt or foreign file is the user's to fix
        raise UserError(str(run.model_path), f"cannot load the model ({type(exc).__name__}: {exc})",
                        "re-run `tfft train`; model.keras must hold only built-in Keras layers") from None


# --------------------------------------------------------------------------- decoding


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

    from tfft.data import decode

    size = (int(image_size[0]), int(image_size[1]))
    probes = decode.scan_files(paths)
    ok = np.asarray([p.ok for p in probes], dtype=bool)
    routes = np.asarray([p.route if p.ok else 0 for p in probes], dtype=np.int32)
    index = np.arange(len(paths), dtype=np.int64)[ok]
    columns = ([paths[i] for i in index], routes[ok], index) + tuple(np.asarray(e)[ok] for e in extra)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.map(lambda p, r, i, *rest: (decode.decode_path(p, r, size, fast_decode=fast_decode), i, *rest),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.ignore_errors()


def read_images(paths: list[str], image_size, *, fast_decode: bool = True) -> tuple[list[str], list[np.ndarray]]:
    """Many files -> (readable paths, float32 [H, W, 3] images), decoded in parallel as in
    training (pass the run's `Run.fast_decode`); unreadable files are left out."""
    paths = [str(p) for p in paths]
    kept, images = [], []
    for image, i in decoded_files(paths, image_size, fast_decode=fast_decode).as_numpy_iterator():
        kept.append(paths[int(i)])
        images.append(image)
    return kept, images


# --------------------------------------------------------------------------- data


def generated_split(run: Run, source: str, split: str, batch_size: int, task: str = "auto"):
    """The run's `split` of a source that is not files on disk (builtin:, tfds:), checked against the run.

    Returns:
        `(splits, data_cfg)`: the loaded `DataSplits` and the run's data config with `source` and
        `batch_size` replaced, ready for `tfft.data.make_dataset(splits, split, data_cfg, ...)`.
    """
    from tfft import data as tfft_data

    data_cfg = run.config.data.model_copy(update={"source": source, "batch_size": int(batch_size)})
    splits = tfft_data.load_splits(data_cfg, run.config.seed, task=task)
    if split not in splits.splits or len(splits.splits[split]) == 0:
        raise UserError(f"{source} [{split}]", f"this source has no {split!r} split",
                        f"choose --split from {sorted(splits.splits)}")
    if list(splits.class_names) != list(run.class_names):
        raise UserError(source, f"classes {list(splits.class_names)} differ from the model's {run.class_names}",
                        "evaluate on data with the run's classes")
    return splits, data_cfg


def split_files(run: Run, split: str = "val", data: Optional[str] = None,
                ) -> tuple[list[str], np.ndarray]:
    """File paths and label indices (labels.txt order) of one split of a run's data.

    The images are listed by `tfft.data.load_splits`, exactly as training listed them (the same
    extensions, hidden files and folders ignored, the same seeded split and `limit_per_class`).

    Args:
        run: from `open_run`.
        split: train | val | test.
        data: a data spec replacing the config's `data.source`. A plain folder of class
            subfolders (no train/ val/ test/ inside) is evaluated whole, whatever `split` says.

    Returns:
        (paths, labels) with labels indexing `run.class_names`.
    """
    from tfft.data import load_splits

    config = run.config
    source = str(data if data is not None else config.data.source)
    data_cfg = config.data.model_copy(update={"source": source})
    root = Path(source).expanduser()
    if data is not None and root.is_dir() and not any((root / s).is_dir() for s in SPLIT_NAMES):
        data_cfg = data_cfg.model_copy(update={"val_split": 0.0, "test_split": 0.0, "limit_per_class": None})
        split = "train"
    splits = load_splits(data_cfg, config.seed)
    if split not in splits.splits or len(splits.splits[split]) == 0:
        raise UserError(f"{source} [{split}]", f"no images found for this split (the data has "
                        f"{sorted(k for k, v in splits.splits.items() if len(v))})",
                        "check --data / data.source and --split (train | val | test)")
    chosen = splits.splits[split]
    if chosen.paths is None:
        raise UserError(source, "this source has no image files to list", "give a folder or csv: source")
    names = [splits.class_names[int(i)] for i in chosen.labels]
    index = {name: i for i, name in enumerate(run.class_names)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise UserError(str(source), f"classes {unknown} are not among the model's classes "
                        f"{run.class_names}", "evaluate on data with the same class folders")
    return [str(p) for p in chosen.paths], np.asarray([index[n] for n in names], dtype=np.int64)


def expand_paths(inputs: list[str]) -> list[str]:
    """Files, folders (recursive, as `tfft.data` lists them) and globs -> a list of files.

    A path that does not exist and is no glob is kept, so that it gets an error row.
    """
    from tfft.data import is_image_file
    from tfft.data.sources import list_images

    out: list[str] = []
    for item in inputs:
        item = str(item)
        path = Path(item).expanduser()
        if path.is_dir():
            out.extend(list_images(path))
        elif path.exists():
            out.append(str(path))
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
            out.extend(m for m in matches if Path(m).is_file() and is_image_file(m))
        else:
            out.append(item)
    return out

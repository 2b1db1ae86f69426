"""Reading a run directory: config, labels, model, images; atomic writes.

Everything in `tfft.evaluation` goes through these helpers so that evaluate, predict and every
export decode and resize images the same way as training does.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tfft.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Run:
    """What `open_run` found in a run directory."""

    run_dir: Path
    config: Any  # tfft.config.Config
    class_names: list[str]

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.keras"

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
    for name in ("model.keras", "config.yaml", "labels.txt"):
        if not (path / name).is_file():
            raise UserError(str(path / name), f"{name} is missing from the run directory",
                            "is the run finished? `tfft train ... --resume` completes it")
    config = load_config(path / "config.yaml")
    class_names = read_labels(path / "labels.txt")
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


def _folder_classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_files(root: Path, classes: list[str]) -> tuple[list[str], list[str]]:
    paths, names = [], []
    for name in classes:
        for file in sorted((root / name).rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_EXTENSIONS and not file.name.startswith("."):
                paths.append(str(file))
                names.append(name)
    return paths, names


def _split_files(split_obj: Any, class_names: list[str]) -> tuple[list[str], list[str]]:
    """Paths and class names from tfft.data's split object, whatever its exact shape."""
    if isinstance(split_obj, dict):
        paths = split_obj.get("paths", split_obj.get("files"))
        labels = split_obj.get("labels")
    elif isinstance(split_obj, (tuple, list)) and len(split_obj) == 2:
        paths, labels = split_obj
    else:
        paths = getattr(split_obj, "paths", None)
        if paths is None:
            paths = getattr(split_obj, "files", None)
        labels = getattr(split_obj, "labels", None)
    if paths is None or labels is None:
        raise TypeError(f"cannot read file paths and labels from {type(split_obj).__name__}")
    paths = [p.decode() if isinstance(p, bytes) else str(p) for p in list(paths)]
    names = [class_names[int(i)] for i in list(labels)]
    return paths, names


def split_files(run: Run, split: str = "val", data: Optional[str] = None,
                ) -> tuple[list[str], np.ndarray]:
    """File paths and label indices (labels.txt order) of one split of a run's data.

    Args:
        run: from `open_run`.
        split: train | val | test.
        data: a data spec replacing the config's `data.source`. A plain folder of class
            subfolders (no train/ val/ test/ inside) is evaluated whole, whatever `split` says.

    Returns:
        (paths, labels) with labels indexing `run.class_names`.
    """
    config = run.config
    source = data if data is not None else config.data.source
    root = Path(source).expanduser()
    if data is not None and root.is_dir() and not any((root / s).is_dir() for s in SPLIT_NAMES):
        paths, names = _folder_files(root, _folder_classes(root))
    elif root.is_dir() and (root / split).is_dir():
        sub = root / split
        paths, names = _folder_files(sub, _folder_classes(sub))
    else:
        paths, names = _split_files_via_tfft_data(config, source, split)
    if not paths:
        raise UserError(f"{source} [{split}]", "no images found for this split",
                        "check --data / data.source and --split (train | val | test)")
    index = {name: i for i, name in enumerate(run.class_names)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise UserError(str(source), f"classes {unknown} are not among the model's classes "
                        f"{run.class_names}", "evaluate on data with the same class folders")
    return paths, np.asarray([index[n] for n in names], dtype=np.int64)


def _split_files_via_tfft_data(config, source: str, split: str) -> tuple[list[str], list[str]]:
    try:
        from tfft.data import load_splits  # type: ignore[attr-defined]
    except ImportError:
        raise UserError(source, "cannot list images: not a folder with train/ val/ test/ inside",
                        "give --data a folder of class subfolders") from None
    data_cfg = config.data.model_copy(update={"source": source})
    splits = load_splits(data_cfg, config.seed)
    available = getattr(splits, "splits", {})
    if split not in available:
        raise UserError(f"--split {split}", f"the data has no {split!r} split; it has "
                        f"{sorted(available)}", "pick one of those")
    return _split_files(available[split], list(splits.class_names))


def expand_paths(inputs: list[str]) -> list[str]:
    """Files, folders (recursive, image extensions only) and globs -> a list of files.

    A path that does not exist and is no glob is kept, so that it gets an error row.
    """
    out: list[str] = []
    for item in inputs:
        item = str(item)
        path = Path(item).expanduser()
        if path.is_dir():
            out.extend(str(p) for p in sorted(path.rglob("*"))
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not p.name.startswith("."))
        elif path.exists():
            out.append(str(path))
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
            out.extend(m for m in matches if Path(m).is_file()
                       and Path(m).suffix.lower() in IMAGE_EXTENSIONS)
        else:
            out.append(item)
    return out


# --------------------------------------------------------------------------- writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a file under a temporary name in the same folder, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")

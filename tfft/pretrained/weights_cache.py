"""Converted weights cached as `.weights.h5` in the Keras cache folder, keyed by the source's sha256.

The cache folder is Keras' own: `$KERAS_HOME/models/`, else `~/.keras/models/` (and, like
`keras.utils.get_file`, `/tmp/.keras/models/` when that is not writable). A cached file is
named `<backbone>-<first 16 hex digits of the source file's sha256>.weights.h5`, so a new
version of the weights package gets a new file, and a stale one is never loaded. Files are
written under a temporary name in the same folder and renamed into place, so two processes
converting at once, or a crash mid-write, never leave a truncated file.

Example:
>>> path = converted("efficientnet_lite0", source, convert)  # doctest: +SKIP
>>> path.name  # doctest: +SKIP
'efficientnet_lite0-57934424a6a8c0f6.weights.h5'
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tfft.atomic import file_mode
from tfft.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import keras

SUFFIX = ".weights.h5"


def cache_folder() -> Path:
    """`$KERAS_HOME/models`, else `~/.keras/models`; `/tmp/.keras/models` if not writable.

    Example:
    >>> cache_folder().name
    'models'
    """
    try:  # Keras' own answer (it reads KERAS_HOME once, at import)
        from keras.src.backend import config as keras_config

        base = Path(keras_config.keras_home()).expanduser()
    except (ImportError, AttributeError):  # pragma: no cover - a Keras without this module
        base = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())
    probe = base if base.exists() else base.parent
    if not os.access(probe, os.W_OK):
        base = Path("/tmp/.keras")
    return base / "models"


def sha256_of(path: os.PathLike | str) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(name: str, source: os.PathLike | str) -> Path:
    """Where the converted weights of `source` for backbone `name` live (they may not yet)."""
    return cache_folder() / f"{name}-{sha256_of(source)[:16]}{SUFFIX}"


def converted(name: str, source: Path, convert: Callable[[str, Path, Path], None]) -> Path:
    """The cached conversion of `source`, made with `convert(name, source, tmp_target)` if absent.

    Args:
        name: the backbone name (part of the file name).
        source: the original weights file (its sha256 is the key).
        convert: writes a `.weights.h5` to the path it is given.

    Returns:
        The path of the cached `.weights.h5`.

    Raises:
        UserError: the cache folder cannot be written.
    """
    target = cache_path(name, source)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{SUFFIX}", dir=target.parent)
    except OSError as exc:
        raise UserError(str(target.parent), f"cannot write the weights cache: {exc}",
                        "set KERAS_HOME to a writable folder") from None
    os.close(fd)
    os.unlink(tmp)  # Keras refuses to overwrite without asking; give it a fresh name
    try:
        print(f"weights: converting {source.name} for {name} into {target} (once)", flush=True)
        convert(name, source, Path(tmp))
        os.chmod(tmp, file_mode())  # mkstemp's 0600 is not the usual mode; the umask is read, never set
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load_into(model: "keras.Model", path: Path) -> None:
    """Load a cached `.weights.h5` into `model`; a corrupt file is removed so the next run redoes it.

    Raises:
        UserError: the file cannot be loaded (it has been deleted; run again).
    """
    try:
        model.load_weights(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - any failure means the cache is unusable
        try:
            path.unlink()
        except OSError:
            pass
        raise UserError(str(path), f"the cached weights could not be loaded ({exc}); the file "
                        "was removed", "run again to convert the weights anew") from None


__all__ = ["cache_folder", "cache_path", "converted", "load_into", "sha256_of"]

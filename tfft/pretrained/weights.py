"""Pretrained weights on disk: Keras' cache folder, downloads that fail with a clear message, and
converted weights cached as `.weights.h5` keyed by the source's sha256.

Downloads: `keras.applications` fetches its ImageNet weights with `keras.utils.get_file`;
`recording_get_file()` wraps it so that a failed download (no internet) becomes one `UserError`
naming the file, the URL and the folder to copy it into (`download_error`).

Converted weights: the cache folder is Keras' own: `$KERAS_HOME/models/`, else `~/.keras/models/` (and, like
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

import contextlib
import inspect
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from tfft import compat
from tfft.atomic import file_mode
from tfft.digest import file_sha256 as sha256_of  # the weights cache names files by it
from tfft.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import keras

SUFFIX = ".weights.h5"


def keras_home() -> Path:
    """Keras' own cache root: `$KERAS_HOME`, else `~/.keras` (read by Keras once, at import).

    Example:
    >>> keras_home().is_absolute()
    True
    """
    return Path(compat.keras_home()).expanduser()  # Keras' own answer (KERAS_HOME, read once at import)


def _writable(base: Path, as_keras: bool) -> Path:
    """`base`, or `/tmp/.keras` when it cannot be written. `as_keras`: Keras' own test
    (`base` itself writable, as `get_file` checks); else `base` or, if absent, its parent."""
    probe = base if as_keras or base.exists() else base.parent
    return base if os.access(probe, os.W_OK) else Path("/tmp/.keras")


def cache_folder(subdir: str = "models", cache_dir: Optional[str] = None, as_keras: bool = False) -> Path:
    """Where `keras.utils.get_file` keeps `subdir`: `$KERAS_HOME/models`, else `~/.keras/models`;
    `/tmp/.keras/models` if that is not writable (the same rules as Keras).

    Args:
        subdir: the cache subfolder (`models` for weights, `datasets`).
        cache_dir: the base folder a caller gave `get_file` (None: Keras' home).
        as_keras: decide the `/tmp` fallback exactly as `get_file` does (for download messages).

    Example:
    >>> cache_folder().name
    'models'
    """
    base = Path(cache_dir).expanduser() if cache_dir else keras_home()
    return _writable(base, as_keras) / subdir


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


# ---------------------------------------------------------------- downloads


class DownloadFailed(Exception):
    """A download inside `recording_get_file()` failed: `info` names the file, URL and folder."""

    def __init__(self, info: dict[str, Any], cause: BaseException):
        super().__init__(str(cause))
        self.info = info
        self.cause = cause


@contextlib.contextmanager
def recording_get_file() -> Iterator[list[dict[str, Any]]]:
    """Wrap Keras' `get_file` so a failed download raises `DownloadFailed` with the file,
    URL and folder (yields the list of the downloads attempted).

    Example:
    >>> with recording_get_file() as attempted:
    ...     attempted
    []
    """
    record: list[dict[str, Any]] = []
    try:
        file_utils = compat.keras_file_utils()
    except ImportError:  # pragma: no cover - a Keras without this private module
        yield record
        return
    real = file_utils.get_file
    signature = inspect.signature(real)

    def recording(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind_partial(*args, **kwargs)
        params = {**{k: p.default for k, p in signature.parameters.items()}, **bound.arguments}
        origin = params.get("origin") or ""
        fname = params.get("fname") or os.path.basename(urllib.parse.urlsplit(origin).path)
        folder = cache_folder(params.get("cache_subdir") or "datasets", params.get("cache_dir"), as_keras=True)
        info = {"fname": fname, "origin": origin, "folder": str(folder)}
        record.append(info)
        try:
            return real(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised with what the user needs
            raise DownloadFailed(info, exc) from exc

    file_utils.get_file = recording
    try:
        yield record
    finally:
        file_utils.get_file = real


def download_error(name: str, info: dict[str, Any], cause: BaseException,
                   offline: Sequence[str]) -> UserError:
    """The `model.weights` error for a failed ImageNet download: the file, the URL, the folder
    to copy it into, and the backbones whose weights work offline (`offline`).

    Example:
    >>> info = {"fname": "w.h5", "origin": "https://example.com/w.h5", "folder": "/k/models"}
    >>> error = download_error("vgg16", info, OSError("no network"), ["efficientnet_lite0"])
    >>> error.where, "copy it to /k/models/w.h5" in error.hint
    ('model.weights', True)
    """
    folder = info["folder"].rstrip("/") + "/"
    target = os.path.join(folder, info["fname"])
    reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return UserError(
        "model.weights",
        f"could not get the ImageNet weights of {name}: Keras looks for {info['fname']} in "
        f"{folder} and downloading it from {info['origin']} failed ({reason})",
        f"on a machine with internet, download {info['origin']} and copy it to {target} "
        "(set KERAS_HOME to use another cache folder), or set model.weights to the file's path, "
        "or to null to train from scratch; these backbones have ImageNet weights that work "
        f"offline: {', '.join(offline)}",
    )


__all__ = ["DownloadFailed", "cache_folder", "cache_path", "converted", "download_error",
           "keras_home", "load_into", "recording_get_file", "sha256_of"]

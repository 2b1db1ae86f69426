"""One filesystem layer for the data: local paths through `os`, any other scheme through `tf.io.gfile`.

A path with a scheme (`gs://bucket/photos`, `ram://photos`, `s3://...`: whatever TensorFlow's file
systems know) is listed, tested and read through `tf.io.gfile`; a local path through `os` and
`pathlib`, so `tfft data check photos/` and a config check never import TensorFlow. `path(p)`
gives a `pathlib.Path` or a `GPath` with the few Path methods the folder rules use (`iterdir`,
`is_dir`, `is_file`, `exists`, `name`, `/`), so one listing code serves both.

Example:
>>> is_local("photos/cat"), is_local("gs://bucket/photos"), is_local("ram://x")
(True, False, False)
>>> path("photos") / "cat"
PosixPath('photos/cat')
>>> str(path("ram://photos") / "cat")
'ram://photos/cat'
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Iterator, Union

from tfft.errors import UserError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_local(p: Union[str, os.PathLike]) -> bool:
    """True for a path on this machine's disk (no `scheme://` in front, or `file://`)."""
    text = os.fspath(p)
    return not _URL.match(text) or text.startswith("file://")


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _known(p: str) -> str:
    """`p`, or a `UserError` when TensorFlow has no file system for its scheme (`s3://` without
    tensorflow-io, say)."""
    import tensorflow as tf

    try:
        tf.io.gfile.exists(p)
    except tf.errors.UnimplementedError:
        scheme = p.split("://", 1)[0]
        raise UserError("data.source", f"unknown source scheme {scheme + '://'!r} in {p!r}: TensorFlow has no "
                        "file system for it here", "use a local path, gs://, ram:// (or install the "
                        "package that registers the file system, e.g. tensorflow-io for s3://)") from None
    return p


def _local(p: str) -> str:
    return p[len("file://"):] if p.startswith("file://") else os.path.expanduser(p)


class GPath:
    """A path on a TensorFlow file system (`ram://`, `gs://`, ...) with what the listing rules use of `Path`."""

    def __init__(self, text: str):
        self._text = text.rstrip("/") if len(text.rstrip("/")) > text.index("://") + 3 else text

    def __truediv__(self, name: str) -> "GPath":
        return GPath(f"{self._text.rstrip('/')}/{name}")

    def __str__(self) -> str:
        return self._text

    __fspath__ = __str__

    def __repr__(self) -> str:
        return f"GPath({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GPath) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    @property
    def name(self) -> str:
        return self._text.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> "GPath":
        return GPath(self._text.rstrip("/").rsplit("/", 1)[0])

    def expanduser(self) -> "GPath":
        return self

    def exists(self) -> bool:
        return exists(self._text)

    def is_dir(self) -> bool:
        return isdir(self._text)

    def is_file(self) -> bool:
        return isfile(self._text)

    def iterdir(self) -> Iterator["GPath"]:
        for name in sorted(listdir(self._text)):
            yield self / name.rstrip("/")


def path(p: Union[str, os.PathLike]) -> Union[Path, GPath]:
    """`Path(p)` (user expanded) for a local path, a `GPath` for any other file system."""
    text = os.fspath(p)
    return Path(_local(text)) if is_local(text) else GPath(text)


def join(base: str, *names: str) -> str:
    return os.path.join(base, *names) if is_local(base) else "/".join([base.rstrip("/"), *names])


def exists(p: str) -> bool:
    return os.path.exists(_local(p)) if is_local(p) else bool(_gfile().exists(_known(p)))


def isdir(p: str) -> bool:
    return os.path.isdir(_local(p)) if is_local(p) else bool(_gfile().isdir(p))


def isfile(p: str) -> bool:
    if is_local(p):
        return os.path.isfile(_local(p))
    return bool(_gfile().exists(p)) and not _gfile().isdir(p)


def listdir(p: str) -> list[str]:
    return os.listdir(_local(p)) if is_local(p) else [n.rstrip("/") for n in _gfile().listdir(p)]


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk` (links followed) or `tf.io.gfile.walk`; prune `dirnames` in place as with `os.walk`."""
    if is_local(top):
        yield from os.walk(_local(top), followlinks=True)
        return
    stack = [top.rstrip("/")]
    while stack:  # gfile.walk does not honour pruning: walk by hand, top-down
        here = stack.pop()
        names = sorted(listdir(here))
        dirnames = [n for n in names if isdir(f"{here}/{n}")]
        filenames = [n for n in names if n not in dirnames]
        yield here, dirnames, filenames
        stack.extend(f"{here}/{d}" for d in reversed(dirnames))


def open_file(p: str, mode: str = "rb"):
    """A file object: `open` for local paths, `tf.io.gfile.GFile` otherwise."""
    if is_local(p):
        return open(_local(p), mode, **({} if "b" in mode else {"encoding": "utf-8-sig", "newline": ""}))
    return _gfile().GFile(p, mode)


def read_bytes(p: str) -> bytes:
    with open_file(p, "rb") as handle:
        return handle.read()


def read_text(p: str) -> str:
    """A text file's content as UTF-8, a leading byte-order mark dropped (spreadsheets write one)."""
    text = read_bytes(p).decode("utf-8")
    return text[1:] if text.startswith("\ufeff") else text


def resolve(folder: str, cell: str) -> str:
    """The file a manifest row names: `cell` relative to the manifest's `folder`, normalised; a URL
    (`gs://b/x.jpg`) as it is, an absolute local path (normalised) on this machine's disk.

    Example:
    >>> resolve("/data", "cats/../dogs/a.jpg"), resolve("ram://set", "./cat/1.jpg")
    ('/data/dogs/a.jpg', 'ram://set/cat/1.jpg')
    >>> resolve("ram://set", "gs://b/x.jpg")
    'gs://b/x.jpg'
    """
    if not is_local(cell):
        return cell
    local = _local(cell)
    if is_local(folder) or os.path.isabs(local):
        return os.path.normpath(os.path.join(_local(folder), local) if is_local(folder) else local)
    scheme, rest = folder.split("://", 1)
    joined = posixpath.normpath(posixpath.join(rest, cell)) if rest else posixpath.normpath(cell)
    return f"{scheme}://{joined}"


def size(p: str) -> int:
    return os.path.getsize(_local(p)) if is_local(p) else int(_gfile().stat(p).length)


def makedirs(p: str) -> None:
    if is_local(p):
        os.makedirs(_local(p), exist_ok=True)
    else:
        _gfile().makedirs(p)


def absolute(p: str) -> str:
    """An absolute local path (normalised), a URL as it is."""
    return os.path.abspath(_local(p)) if is_local(p) else p

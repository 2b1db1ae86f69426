"""The one file digest: the SHA-256 of a file's bytes, read in 1 MiB chunks.

Used wherever tfft names a file by its content: the converted-weights cache
(`tfft.pretrained.weights`), the exact duplicates of `tfft data check` and `tfft data issues`
(`tfft.data.near_duplicates`, the persistent index's `sha256` values in `tfft.data.index`).
The feature caches' model digest is `tfft.training.feature_store.model_digest`, the split
lists' `tfft.data.sources.split.lists_digest`.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Optional, Union

CHUNK = 1 << 20


def file_sha256(path: Union[str, os.PathLike], open_file: Optional[Callable[[str, str], Any]] = None) -> str:
    """The hex SHA-256 of a file's bytes.

    Args:
        path: the file.
        open_file: how to open it, `open_file(path, "rb")` (default: the built-in `open`); the
            data layer passes its file-system layer's opener so `gs://` and `ram://` files hash too.

    Returns:
        64 hex digits.

    Raises:
        OSError: the file cannot be read.

    Example:
    >>> with open("a.txt", "wb") as handle:
    ...     _ = handle.write(b"abc")
    >>> file_sha256("a.txt")[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with (open_file or open)(os.fspath(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["file_sha256"]

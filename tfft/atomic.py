"""Atomic file writes: every file tfft writes goes through `atomic_path`.

A file is written under a temporary name in its own folder, flushed to disk (fsync) and renamed
onto its name, so a crash or a full disk never leaves a truncated `model.keras` or `metrics.json`
(the previous version stays). The file gets the mode an ordinary `open()` would give it:
0666 less the process umask, which is read from /proc/self/status where the OS has it and never
changed (setting the umask to read it would race with other threads creating files).

Example:
>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> write_text(target, "hello")
>>> target.read_text()
'hello'
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from tfft.errors import UserError


def current_umask() -> int:
    """The process umask, read without changing it (Linux /proc; elsewhere the common 0o022).

    Example:
    >>> 0 <= current_umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def file_mode() -> int:
    """The mode `open(path, "w")` gives a new file: 0666 less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: Optional[str] = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, fsync and rename it onto `path`.

    For writers that want a file name (Keras' `model.save`, matplotlib, numpy); on failure the
    temporary file is removed and `path` is untouched.

    Args:
        path: the final file.
        suffix: the temporary file's suffix (some writers choose the format by it); default: `path`'s.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes[-1:])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            with open(tmp_path, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp_path, file_mode())  # mkstemp creates 0600
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_output(path: str | os.PathLike, *, option: str = "--out", overwrite: bool = False,
                 file_name: Optional[str] = None, runs: Sequence[str | os.PathLike] = (),
                 own: Sequence[str | os.PathLike] = (), hint: Optional[str] = None) -> Path:
    """Where a command may write the output the user named, or a `UserError` (exit 2).

    Nothing the user owns is replaced without `overwrite`. Refused unless `overwrite`: an existing
    file, a non-empty existing folder, one of `runs` (the run directories the command reads) or a
    folder that holds one. A path inside one of `own` (folders only tfft writes, e.g.
    `RUN_DIR/export`) is tfft's own output and may be replaced. This function deletes nothing: with
    `overwrite` the writer replaces only the entries it writes, and the user's other files stay.

    Args:
        path: the `--out` (or `--run-dir`) the user gave.
        option: the option's name, for the message.
        overwrite: the user passed `--overwrite`.
        file_name: for a one-file output: the file's name inside `path` when `path` is a folder.
        runs: the run directories the command reads.
        own: folders whose contents tfft alone writes.
        hint: the refusal's hint (default: choose another path, or pass --overwrite).

    Returns:
        The path to write (`path / file_name` when `path` is an existing folder and `file_name` is given).

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_output(folder, file_name="model.tflite").name
    'model.tflite'
    >>> _ = (folder / "notes.txt").write_text("mine")
    >>> try:
    ...     check_output(folder)
    ... except UserError as error:
    ...     print(error.message)
    already holds files
    """
    path = Path(path).expanduser()
    if file_name is not None and path.is_dir():
        path = path / file_name
    where = f"{option} {path}"
    if file_name is not None and path.is_dir():
        raise UserError(where, "is a folder; expected a file", f"choose another {option}")
    if file_name is None and path.exists() and not path.is_dir():
        raise UserError(where, "is a file; expected a folder", f"choose another {option}")
    target = path.resolve()
    if any(target == Path(folder).resolve() or Path(folder).resolve() in target.parents for folder in own):
        return path
    hint = hint or ("choose another path, or pass --overwrite to replace it" if file_name else
            "choose a new or empty folder, or pass --overwrite to write into it (only the files tfft writes are replaced)")
    if overwrite:
        return path
    for run in runs:
        run = Path(run).resolve()
        if target == run or target in run.parents:
            what = "is" if target == run else "holds"
            raise UserError(where, f"{what} the run directory {run}, which this command reads", hint)
    if path.is_file() or path.is_symlink():
        raise UserError(where, "already exists", hint)
    if path.is_dir() and any(path.iterdir()):
        raise UserError(where, "already holds files", hint)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (indented, NaN and infinities written as null)."""
    write_text(path, json.dumps(_finite(data), indent=2) + "\n")


def write_json_entry(path: str | os.PathLike, key: str, value: Any, merge: bool = True) -> None:
    """Set `key` in the JSON object at `path` (kept, when `merge`, with its other keys) and write it atomically.

    A missing or unreadable file counts as empty.

    Example:
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
    >>> write_json_entry(target, "val", {"accuracy": 0.5}); write_json_entry(target, "test", {})
    >>> sorted(json.loads(target.read_text()))
    ['test', 'val']
    """
    path = Path(path)
    existing: dict[str, Any] = {}
    if merge and path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = {}
    existing[key] = value
    write_json(path, existing)


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write rows as CSV atomically (columns in the given order; extra keys ignored)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_text(path, buffer.getvalue())


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value

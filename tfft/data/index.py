"""The persistent scan index: one SQLite file per data source, so a file is probed once, ever.

`tfft.data.probe.scan_files` opens every image (a header probe, then a check decode): about
1.5 ms a file, 25 minutes at a million files. `scan` keeps its results on disk, in
`layout.cache_root()/index/<source digest>.sqlite` (beside the feature store), one row a file:
its absolute path, size, mtime and inode (the file's identity), the label and split it was listed
with, whether it decodes (route, or the reason it does not), its stored size, format, mode,
orientation and odd kinds, and its sha256 and perceptual hash once something computed them
(`values`). A later scan of the same source (`tfft train`, `--resume`, a cv fold, a tune trial,
`evaluate`, `data check`, `data issues`) stats every file and opens only those that are new or
changed (size, mtime or inode differ); rows of files gone from the disk are dropped. The rows
read are also handed to the scan's in-process cache, so later look-ups in the process
(`tfft.data.files`) open nothing either.

Multi-worker runs (`TF_CONFIG`): the chief (`is_chief_task`) scans and writes; every other
worker waits for the chief's rows (up to `TFFT_INDEX_WAIT_S` seconds, default 600) and reads
them, scanning by itself (and writing nothing) only if they never come.

Safety: a file is created whole and renamed into place (`tfft.atomic`), and updated in SQLite
transactions, so concurrent readers and writers (parallel trials, workers) see whole rows; an
index that is not ours (another format, another tfft version, whose probing rules may differ, or
another source) or cannot be read is rebuilt, with a log line, never trusted. A cache folder that
cannot be written leaves the scan in-process (the next start scans again).

Files on another file system (`gs://`, `ram://`: any scheme `tf.io.gfile` knows) are indexed the
same way, the index file still local: their identity is `tf.io.gfile.stat`'s (length, mtime_nsec)
(inode 0), one stat a file and no read; a new or changed one is read once and probed from its
bytes (`tfft.data.probe.scan_remote`). A file system that gives no modification times (`ram://`
gives 0) is judged by size alone there: a rewrite of the same length is not seen.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from tfft import atomic, layout
from tfft.digest import file_sha256
from tfft.data import probe as _probe
from tfft.data import fs as _fs
from tfft.version import __version__

FORMAT = "tfft-scan-index"
VERSION = "1"
WAIT_ENV = "TFFT_INDEX_WAIT_S"
_COLUMNS = ("path", "size", "mtime_ns", "inode", "label", "split", "route", "reason", "format", "mode",
            "width", "height", "orientation", "kinds", "sha256", "phash")
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
    "inode INTEGER NOT NULL, label TEXT, split TEXT, route INTEGER, reason TEXT, format TEXT, mode TEXT, "
    "width INTEGER, height INTEGER, orientation INTEGER, kinds TEXT, sha256 TEXT, phash TEXT)",
)
_HASH_COLUMNS = ("sha256", "phash")

log = logging.getLogger(__name__)


def is_chief_task() -> bool:
    """Whether this process is the one that writes (the chief of a `TF_CONFIG` cluster).

    The chief is the `chief` task when the cluster has one, else worker 0; without `TF_CONFIG`
    this process is the only one. `tfft.training.distribute` uses the same rule.

    Example:
    >>> is_chief_task()  # no TF_CONFIG: the only process
    True
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return True
    config = json.loads(raw)
    task = config.get("task", {})
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    if "chief" in config.get("cluster", {}):
        return task_type == "chief"
    return task_type in (None, "worker") and task_id == 0


def source_key(source: str) -> str:
    """The source as the index names it: scheme kept, a local path made absolute, a URL as it is.

    Example:
    >>> source_key("csv:/data/m.csv"), source_key("/data/photos/"), source_key("gs://b/photos/")
    ('csv:/data/m.csv', '/data/photos', 'gs://b/photos')
    """
    scheme, sep, rest = source.partition(":") if source.startswith("csv:") else ("", "", source)
    if _remote(rest):
        return f"{scheme}{sep}{rest.rstrip('/')}"
    return f"{scheme}{sep}{os.path.abspath(os.path.expanduser(rest))}"


def index_path(source: str) -> Path:
    """The index file of `source`: `cache_root()/index/<sha256 of source_key>[:24].sqlite`.

    Example:
    >>> index_path("photos/").suffix
    '.sqlite'
    """
    digest = hashlib.sha256(source_key(source).encode("utf-8")).hexdigest()[:24]
    return layout.cache_root() / layout.INDEX_DIR / f"{digest}.sqlite"


def _remote(path: str) -> bool:
    """A path on another file system (`scheme://`, not `file://`)."""
    return not _fs.is_local(path)


def _stat(path: str) -> Optional[tuple[int, int, int]]:
    """(size, mtime_ns, inode) of a local file; (length, mtime_nsec, 0) of a remote one; None if missing."""
    if _remote(path):
        return _remote_stat(path)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def file_identity(path: str) -> Optional[tuple[int, int, int]]:
    """What the index compares to see a file changed: (size, mtime_ns, inode) of a local file,
    (length, mtime_nsec, 0) of a remote one (`tf.io.gfile.stat`); None when it is missing.

    Example:
    >>> file_identity("no/such/file.jpg") is None
    True
    """
    return _stat(os.fspath(path))


def _remote_stat(path: str) -> Optional[tuple[int, int, int]]:
    import tensorflow as tf

    try:
        st = tf.io.gfile.stat(path)
    except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError, tf.errors.UnimplementedError):
        return None
    return (None if st.is_directory else (int(st.length), int(st.mtime_nsec), 0))


def _exists(path: str) -> bool:
    if _remote(path):
        return _fs.exists(path)
    return os.path.exists(path)


def _probe_files(paths: list[str]) -> list[_probe.Probe]:
    """New or changed files probed: local ones by `scan_files` (header and check decode), remote ones
    from their bytes (`scan_remote`)."""
    remote = [p for p in paths if _remote(p)]
    if not remote:
        return _probe.scan_files(paths)
    local = [p for p in paths if not _remote(p)]
    found = dict(zip(remote, _probe.scan_remote(remote)))
    found.update((p.path, p) for p in _probe.scan_files(local))
    return [found[p] for p in paths]


class _Index:
    """One source's index file: open (checked), read rows, write rows."""

    def __init__(self, source: str):
        self.source = source_key(source)
        self.path = index_path(source)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60.0, isolation_level=None)

    def _why_foreign(self, conn: sqlite3.Connection) -> Optional[str]:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        expected = {"format": FORMAT, "version": VERSION, "tfft": __version__, "source": self.source}
        for key, want in expected.items():
            if meta.get(key) != want:
                return f"its {key} is {meta.get(key)!r}, expected {want!r}"
        return None

    def read(self) -> Optional[dict[str, tuple]]:
        """Every row by path, or None when the file is missing, foreign or unreadable."""
        if not self.path.is_file():
            return None
        with _no_gc():
            return self._read()

    def _read(self) -> Optional[dict[str, tuple]]:
        try:
            conn = self._connect()
            try:
                if self._why_foreign(conn) is not None:
                    return None
                rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM files").fetchall()
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return {row[0]: row for row in rows}

    def open_for_writing(self) -> sqlite3.Connection:
        """A connection to a checked index, made (or remade, with a log line) when needed."""
        if self.path.is_file():
            try:
                conn = self._connect()
                why = self._why_foreign(conn)
                if why is None:
                    return conn
                conn.close()
            except sqlite3.Error as exc:
                why = f"it cannot be read ({exc})"
            log.warning(f"scan index {self.path} for {self.source}: {why}; rebuilding it")
        with atomic.atomic_path(self.path) as tmp:
            conn = sqlite3.connect(tmp)
            with conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("format", FORMAT), ("version", VERSION), ("tfft", __version__),
                                  ("source", self.source)])
            conn.close()
        # A journal left by the file just replaced must not be replayed onto the new one.
        self.path.with_name(self.path.name + "-journal").unlink(missing_ok=True)
        return self._connect()

    def commit(self, statements: Sequence[tuple[str, list[tuple]]]) -> None:
        """Run `(sql, rows)` pairs in one transaction; a failure is a log line (the next start rescans)."""
        try:
            conn = self.open_for_writing()
            try:
                conn.execute("BEGIN IMMEDIATE")
                for sql, rows in statements:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            log.warning(f"scan index {self.path}: not written ({exc}); the files are scanned again next time")


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while many small objects are made at once (rows, probes): its
    passes over them cost a third of a warm scan. What is made here holds no cycles."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _probe_of(path: str, row: tuple) -> _probe.Probe:
    kinds = row[13]
    return _probe.Probe(path=path, route=row[6], reason=row[7], format=row[8], mode=row[9], width=row[10] or 0,
                        height=row[11] or 0, orientation=row[12] or 1, kinds=kinds.split(",") if kinds else [])


def _row_of(key: str, stat: tuple[int, int, int], probe: _probe.Probe, label: Optional[str],
            split: Optional[str]) -> tuple:
    return (key, *stat, label, split, probe.route, probe.reason, probe.format, probe.mode, probe.width,
            probe.height, probe.orientation, ",".join(probe.kinds), None, None)


def _fresh(rows: dict[str, tuple], keys: Sequence[str], stats: Sequence[Optional[tuple]]) -> list[bool]:
    return [stat is not None and key in rows and rows[key][1:4] == stat for key, stat in zip(keys, stats)]


def _wait_for_chief(index: _Index, keys: list[str], stats: list[Optional[tuple]]) -> Optional[dict[str, tuple]]:
    """A non-chief worker: the chief's rows once they cover every listed file, or None at the deadline."""
    deadline = time.monotonic() + float(os.environ.get(WAIT_ENV, "600"))
    told = False
    while True:
        started = time.monotonic()
        rows = index.read()
        if rows is not None and all(f for f, s in zip(_fresh(rows, keys, stats), stats) if s is not None):
            return rows
        if time.monotonic() >= deadline:
            log.warning(f"scan index {index.path}: the chief's scan did not arrive within "
                        f"${WAIT_ENV}={os.environ.get(WAIT_ENV, '600')} s; scanning here (nothing written)")
            return rows
        if not told:
            log.info(f"waiting for the chief's scan index {index.path}")
            told = True
        time.sleep(min(10.0, 0.5 + 2 * (time.monotonic() - started)))  # a large index takes a while to read


def scan(source: str, paths: Sequence[str], listed: Optional[dict[str, tuple[str, str]]] = None
         ) -> list[_probe.Probe]:
    """`tfft.data.probe.scan_files(paths)` through `source`'s persistent index.

    Only files that are new or changed since the index last saw them are opened; the results
    are written back (by the chief only), and rows of files that no longer exist are dropped.

    Args:
        source: the data source the files were listed from (`data.source`).
        paths: the files, as listed.
        listed: optional `{path: (label, split)}` the index records with each file.

    Returns:
        One verified `Probe` per path, in order, as `scan_files` gives them.

    Example:
    >>> probes = scan("photos/", ["photos/cat/1.jpg", "photos/dog/2.jpg"])  # doctest: +SKIP
    >>> [p.ok for p in probes]  # doctest: +SKIP
    [True, True]
    """
    paths = [os.fspath(p) for p in paths]
    index = _Index(source)
    keys = _absolute(paths)
    stats = [_stat(p) for p in paths]
    chief = is_chief_task()
    rows = index.read() if chief else _wait_for_chief(index, keys, stats)
    rows = rows or {}
    fresh = _fresh(rows, keys, stats)
    todo = [i for i, ok in enumerate(fresh) if not ok]
    scanned = dict(zip(todo, _probe_files([paths[i] for i in todo]))) if todo else {}
    out = []
    with _no_gc():
        for i, path in enumerate(paths):
            got = scanned.get(i)
            if got is None:
                got = _probe_of(path, rows[keys[i]])
                if not _remote(path):  # later scans in this process find it in scan_files' cache
                    _probe.remember(got, keys[i], stats[i])
            out.append(got)
    if chief:
        _write(index, rows, keys, stats, fresh, out, listed or {})
    return out


def _absolute(paths: list[str]) -> list[str]:
    """`os.path.abspath` of each path; a path already absolute and normal, or a URL, is kept as it is (fast)."""
    def normal(p: str) -> bool:
        return (p[:1] == os.sep and "/." not in p and "//" not in p and not p.endswith("/")) or _remote(p)

    return [p if normal(p) else os.path.abspath(p) for p in paths]


def _write(index: _Index, rows: dict[str, tuple], keys: list[str], stats: list[Optional[tuple]],
           fresh: list[bool], probes: list[_probe.Probe], listed: dict[str, tuple[str, str]]) -> None:
    """Store the new and changed rows, the changed labels and splits; drop rows of deleted files."""
    new, moved = [], []
    for key, stat, ok, found in zip(keys, stats, fresh, probes):
        label, split = listed.get(found.path, (None, None))
        if not ok and stat is not None:
            new.append(_row_of(key, stat, found, label, split))
        elif ok and label is not None and rows[key][4:6] != (label, split):
            moved.append((label, split, key))
    listed_keys = set(keys)
    gone = [(key,) for key in rows if key not in listed_keys and not _exists(key)]
    if not (new or moved or gone) and rows:
        return
    index.commit([(f"INSERT OR REPLACE INTO files VALUES ({', '.join('?' * len(_COLUMNS))})", new),
                  ("UPDATE files SET label = ?, split = ? WHERE path = ?", moved),
                  ("DELETE FROM files WHERE path = ?", gone)])


def values(source: str, paths: Sequence[str], column: str,
           compute: Callable[[list[str]], Sequence[Any]]) -> list[Any]:
    """A per-file hash (`sha256` hex, or `phash`, an int), from the index where it holds one.

    The files whose row is missing, stale or has no such value yet are given to `compute` (which
    returns one value per path, in order) and the values are written back, so each is computed
    once per file version. Paths the index does not know are simply computed.

    Args:
        source: the data source (`data.source`).
        paths: the files.
        column: "sha256" or "phash".
        compute: paths -> their values (None for a file it cannot read: not stored).

    Example:
    >>> digests = values("photos/", paths, "sha256", sha256_files)  # doctest: +SKIP
    """
    if column not in _HASH_COLUMNS:
        raise ValueError(f"column must be one of {_HASH_COLUMNS}, got {column!r}")
    paths = [os.fspath(p) for p in paths]
    index = _Index(source)
    rows = index.read() or {}
    keys = _absolute(paths)
    stats = [_stat(p) for p in paths]
    where = _COLUMNS.index(column)
    out: list[Any] = [None] * len(paths)
    todo = []
    for i, (ok, key) in enumerate(zip(_fresh(rows, keys, stats), keys)):
        stored = rows[key][where] if ok else None
        if stored is None:
            todo.append(i)
        else:
            out[i] = int(stored, 16) if column == "phash" else stored
    if todo:
        computed = list(compute([paths[i] for i in todo]))
        updates = []
        for i, value in zip(todo, computed):
            out[i] = value
            if value is not None and keys[i] in rows and stats[i] is not None and rows[keys[i]][1:4] == stats[i]:
                updates.append((f"{int(value):016x}" if column == "phash" else value, keys[i], *stats[i]))
        if updates and is_chief_task():
            index.commit([(f"UPDATE files SET {column} = ? WHERE path = ? AND size = ? AND mtime_ns = ? "
                           "AND inode = ?", updates)])
    return out


def sha256_file(path: str) -> str:
    """The hex sha256 of a file's bytes (read in 1 MiB chunks; a remote file through `tf.io.gfile`).

    Example:
    >>> sha256_file(__file__) == sha256_file(__file__)
    True
    """

    return file_sha256(path, open_file=_fs.open_file)


__all__ = ["scan", "values", "sha256_file", "file_identity", "is_chief_task", "index_path", "source_key"]

"""The persistent scan index: made once, reused without opening an image, updated per file."""

from __future__ import annotations

import json
import logging
import os
import sqlite3

import numpy as np
import pytest
from PIL import Image

from tfft.config import DataConfig
from tfft.data import check_folder, load_splits
from tfft.data import index as scan_index
from tfft.data import probe as probing


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TFFT_CACHE_DIR", str(folder))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    probing.clear_cache()  # every scan below starts as a new process would
    yield folder
    probing.clear_cache()


@pytest.fixture
def opened(monkeypatch):
    """The files the scan opens (its header probe is the first thing it does to a file)."""
    seen: list[str] = []
    probe_header = probing.probe_header

    def counting(path):
        seen.append(os.path.basename(os.fspath(path)))
        return probe_header(path)

    monkeypatch.setattr(probing, "probe_header", counting)
    return seen


def _folder(root, per_class=4):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (24, 32, 3), np.uint8)).save(root / name / f"{name}{i}.jpg")
    (root / "a" / "bad.jpg").write_bytes(b"not an image")
    return root


def _rows(source):
    with sqlite3.connect(scan_index.index_path(source)) as conn:
        return {os.path.basename(r[0]): r for r in conn.execute("SELECT path, label, split, route, reason FROM files")}


def test_second_start_opens_no_image_and_a_changed_file_alone_is_reread(tmp_path, cache, opened):
    root = _folder(tmp_path / "photos")
    cfg = DataConfig(source=str(root), val_split=0.25)
    first = load_splits(cfg, seed=0, echo=False)
    assert sorted(opened) == sorted(["bad.jpg"] + [f"{c}{i}.jpg" for c in "ab" for i in range(4)])
    rows = _rows(str(root))
    assert len(rows) == 9 and rows["a0.jpg"][1] == "a" and rows["a0.jpg"][2] in ("train", "val")
    assert rows["bad.jpg"][3] is None and "not a readable image" in rows["bad.jpg"][4]

    opened.clear()
    probing.clear_cache()
    second = load_splits(cfg, seed=0, echo=False)
    assert opened == []
    for name, split in first.splits.items():
        assert list(second[name].paths) == list(split.paths)
        np.testing.assert_array_equal(second[name].routes, split.routes)
        np.testing.assert_array_equal(second[name].sizes, split.sizes)
    assert second.skipped == first.skipped

    Image.new("RGB", (40, 16), (1, 2, 3)).save(root / "b" / "b1.jpg")  # changed: size, mtime
    (root / "a" / "a2.jpg").unlink()
    probing.clear_cache()
    opened.clear()
    third = load_splits(cfg, seed=0, echo=False)
    assert opened == ["b1.jpg"]
    pooled = {os.path.basename(p): tuple(s) for sp in third.splits.values() for p, s in zip(sp.paths, sp.sizes)}
    assert pooled["b1.jpg"] == (40, 16) and "a2.jpg" not in pooled
    assert "a2.jpg" not in _rows(str(root))  # a deleted file's row is dropped


def test_data_check_reuses_probes_and_hashes(tmp_path, cache, opened, monkeypatch):
    root = _folder(tmp_path / "photos", per_class=3)
    (root / "b" / "copy.jpg").write_bytes((root / "a" / "a0.jpg").read_bytes())
    first = check_folder(root)
    hashed: list[str] = []
    monkeypatch.setattr(scan_index, "sha256_file", lambda p: hashed.append(p) or "x")
    probing.clear_cache()
    opened.clear()
    second = check_folder(root)
    assert opened == [] and hashed == []
    assert second["duplicates"] == first["duplicates"] and len(first["duplicates"]) == 1
    assert second["bad_files"] == first["bad_files"]


def test_non_chief_worker_reads_the_chiefs_index(tmp_path, cache, opened, monkeypatch, caplog):
    root = _folder(tmp_path / "photos", per_class=2)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    monkeypatch.setenv(scan_index.WAIT_ENV, "0.2")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    alone = scan_index.scan(str(root), paths)  # no chief came: it scans, and writes nothing
    assert len(opened) == 5 and not scan_index.index_path(str(root)).exists()
    assert "did not arrive" in caplog.text

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    probing.clear_cache()
    scan_index.scan(str(root), paths)
    assert scan_index.index_path(str(root)).exists()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    probing.clear_cache()
    opened.clear()
    read = scan_index.scan(str(root), paths)
    assert opened == [] and [p.route for p in read] == [p.route for p in alone]


@pytest.mark.parametrize("damage", ["garbage", "foreign"])
def test_a_corrupt_or_foreign_index_is_rebuilt(tmp_path, cache, opened, caplog, damage):
    root = _folder(tmp_path / "photos", per_class=2)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    where = scan_index.index_path(str(root))
    if damage == "garbage":
        where.parent.mkdir(parents=True)
        where.write_bytes(b"SQLite format 3\x00" + os.urandom(3000))
    else:  # another source's index copied over it: its rows must not be trusted
        other = _folder(tmp_path / "other", per_class=2)
        scan_index.scan(str(other), sorted(str(p) for p in other.rglob("*.jpg")))
        scan_index.index_path(str(other)).replace(where)
    probing.clear_cache()
    opened.clear()
    with caplog.at_level(logging.WARNING, logger="tfft.data.index"):
        probes = scan_index.scan(str(root), paths)
    assert len(opened) == 5 and sum(p.ok for p in probes) == 4
    assert "rebuilding it" in caplog.text
    probing.clear_cache()
    opened.clear()
    scan_index.scan(str(root), paths)
    assert opened == []


def test_hashes_are_computed_once_per_file_version(tmp_path, cache):
    root = _folder(tmp_path / "photos", per_class=2)
    paths = sorted(str(p) for p in root.rglob("*.jpg") if p.name != "bad.jpg")
    scan_index.scan(str(root), paths)
    calls: list[list[str]] = []

    def compute(todo):
        calls.append(todo)
        return [2**64 - 1 - i for i in range(len(todo))]  # pHashes use all 64 bits

    first = scan_index.values(str(root), paths, "phash", compute)
    assert scan_index.values(str(root), paths, "phash", compute) == first and len(calls) == 1
    Image.new("RGB", (8, 8)).save(paths[0])
    scan_index.scan(str(root), paths)
    scan_index.values(str(root), paths, "phash", compute)
    assert calls[1] == [paths[0]]

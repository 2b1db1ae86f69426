"""Remote folders (`ram://` here, `gs://` alike) go through the persistent scan index and `tfft data check`."""

from __future__ import annotations

import io
import os
import sqlite3
import uuid

import numpy as np
import pytest
from PIL import Image

from tfft.config import DataConfig
from tfft.data import check_folder, load_splits
from tfft.data import index as scan_index
from tfft.data import probe as probing
from tfft.data import fs


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    probing.clear_cache()
    yield tmp_path / "cache"
    probing.clear_cache()


@pytest.fixture
def reads(monkeypatch):
    """The images opened (a probe reads the bytes, a hash the file: both through `fs.open_file`);
    manifests, read through it too, are not counted."""
    seen: list[str] = []
    open_file = fs.open_file

    def counting_open(path, mode="rb"):
        if not path.endswith(".csv"):
            seen.append(os.path.basename(path))
        return open_file(path, mode)

    monkeypatch.setattr(fs, "open_file", counting_open)
    return seen


def _jpeg(rng, shape=(24, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*shape, 3), np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write(path: str, data: bytes) -> None:
    import tensorflow as tf

    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)  # ram:// appends to an existing file
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(data)


def _ram_folder(per_class=4) -> str:
    import tensorflow as tf

    root = f"ram://photos-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        tf.io.gfile.makedirs(f"{root}/{name}")
        for i in range(per_class):
            _write(f"{root}/{name}/{name}{i}.jpg", _jpeg(rng))
    _write(f"{root}/a/bad.jpg", b"not an image")
    return root


def test_a_ram_folder_is_indexed_a_second_start_reads_no_file_a_changed_one_alone_is_reread(cache, reads):
    root = _ram_folder()
    cfg = DataConfig(source=root, val_split=0.25)
    first = load_splits(cfg, seed=0, echo=False)
    assert sorted(reads) == sorted(["bad.jpg"] + [f"{c}{i}.jpg" for c in "ab" for i in range(4)])
    assert scan_index.index_path(root).is_file() and scan_index.source_key(root + "/") == root
    with sqlite3.connect(scan_index.index_path(root)) as conn:
        rows = {r[0]: r[1:] for r in conn.execute("SELECT path, label, size, inode FROM files")}
    assert rows[f"{root}/a/a0.jpg"][0] == "a" and rows[f"{root}/a/a0.jpg"][2] == 0 and len(rows) == 9
    assert first.skipped == [{"path": f"{root}/a/bad.jpg", "reason": first.skipped[0]["reason"]}]

    reads.clear()
    probing.clear_cache()
    second = load_splits(cfg, seed=0, echo=False)
    assert reads == []  # one stat a file, no read
    for name, split in first.splits.items():
        assert list(second[name].paths) == list(split.paths)
        np.testing.assert_array_equal(second[name].sizes, split.sizes)
    assert second.skipped == first.skipped

    _write(f"{root}/b/b1.jpg", _jpeg(np.random.default_rng(1), shape=(16, 40)))  # another length
    import tensorflow as tf

    tf.io.gfile.remove(f"{root}/a/a2.jpg")
    reads.clear()
    third = load_splits(cfg, seed=0, echo=False)
    assert reads == ["b1.jpg"]
    sizes = {os.path.basename(p): tuple(s) for sp in third.splits.values() for p, s in zip(sp.paths, sp.sizes)}
    assert sizes["b1.jpg"] == (40, 16) and "a2.jpg" not in sizes
    with sqlite3.connect(scan_index.index_path(root)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM files WHERE path = ?", (f"{root}/a/a2.jpg",)).fetchone()[0] == 0


def test_data_check_reads_a_ram_folder_and_reuses_its_index(cache, reads):
    root = _ram_folder(per_class=3)
    copy = fs.read_bytes(f"{root}/a/a0.jpg")
    _write(f"{root}/b/copy.jpg", copy)
    _write(f"{root}/b/notes.txt", b"ignored")
    reads.clear()
    report = check_folder(root, near_duplicates=True)
    assert report["classes"] == {"a": 3, "b": 4} and report["total_images"] == 7
    assert report["bad_files"] == [{"path": f"{root}/a/bad.jpg", "reason": report["bad_files"][0]["reason"]}]
    assert report["duplicates"] == [[f"{root}/a/a0.jpg", f"{root}/b/copy.jpg"]]
    assert report["near_duplicate_groups"] == [[f"{root}/a/a0.jpg", f"{root}/b/copy.jpg"]]
    assert report["ignored_files"] == 1 and report["errors"] == []

    reads.clear()
    probing.clear_cache()
    again = check_folder(root)
    assert reads == []  # probes and sha256s from the index
    assert again["duplicates"] == report["duplicates"] and again["bad_files"] == report["bad_files"]


def test_a_local_manifest_of_ram_files_is_indexed_too(tmp_path, cache, reads):
    root = _ram_folder(per_class=3)
    manifest = tmp_path / "photos.csv"
    manifest.write_text("path,label\n" + "".join(f"{root}/{c}/{c}{i}.jpg,{c}\n" for c in "ab" for i in range(3)))
    cfg = DataConfig(source=f"csv:{manifest}", val_split=0.0)
    reads.clear()
    first = load_splits(cfg, seed=0, echo=False)
    assert sorted(reads) == sorted(f"{c}{i}.jpg" for c in "ab" for i in range(3))
    reads.clear()
    probing.clear_cache()
    second = load_splits(cfg, seed=0, echo=False)
    assert reads == [] and list(second["train"].paths) == list(first["train"].paths)
    assert list(first["train"].paths) == [f"{root}/{c}/{c}{i}.jpg" for c in "ab" for i in range(3)]


def test_a_manifest_kept_on_a_remote_file_system_is_read_with_its_relative_rows(cache, reads):
    """`csv:ram://set/photos.csv` (`gs://` alike): rows relative to the CSV's folder, `..` resolved,
    a spreadsheet's byte-order mark dropped; one and several labels alike."""
    from tfft.data.multilabel import manifest_examples

    root = _ram_folder(per_class=3)
    rows = "".join(f"{c}/{c}{i}.jpg,{c}\n" for c in "ab" for i in range(3))
    relative = "".join(f"../{row}\n" for row in rows.splitlines())
    _write(f"{root}/lists/one.csv", ("\ufeffpath,label\n" + relative).encode("utf-8"))
    single = load_splits(DataConfig(source=f"csv:{root}/lists/one.csv", val_split=0.0), seed=0, echo=False)
    assert list(single["train"].paths) == [f"{root}/{c}/{c}{i}.jpg" for c in "ab" for i in range(3)]
    assert single.class_names == ["a", "b"]

    _write(f"{root}/many.csv", b"path,labels\n" + "".join(
        f"{c}/{c}{i}.jpg,{'a b' if i == 0 else c}\n" for c in "ab" for i in range(3)).encode("utf-8"))
    many = load_splits(DataConfig(source=f"csv:{root}/many.csv", val_split=0.0), seed=0, echo=False)
    assert sorted(many["train"].paths) == sorted(single["train"].paths)
    paths, y = manifest_examples(f"csv:{root}/many.csv", ["a", "b"])
    assert paths[0] == f"{root}/a/a0.jpg" and y.tolist()[:2] == [[1, 1], [1, 0]]


def test_a_local_multi_label_manifest_of_remote_files_keeps_their_urls(tmp_path, cache, reads):
    root = _ram_folder(per_class=2)
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,labels\n" + "".join(f"{root}/{c}/{c}{i}.jpg,{c}\n" for c in "ab" for i in range(2)))
    splits = load_splits(DataConfig(source=f"csv:{manifest}", val_split=0.0), seed=0, echo=False)
    assert sorted(splits["train"].paths) == sorted(f"{root}/{c}/{c}{i}.jpg" for c in "ab" for i in range(2))


def test_a_missing_remote_manifest_is_a_user_error_naming_it(cache):
    from tfft.errors import UserError

    with pytest.raises(UserError, match="CSV manifest not found: 'ram://nowhere/photos.csv'"):
        load_splits(DataConfig(source="csv:ram://nowhere/photos.csv"), seed=0, echo=False)

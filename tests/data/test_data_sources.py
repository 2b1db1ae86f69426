"""Sources: folders (split or not), CSV manifests, builtin:shapes, TFDS offline; skipped files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfft.config import DataConfig
from tfft.data import data_report, load_splits
from tfft.errors import DataError, UserError

from tests.data.conftest import offset_steps


def _folder(root: Path, classes: dict[str, int], size: int = 16) -> Path:
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (size, size), (index * 60 % 256, i * 7 % 256, 100)).save(root / name / f"{i:03d}.png")
    return root


def test_pets_mini_train_val_folders(pets_mini):
    splits = load_splits(DataConfig(source=str(pets_mini)), seed=0)
    assert splits.class_names == ["cat", "dog"]
    assert len(splits.splits["train"]) == 800 and len(splits.splits["val"]) == 240
    assert splits.counts("train") == {"cat": 400, "dog": 400}
    assert splits.counts("val") == {"cat": 120, "dog": 120}
    assert "test" not in splits.splits and splits.skipped == []
    report = data_report(splits)
    json.dumps(report)
    assert report["splits"]["train"]["images"] == 800 and report["skipped"] == []


def test_stratified_split_is_deterministic_and_stratified(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 20, "b": 10, "c": 30})
    cfg = DataConfig(source=str(root), val_split=0.2, test_split=0.1)
    first = load_splits(cfg, seed=7)
    again = load_splits(cfg, seed=7)
    other = load_splits(cfg, seed=8)
    assert first.class_names == ["a", "b", "c"]
    assert first.counts("val") == {"a": 4, "b": 2, "c": 6}
    assert first.counts("test") == {"a": 2, "b": 1, "c": 3}
    assert first.counts("train") == {"a": 14, "b": 7, "c": 21}
    for name in ("train", "val", "test"):
        assert list(first.splits[name].paths) == list(again.splits[name].paths)
    assert list(first.splits["val"].paths) != list(other.splits["val"].paths)
    every = [p for s in first.splits.values() for p in s.paths]
    assert len(every) == len(set(every)) == 60  # disjoint and complete


def test_limit_per_class(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 20, "b": 10})
    cfg = DataConfig(source=str(root), val_split=0.5, limit_per_class=3)
    splits = load_splits(cfg, seed=1)
    assert splits.counts("train") == {"a": 3, "b": 3} and splits.counts("val") == {"a": 3, "b": 3}
    assert list(load_splits(cfg, seed=1).splits["train"].paths) == list(splits.splits["train"].paths)


def test_explicit_train_val_and_class_mismatch(tmp_path):
    root = tmp_path / "ds"
    _folder(root / "train", {"cat": 4, "dog": 4})
    _folder(root / "val", {"cat": 2, "dog": 2})
    splits = load_splits(DataConfig(source=str(root)), seed=0)
    assert splits.counts("val") == {"cat": 2, "dog": 2} and len(splits.splits["train"]) == 8
    _folder(root / "test", {"cat": 1, "dgo": 1})
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source=str(root)), seed=0)
    assert "['cat', 'dgo']" in str(info.value) and "['cat', 'dog']" in str(info.value)


def test_train_folder_without_val_carves_val(tmp_path):
    root = tmp_path / "ds"
    _folder(root / "train", {"x": 10, "y": 10})
    splits = load_splits(DataConfig(source=str(root), val_split=0.3), seed=0)
    assert splits.counts("val") == {"x": 3, "y": 3} and splits.counts("train") == {"x": 7, "y": 7}


def test_empty_class_is_a_data_error(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 5})
    (root / "empty").mkdir()
    with pytest.raises(DataError) as info:
        load_splits(DataConfig(source=str(root)), seed=0)
    assert info.value.exit_code == 2
    assert info.value.where == str(root / "empty") and "no images" in info.value.message and info.value.hint


def test_missing_source_and_unknown_scheme(tmp_path):
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source=str(tmp_path / "nope")), seed=0)
    assert info.value.where == "data.source" and "not found" in info.value.message and info.value.hint
    with pytest.raises(UserError, match="unknown source scheme"):
        load_splits(DataConfig(source="s3://bucket/x"), seed=0)


def test_bad_files_skipped_and_reported(messy_folder, caplog):
    (messy_folder / "c").rmdir()
    splits = load_splits(DataConfig(source=str(messy_folder), val_split=0.0), seed=0)
    assert splits.counts("train") == {"a": 6, "b": 6}  # hidden file and .txt ignored
    skipped = {Path(s["path"]).name: s["reason"] for s in splits.skipped}
    assert set(skipped) == {"truncated.jpg", "empty.jpg", "text.jpg"}
    assert all(skipped.values())
    err = caplog.text  # a warning of the `tfft` logger (each command shows it once: tests/cli/test_runtime.py)
    assert "skipped 3 unreadable files" in err and "empty.jpg" in err
    assert data_report(splits)["skipped_count"] == 3
    with pytest.raises(DataError) as info:
        load_splits(DataConfig(source=str(messy_folder), val_split=0.0, on_bad_image="error"), seed=0)
    assert Path(info.value.where).name in skipped and "on_bad_image" in info.value.hint


def test_csv_manifest(tmp_path):
    root = _folder(tmp_path / "imgs", {"cat": 6, "dog": 6})
    lines = ["path,label,split"]
    for name in ("cat", "dog"):
        for i in range(6 if name == "cat" else 5):
            lines.append(f"imgs/{name}/{i:03d}.png,{name},{'val' if i < 2 else 'train'}")
    lines.append("imgs/cat/missing.png,cat,train")
    lines.append(f"{root / 'dog' / '005.png'},dog,test")  # absolute path (a file no other row lists)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    splits = load_splits(DataConfig(source=f"csv:{manifest}"), seed=0)
    assert splits.class_names == ["cat", "dog"]
    assert splits.counts("train") == {"cat": 4, "dog": 3}
    assert splits.counts("val") == {"cat": 2, "dog": 2}
    assert splits.counts("test") == {"cat": 0, "dog": 1}
    assert [Path(s["path"]).name for s in splits.skipped] == ["missing.png"]
    assert splits.skipped[0]["reason"] == "file not found"
    # Without a split column: a stratified val split.
    manifest2 = tmp_path / "sub" / "m.csv"
    manifest2.parent.mkdir()
    manifest2.write_text("path,label\n" + "".join(f"../imgs/{n}/{i:03d}.png,{n}\n" for n in ("cat", "dog") for i in range(6)))
    splits = load_splits(DataConfig(source=f"csv:{manifest2}", val_split=0.5), seed=0)
    assert splits.counts("val") == {"cat": 3, "dog": 3}
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na.png,x\n")
    with pytest.raises(UserError, match="path,label"):
        load_splits(DataConfig(source=f"csv:{bad}"), seed=0)


def test_builtin_shapes_deterministic_and_distinct():
    from tfft.data import shapes

    cfg = DataConfig(source="builtin:shapes", builtin_per_class=20, val_split=0.25)
    splits = load_splits(cfg, seed=3)
    assert len(splits.class_names) >= 6 and len(set(splits.class_names)) == len(splits.class_names)
    assert splits.counts("train") == {c: 15 for c in splits.class_names}
    assert splits.counts("val") == {c: 5 for c in splits.class_names}
    assert np.array_equal(load_splits(cfg, seed=3).splits["val"].ids, splits.splits["val"].ids)
    assert np.array_equal(shapes.render(2, 5), shapes.render(2, 5))
    assert not np.array_equal(shapes.render(2, 5), shapes.render(2, 6))
    # Classes differ in shape, not in mean colour: per-class mean images differ, means overlap.
    images = np.stack([[shapes.render(c, i) for i in range(20)] for c in range(len(shapes.CLASSES))]).astype(float)
    colour = images.mean(axis=(2, 3, 4))  # [class, image]
    spread = colour.std(axis=1).mean()
    assert np.ptp(colour.mean(axis=1)) < 3 * spread  # mean colour alone does not separate classes
    # Shape statistic: edges (gradient energy) pattern differs per class (stripes/checkers high).
    edges = np.abs(np.diff(images, axis=3)).mean(axis=(2, 3, 4))
    assert edges[:, :].mean(axis=1)[shapes.CLASSES.index("checkerboard")] > edges.mean(axis=1)[shapes.CLASSES.index("circle")]


def test_tfds_offline_error_is_helpful(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source="tfds:tf_flowers:train[:80%]"), seed=0)
    text = str(info.value)
    assert "tf_flowers" in text and str(tmp_path / "tfds") in text
    assert "tfds build tf_flowers" in text and "TFDS_DATA_DIR" in text


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A locally generated TFDS dataset (tfds.testing.DummyMnist: 20 train + 20 test, no network)."""
    pytest.importorskip("importlib_resources")  # tfds' download_and_prepare needs it
    testing = pytest.importorskip("tensorflow_datasets.testing")
    data_dir = tmp_path_factory.mktemp("tfds")
    testing.DummyMnist(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def test_tfds_source_real_code_path(tfds_dir, monkeypatch):
    from tfft.data import make_dataset

    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    cfg = DataConfig(source="tfds:dummy_mnist", image_size=(16, 16), batch_size=8, val_split=0.5)
    splits = load_splits(cfg, seed=1)
    assert splits.class_names == [str(i) for i in range(10)]
    assert {k: (v.tfds["split"], len(v)) for k, v in splits.splits.items()} == {
        "train": ("train", 10), "val": ("train", 10), "test": ("test", 20)}  # 2 images a class: 1 to val
    assert splits.counts("val") == {str(i): 1 for i in range(10)}
    full = [(x.numpy(), y.numpy()) for x, y in
            make_dataset(splits, "train", cfg, seed=1, training=True, epochs=range(0, 2))]
    assert [len(y) for _, y in full] == [8, 2, 8, 2] and full[0][0].shape == (8, 16, 16, 3)
    resumed = [y.numpy() for _, y in make_dataset(splits, "train", cfg, seed=1, training=True, epochs=range(1, 2))]
    np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate([y for _, y in full[2:]]))
    from tfft.training.process_state import run_state

    with run_state(seed=0, deterministic=False):  # `seed: 0` sets TF's global seed to 0 (it once broke the shuffle)
        again = [y.numpy() for _, y in make_dataset(splits, "train", cfg, seed=1, training=True, epochs=range(0, 1))]
    assert [len(y) for y in again] == [8, 2]
    on_decoded, batched = offset_steps(cfg.image_size)
    runs = {}
    for epochs, skip in ((range(0, 2), 0), (range(1, 2), 1)):
        a = [x.numpy() for x, _ in make_dataset(splits, "train", cfg, seed=1, training=True, epochs=epochs,
                                                augment_fn=batched, skip_batches=skip)]
        b = [x.numpy() for x, _ in make_dataset(splits, "train", cfg, seed=1, training=True, epochs=epochs,
                                                on_decoded=on_decoded, skip_batches=skip)]
        assert len(a) == len(b) == 4 - 2 * epochs.start - skip
        assert all(np.array_equal(xa, xb) for xa, xb in zip(a, b))
        runs[skip] = b
    np.testing.assert_array_equal(runs[1][0], runs[0][3])  # resumed inside epoch 1: its batch 1
    sliced = load_splits(cfg.model_copy(update={"source": "tfds:dummy_mnist:train[:50%],train[50%:]"}), seed=1)
    assert {k: len(v) for k, v in sliced.splits.items()} == {"train": 10, "val": 10}


def test_a_tfds_val_carve_is_stratified_and_seeded_like_a_folders(tfds_dir, monkeypatch):
    """README: val_split carves val from a source without one "stratified, seeded" -- a TFDS split too."""
    from tfft.data import make_dataset
    from tfft.data.sources import stratified

    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    cfg = DataConfig(source="tfds:dummy_mnist", image_size=(16, 16), batch_size=8, val_split=0.5)
    splits = load_splits(cfg, seed=3)
    every = np.concatenate([splits["train"].labels, splits["val"].labels])
    per_class = {name: int((every == c).sum()) for c, name in enumerate(splits.class_names)}
    # each class split as stratified splits a folder's class (a contiguous slice ignores the classes)
    expected = {name: len(v) for name, v in stratified({n: list(range(k)) for n, k in per_class.items()},
                                                        0.5, 0.0, 3)["val"].items()}
    assert splits.counts("val") == expected
    assert len(splits["train"]) + len(splits["val"]) == 20
    indices = {k: set(splits[k].tfds["indices"].tolist()) for k in ("train", "val")}
    assert not indices["train"] & indices["val"] and indices["train"] | indices["val"] == set(range(20))
    assert indices["val"] != set(range(10, 20))  # not the last half
    again = load_splits(cfg, seed=3)
    assert set(again["val"].tfds["indices"].tolist()) == indices["val"]  # seeded
    other = load_splits(cfg, seed=4)
    assert set(other["val"].tfds["indices"].tolist()) != indices["val"]
    val_labels = np.concatenate([y.numpy() for _, y in make_dataset(splits, "val", cfg, seed=3, training=False)])
    np.testing.assert_array_equal(val_labels, splits["val"].labels)  # the pipeline reads the carved examples

"""Multi-label data: iterative stratification, the `path,labels` manifest and its errors,
`task`, `builtin:shapes-multi`, multi-hot batches, MixUp/CutMix on label vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfft.config import DataConfig, load_config
from tfft.data import data_report, load_splits
from tfft.data import shapes
from tfft.data.stratify import iterative_kfold, iterative_stratification, split_fractions
from tfft.errors import UserError


def write_manifest(root: Path, rows: list[tuple[str, str]], header: str = "path,labels",
                   missing: tuple[str, ...] = ()) -> Path:
    """Write tiny PNGs for the rows' paths (except `missing`) and a manifest; returns its path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [header]
    for i, row in enumerate(rows):
        name = row[0]
        if name and name not in missing and not (root / name).exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 12), (i * 37 % 256, i * 11 % 256, 90)).save(root / name)
        lines.append(",".join(row))
    path = root / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _random_multi_hot(n: int, rates, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, len(rates))) < np.asarray(rates)).astype(np.int32)


# -- iterative stratification ----------------------------------------------------------------------


def test_iterative_stratification_spreads_every_label_in_proportion():
    y = _random_multi_hot(600, [0.01, 0.03, 0.1, 0.3, 0.5, 0.7])
    subset = iterative_stratification(y, [0.7, 0.2, 0.1], seed=3)
    assert subset.shape == (600,) and set(np.unique(subset)) == {0, 1, 2}
    for j, share in enumerate([0.7, 0.2, 0.1]):
        got = y[subset == j].sum(axis=0)
        # Each label within 1.5 examples of its share (random splits miss rare labels by far more).
        assert np.all(np.abs(got - share * y.sum(axis=0)) <= 1.5), (j, got, share * y.sum(axis=0))
        assert abs((subset == j).sum() - share * 600) <= 6
    assert np.array_equal(subset, iterative_stratification(y, [0.7, 0.2, 0.1], seed=3))
    assert not np.array_equal(subset, iterative_stratification(y, [0.7, 0.2, 0.1], seed=4))


def test_iterative_kfold_folds_are_balanced_per_label_and_cover_every_example():
    y = _random_multi_hot(203, [0.05, 0.2, 0.4, 0.6], seed=1)
    y[:7] = 0  # unlabelled examples still get a fold
    folds = iterative_kfold(y, 5, seed=0)
    assert folds.min() == 0 and folds.max() == 4
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 2
    per_fold = np.stack([y[folds == k].sum(axis=0) for k in range(5)])
    assert np.all(per_fold.max(axis=0) - per_fold.min(axis=0) <= 2), per_fold
    with pytest.raises(ValueError):
        iterative_kfold(y, 1, seed=0)


def _dense_reference(counts: np.ndarray, sizes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Algorithm 1 on the dense rows x labels count matrix, as tfft did before it kept it sparse."""
    shares = np.full(folds, 1.0 / folds)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(counts))
    y, weight = counts[order], sizes[order]
    demand, label_demand = shares * weight.sum(), np.outer(shares, y.sum(axis=0))
    assigned, remaining = np.full(len(y), -1), y.copy()
    while (remaining > 0).any():
        per_label = (remaining > 0).sum(axis=0)
        label = int(np.flatnonzero(per_label == per_label[per_label > 0].min())[0])
        for example in np.flatnonzero(remaining[:, label]):
            best = np.flatnonzero(label_demand[:, label] == label_demand[:, label].max())
            best = best[demand[best] == demand[best].max()]
            assigned[example] = int(best[0] if len(best) == 1 else rng.choice(best))
            label_demand[assigned[example]] -= y[example]
            demand[assigned[example]] -= weight[example]
            remaining[example] = 0
    for example in np.flatnonzero(assigned < 0):
        best = np.flatnonzero(demand == demand.max())
        assigned[example] = int(best[0] if len(best) == 1 else rng.choice(best))
        demand[assigned[example]] -= weight[example]
    out = np.empty(len(y), dtype=np.int64)
    out[order] = assigned
    return out


def test_iterative_kfold_with_groups_keeps_counts_sparse_and_folds_identical():
    rng = np.random.default_rng(5)
    y = _random_multi_hot(300, [0.03, 0.1, 0.3, 0.5, 0.05], seed=2)
    y[:10] = 0
    groups = rng.integers(0, 120, len(y))  # near-duplicate clusters of 1-8 images
    unique, index = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(unique), y.shape[1]), dtype=np.int64)
    np.add.at(counts, index, y.astype(np.int64))
    for seed in (0, 7):
        folds = iterative_kfold(y, 4, seed=seed, groups=groups)
        want = _dense_reference(counts, np.bincount(index), 4, seed)[index]
        np.testing.assert_array_equal(folds, want)
        assert all(len(set(folds[groups == g].tolist())) == 1 for g in unique)
    labels = rng.integers(0, 6, 300)  # class indices (single-label cv) take the same path
    folds = iterative_kfold(labels, 3, seed=1, groups=groups)
    np.testing.assert_array_equal(folds, _dense_reference(
        np.stack([np.bincount(labels[index == g], minlength=6) for g in range(len(unique))]),
        np.bincount(index), 3, 1)[index])


def test_split_fractions_keeps_every_label_in_train_and_zero_share_empty():
    y = np.zeros((20, 3), dtype=np.int32)
    y[:, 0] = 1
    y[0, 1] = 1  # a label with a single example
    y[1, 2] = 1
    subset = split_fractions(y, 0.5, 0.0, seed=0)
    assert set(np.unique(subset)) <= {0, 1}
    assert (y[subset == 0].sum(axis=0) >= 1).all()


# -- the manifest ----------------------------------------------------------------------------------


def test_labels_manifest_is_multi_label_with_sorted_union_and_stratified_val(tmp_path):
    names = ["cat", "dog", "bird"]
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        chosen = [n for n in names if rng.random() < 0.45]
        rows.append((f"img/{i:03d}.png", " ".join(chosen)))
    manifest = write_manifest(tmp_path / "data", rows)
    cfg = DataConfig(source=f"csv:{manifest}", val_split=0.25)
    splits = load_splits(cfg, seed=1)
    assert splits.task == "multi_label" and splits.multi_label
    assert splits.class_names == ["bird", "cat", "dog"]
    train, val = splits.splits["train"], splits.splits["val"]
    assert train.labels.shape == (len(train), 3) and train.labels.dtype == np.int32
    assert len(train) + len(val) == 60
    assert len(set(train.paths) | set(val.paths)) == 60
    truth = {str(Path(tmp_path / "data" / p)): set(cell.split()) for p, cell in rows}
    for split in (train, val):
        for path, vector in zip(split.paths, split.labels):
            assert {splits.class_names[i] for i in np.flatnonzero(vector)} == truth[path]
    totals = np.asarray(train.labels.sum(0) + val.labels.sum(0))
    assert np.all(np.abs(val.labels.sum(0) - 0.25 * totals) <= 1.5)
    report = data_report(splits)
    json.dumps(report)
    assert report["task"] == "multi_label"
    assert report["splits"]["val"]["per_class"] == {n: int(val.labels[:, i].sum())
                                                    for i, n in enumerate(splits.class_names)}
    per_image = report["splits"]["train"]["labels_per_image"]
    assert sum(per_image.values()) == len(train)
    assert per_image.get("0", 0) == int((train.labels.sum(1) == 0).sum())


def test_manifest_with_split_column_and_empty_cells(tmp_path):
    rows = [("a.png", "cat", "train"), ("b.png", "cat dog", "train"), ("c.png", "", "train"),
            ("d.png", "dog", "val"), ("e.png", "", "val")]
    manifest = write_manifest(tmp_path, rows, header="path,labels,split")
    splits = load_splits(DataConfig(source=f"csv:{manifest}"), seed=0)
    assert splits.task == "multi_label"
    assert splits.splits["train"].labels.tolist() == [[1, 0], [1, 1], [0, 0]]
    assert splits.splits["val"].labels.tolist() == [[0, 1], [0, 0]]


def test_one_label_per_row_is_single_label_under_auto(tmp_path):
    rows = [(f"{i}.png", ["cat", "dog"][i % 2]) for i in range(10)]
    manifest = write_manifest(tmp_path, rows)
    splits = load_splits(DataConfig(source=f"csv:{manifest}", val_split=0.2), seed=0)
    assert splits.task == "single_label"
    assert splits.splits["train"].labels.ndim == 1 and splits.counts("val") == {"cat": 1, "dog": 1}
    forced = load_splits(DataConfig(source=f"csv:{manifest}", val_split=0.2), seed=0, task="multi_label")
    assert forced.task == "multi_label" and forced.splits["train"].labels.shape[1] == 2


def test_folder_source_read_as_multi_label_gets_one_hot_vectors(tmp_path):
    for index, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8), (index * 100, i, 0)).save(tmp_path / name / f"{i}.png")
    single = load_splits(DataConfig(source=str(tmp_path), val_split=0.2), seed=0)
    assert single.task == "single_label"
    multi = load_splits(DataConfig(source=str(tmp_path), val_split=0.2), seed=0, task="multi_label")
    train = multi.splits["train"]
    assert train.labels.shape == (len(train), 2) and (train.labels.sum(1) == 1).all()
    assert np.array_equal(train.labels.argmax(1), single.splits["train"].labels)


@pytest.mark.parametrize("rows, where, words", [
    ([("a.png", "cat"), ("b.png", "cat;dog")], ":3", "malformed labels cell"),
    ([("a.png", "cat"), ("b.png", '"cat,dog"')], ":3", "malformed labels cell"),
    ([("a.png", "cat"), ("b.png", "cat", "dog")], ":3", "fields"),
    ([("a.png", "cat"), ("", "dog")], ":3", "path cell is empty"),
])
def test_malformed_rows_name_the_row(tmp_path, rows, where, words):
    manifest = write_manifest(tmp_path, rows)
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source=f"csv:{manifest}"), seed=0)
    assert info.value.where == f"{manifest}{where}" and words in info.value.message


def test_missing_file_names_the_row(tmp_path):
    manifest = write_manifest(tmp_path, [("a.png", "cat dog"), ("gone.png", "cat"), ("b.png", "dog")],
                              missing=("gone.png",))
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source=f"csv:{manifest}"), seed=0)
    assert info.value.where == f"{manifest}:3" and "gone.png" in info.value.message


def test_label_only_in_val_names_the_row(tmp_path):
    rows = [("a.png", "cat dog", "train"), ("b.png", "cat", "train"), ("c.png", "dog bird", "val")]
    manifest = write_manifest(tmp_path, rows, header="path,labels,split")
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source=f"csv:{manifest}"), seed=0)
    assert info.value.where == f"{manifest}:4" and "bird" in info.value.message


def test_single_label_task_on_several_labels_names_the_key_and_row(tmp_path):
    manifest = write_manifest(tmp_path, [("a.png", "cat"), ("b.png", "cat dog")])
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source=f"csv:{manifest}"), seed=0, task="single_label")
    assert info.value.where == "task" and f"{manifest}:3" in info.value.message
    with pytest.raises(UserError) as info:
        load_splits(DataConfig(source="builtin:shapes-multi", builtin_per_class=2), seed=0, task="single_label")
    assert info.value.where == "task"


def test_bad_rows_exit_2_from_the_cli(tmp_path, cli_runner):
    manifest = write_manifest(tmp_path, [("a.png", "cat"), ("b.png", "cat", "dog")])
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{source: 'csv:{manifest}', image_size: [32, 32]}}\n"
                      "model: {backbone: mobilenet, weights: null}\n")
    result = cli_runner("train", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert f"{manifest}:3" in result.output and "Traceback" not in result.output


def test_task_key_is_validated():
    assert load_config({}).task == "auto"
    with pytest.raises(UserError) as info:
        load_config({"task": "multilabel"})
    assert info.value.where == "task"


# -- builtin:shapes-multi and batches ---------------------------------------------------------------


def test_shapes_multi_is_deterministic_labelled_with_the_set_and_stratified():
    splits = load_splits(DataConfig(source="builtin:shapes-multi", builtin_per_class=10, val_split=0.25), seed=0)
    assert splits.task == "multi_label" and splits.class_names == list(shapes.CLASSES)
    train, val = splits.splits["train"], splits.splits["val"]
    assert len(train) + len(val) == 80
    for split in (train, val):
        for image_id, vector in zip(split.ids, split.labels):
            assert np.flatnonzero(vector).tolist() == shapes.multi_labels(int(image_id)).tolist()
    counts = np.bincount(np.concatenate([train.labels.sum(1), val.labels.sum(1)]), minlength=4)
    assert counts[2] > 0 and counts[3] > 0  # several shapes per image
    assert np.array_equal(shapes.render_multi(5), shapes.render_multi(5))
    assert not np.array_equal(shapes.render_multi(5), shapes.render_multi(6))


def test_multi_hot_batches_and_mixup_mixes_label_vectors():
    import tfft.data
    from tfft.augment import policies

    cfg = load_config({"data": {"source": "builtin:shapes-multi", "image_size": [16, 16], "batch_size": 8,
                                "builtin_per_class": 6}})
    images, labels = next(iter(tfft.data.build(cfg, "val")))
    splits = load_splits(cfg.data, cfg.seed, task=cfg.task)
    assert images.shape == (8, 16, 16, 3) and labels.dtype.name == "int32"
    assert labels.numpy().tolist() == splits.splits["val"].labels[:8].tolist()
    y = labels.numpy().astype(np.float32)
    for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0)):
        mixed_x, mixed_y = policies.mix(images, y, np.array([1, 2], np.int32), mixup, cutmix)
        mixed_y = mixed_y.numpy()
        assert mixed_y.shape == y.shape and mixed_y.min() >= 0 and mixed_y.max() <= 1
        # Every row is a convex combination of its own vector and one partner's.
        for row in mixed_y:
            assert any(np.allclose(row, lam * y[i] + (1 - lam) * y[j], atol=1e-5)
                       for i in range(8) for j in range(8)
                       for lam in [_lam(row, y[i], y[j])] if lam is not None)


def _lam(row, a, b):
    differ = np.flatnonzero(a != b)
    if not len(differ):
        return 1.0 if np.allclose(row, a) else None
    k = differ[0]
    return float((row[k] - b[k]) / (a[k] - b[k]))


def test_task_of_source_is_known_before_any_image_is_scanned(tmp_path):
    from tfft.data.multilabel import task_of_source

    multi = write_manifest(tmp_path / "m", [("a.png", "cat dog"), ("b.png", "cat")])
    single = write_manifest(tmp_path / "s", [("a.png", "cat"), ("b.png", "dog")])
    assert task_of_source(f"csv:{multi}") == "multi_label"
    assert task_of_source(f"csv:{single}") == "single_label"
    assert task_of_source(f"csv:{single}", "multi_label") == "multi_label"
    assert task_of_source("builtin:shapes-multi") == "multi_label"
    assert task_of_source(str(tmp_path), "auto") == "single_label"
    with pytest.raises(UserError) as info:
        task_of_source(f"csv:{multi}", "single_label")
    assert info.value.where == "task" and f"{multi}:2" in info.value.message

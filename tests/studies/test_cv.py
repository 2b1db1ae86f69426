"""tfft cv: stratified, grouped folds; every image once out of fold; a resumable study; bad --folds."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import tiny_config, user_files, write_image_folder
from tfft.studies.cv import assign_folds


def _cv_config(source: Path, name: str = "cvt") -> dict:
    return tiny_config(
        name=name,
        data={"source": str(source), "image_size": [32, 32], "batch_size": 8, "val_split": 0.25},
        schedule={"preset": "feature_extraction", "epochs": 1, "lr": 1e-2},
        training={"steps_per_epoch": 2, "verbose": "quiet"},
    )


@pytest.fixture(scope="module")
def cv_data(tmp_path_factory) -> Path:
    """2 classes x 9 images, two exact copies under new names, and a scene with a resized JPEG copy of it."""
    from PIL import Image

    root = write_image_folder(tmp_path_factory.mktemp("cv") / "images", {"cat": 8, "dog": 9}, size=24)
    shutil.copy(root / "cat" / "cat_000.png", root / "cat" / "copy_of_cat_000.png")
    shutil.copy(root / "dog" / "dog_004.png", root / "dog" / "copy_of_dog_004.png")
    y, x = np.mgrid[0:64, 0:64]
    scene = np.stack([x * 4, y * 4, ((x - 20) ** 2 + (y - 40) ** 2 < 200) * 255], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(scene).save(root / "cat" / "scene.png")
    Image.fromarray(scene).resize((48, 48)).save(root / "cat" / "scene_small.jpg", quality=75)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_assign_folds_is_stratified_grouped_and_seeded():
    labels = np.repeat([0, 1, 2], [20, 13, 7])
    singles = assign_folds(labels, np.arange(len(labels)), 4, seed=3)
    for c in range(3):  # each class as even as it can be
        counts = np.bincount(singles[labels == c], minlength=5)[1:]
        assert counts.max() - counts.min() <= 1, (c, counts)
    groups = np.arange(len(labels))
    groups[[0, 1, 2, 25]] = 0  # a cluster spanning two classes
    groups[[30, 31]] = 30
    grouped = assign_folds(labels, groups, 4, seed=3)
    assert len(set(grouped[[0, 1, 2, 25]])) == 1 and grouped[30] == grouped[31]
    assert sorted(set(grouped.tolist())) == [1, 2, 3, 4]
    assert not np.array_equal(assign_folds(labels, np.arange(40), 4, seed=4), singles)
    assert np.array_equal(assign_folds(labels, np.arange(40), 4, seed=3), singles)


@pytest.mark.slow
def test_cv_png_axes_start_at_0_and_show_each_fold(tmp_path):
    """Folds 0.93 / 0.95 / 0.94 must not look like a 3x difference: the axis starts at 0."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from tfft.studies.cv import _plot

    def stats(values):
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "per_fold": values}

    summary = {"folds": 3, "images": 600, "groups": 590,
               "metrics": {"accuracy": stats([0.93, 0.95, 0.94]), "macro_f1": stats([0.92, 0.95, 0.935]),
                           "loss": stats([0.2, 0.17, 0.19])}}
    fig = _plot(summary, tmp_path / "cv.png")
    scores, loss = fig.axes
    assert scores.get_ylim() == (0.0, 1.0) and loss.get_ylim()[0] == 0.0
    assert "axis 0 to 1" in scores.get_title() and "axis from 0" in loss.get_title()
    assert [list(line.get_ydata()) for line in scores.lines if line.get_marker() == "o"] == [
        [0.93, 0.95, 0.94], [0.92, 0.95, 0.935]]  # every fold a point, not a bar
    assert "accuracy: 0.940 ± 0.010" in scores.get_legend_handles_labels()[1]
    plt.close(fig)
    with Image.open(tmp_path / "cv.png") as png:
        assert png.format == "PNG" and png.size[0] > 600


def test_cv_writes_folds_oof_summary_and_reuses_features(tmp_path, cv_data, capsys):
    import tfft

    result = tfft.cv(_cv_config(cv_data), folds=3, run_dir=str(tmp_path / "cv"))
    out = capsys.readouterr().out
    assert ", 2 classes; looking for near-duplicates" in out and "classs" not in out
    root = result.run_dir
    assert "cv_summary.json" in (root / "report.html").read_text()  # the study's page
    images = sorted(str(p.resolve()) for p in cv_data.rglob("*.*"))
    # Every fold a complete run directory whose validation split is its fold.
    plan = _rows(root / "folds.csv")
    for k in (1, 2, 3):
        fold = root / f"fold-{k}"
        for name in ("config.yaml", "labels.txt", "model.keras", "metrics.json", "history.csv", "data_report.json"):
            assert (fold / name).is_file(), (k, name)
        cfg = yaml.safe_load((fold / "config.yaml").read_text())
        assert cfg["data"]["fold"] == k and Path(cfg["data"]["fold_file"]) == (root / "folds.csv").resolve()
        report = json.loads((fold / "data_report.json").read_text())
        assert report["splits"]["val"]["images"] == sum(r["fold"] == str(k) for r in plan)
        assert report["splits"]["train"]["images"] == len(images) - report["splits"]["val"]["images"]
    # Stratified, and the planted copies share their original's fold.
    fold_of = {r["path"]: int(r["fold"]) for r in plan}
    assert fold_of[str((cv_data / "cat" / "copy_of_cat_000.png").resolve())] == \
        fold_of[str((cv_data / "cat" / "cat_000.png").resolve())]
    assert fold_of[str((cv_data / "dog" / "copy_of_dog_004.png").resolve())] == \
        fold_of[str((cv_data / "dog" / "dog_004.png").resolve())]
    assert fold_of[str((cv_data / "cat" / "scene_small.jpg").resolve())] == \
        fold_of[str((cv_data / "cat" / "scene.png").resolve())]
    for label in ("cat", "dog"):
        counts = [sum(r["label"] == label and r["fold"] == str(k) for r in plan) for k in (1, 2, 3)]
        assert sum(counts) == {"cat": 11, "dog": 10}[label] and max(counts) - min(counts) <= 2, (label, counts)
    # Every train+val image exactly once out of fold, predicted by the fold that held it out.
    oof = _rows(root / "oof_predictions.csv")
    assert list(oof[0]) == ["path", "label", "predicted", "fold", "p_cat", "p_dog"]
    assert sorted(r["path"] for r in oof) == images
    for row in oof:
        assert int(row["fold"]) == fold_of[row["path"]]
        p = np.array([float(row["p_cat"]), float(row["p_dog"])])
        assert p.sum() == pytest.approx(1.0, abs=1e-4) and row["predicted"] == ["cat", "dog"][p.argmax()]
    # The summary: per-fold values are the folds' own metrics.json; mean and std over them.
    summary = json.loads((root / "cv_summary.json").read_text())
    assert summary == result.summary and summary["folds"] == 3
    accuracy = [json.loads((root / f"fold-{k}" / "metrics.json").read_text())["val"]["accuracy"] for k in (1, 2, 3)]
    assert summary["metrics"]["accuracy"]["per_fold"] == pytest.approx(accuracy)
    assert summary["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracy))
    assert summary["metrics"]["accuracy"]["std"] == pytest.approx(np.std(accuracy, ddof=1))
    assert set(summary["metrics"]) >= {"accuracy", "macro_f1", "loss"}
    assert set(summary["per_class_f1"]) == {"cat", "dog"}
    assert summary["groups"] == len(images) - 3
    assert summary["duplicate_pairs"] == {"exact": 2, "phash": 1}
    correct = np.mean([r["label"] == r["predicted"] for r in oof])
    assert summary["oof"]["accuracy"] == pytest.approx(correct)
    for k in (1, 2, 3):  # the OOF rows of a fold agree with the fold's own evaluation
        held_out = [r["label"] == r["predicted"] for r in oof if r["fold"] == str(k)]
        assert np.mean(held_out) == pytest.approx(accuracy[k - 1])
    issues = _rows(root / "label_issues.csv")
    assert len(issues) == len(images) and list(issues[0])[:4] == ["path", "given", "suggested", "score"]
    assert (root / "cv.png").stat().st_size > 1000
    assert "mean" in out and "std" in out and "oof" in out
    # Fold 1 computed every image's features; folds 2 and 3 read them from the store.
    store_lines = [line for line in out.splitlines() if line.startswith("feature store:")]
    assert len(store_lines) == 6, store_lines
    assert all(line.endswith(" 0 computed") for line in store_lines[2:]), store_lines


@pytest.mark.slow
def test_cv_killed_inside_fold_2_resumes_fold_2_and_keeps_fold_1(tmp_path, cv_data, monkeypatch):
    """Ctrl-C after fold 2's first checkpoint; --resume keeps fold 1 and resumes fold 2 through train."""
    import tfft
    from tfft.errors import TrainingInterrupted
    from tfft.training import checkpoint, run

    config = _cv_config(cv_data, name="resumed")
    config["schedule"]["epochs"] = 2
    real_save, real_train, calls = checkpoint.save, run.train, []

    def save_then_stop_in_fold_2(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        if Path(path).name == "fold-2":
            raise KeyboardInterrupt

    def spy(cfg, run_dir=None, resume=False, overwrite=False):
        calls.append((cfg.data.fold, resume))
        return real_train(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite)

    monkeypatch.setattr(checkpoint, "save", save_then_stop_in_fold_2)
    monkeypatch.setattr(run, "train", spy)
    with pytest.raises(TrainingInterrupted) as caught:
        tfft.cv(config, folds=2, run_dir=str(tmp_path / "cv"))
    assert "tfft cv" in str(caught.value) and "--resume" in str(caught.value)
    fold_1 = (tmp_path / "cv" / "fold-1" / "model.keras").stat().st_mtime_ns
    assert not (tmp_path / "cv" / "cv_summary.json").exists()
    assert json.loads((tmp_path / "cv" / "fold-2" / "checkpoints" / "state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(checkpoint, "save", real_save)
    result = tfft.cv(config, folds=2, run_dir=str(tmp_path / "cv"), resume=True)
    assert calls == [(1, False), (2, False), (2, True)]  # fold 1 never again; fold 2 from its checkpoint
    assert (tmp_path / "cv" / "fold-1" / "model.keras").stat().st_mtime_ns == fold_1
    history = _rows(tmp_path / "cv" / "fold-2" / "history.csv")
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert len(_rows(result.run_dir / "oof_predictions.csv")) == 21
    assert result.summary["seconds"]["per_fold"][0] is None  # finished before the interruption


@pytest.mark.slow
def test_a_test_split_stays_out_of_the_folds(tmp_path):
    """builtin:shapes with a test split: folds pool train+val only; each fold evaluates the same test
    images; with `tfft ensemble` available, --ensemble averages the folds and measures them on test."""

    import tfft
    from tfft import data
    from tfft.data.sources import example_keys

    config = tiny_config(name="withtest", data={"builtin_per_class": 6, "val_split": 0.2, "test_split": 0.25},
                         schedule={"preset": "feature_extraction", "epochs": 1},
                         training={"steps_per_epoch": 1, "verbose": "quiet"})
    splits = data.load_splits(tfft.load_config(config).data, 1)
    test = set(example_keys(splits["test"]))
    result = tfft.cv(config, folds=2, run_dir=str(tmp_path / "cv"), ensemble=True)
    oof = {r["path"] for r in _rows(result.run_dir / "oof_predictions.csv")}
    assert len(oof) == 48 - len(test) and not oof & test
    for k in (1, 2):
        report = json.loads((result.run_dir / f"fold-{k}" / "data_report.json").read_text())
        assert report["splits"]["test"]["images"] == len(test)
    assert set(result.summary["test"]) == {"accuracy", "macro_f1", "loss"}
    assert (result.run_dir / "ensemble" / "model.keras").is_file()
    # builtin:shapes is generated per fold config, so the members share no files to evaluate on;
    # the summary says so instead of reporting a number (a folder source is evaluated on test).
    assert "test" not in result.summary["ensemble"]
    assert "no common files" in result.summary["ensemble"]["evaluated_on"]


@pytest.mark.parametrize("folds, needle", [("1", "at least 2"), ("11", "only 10")])
def test_bad_folds_exit_2_with_one_line(tmp_path, cv_data, cli_runner, folds, needle):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_cv_config(cv_data)))
    result = cli_runner("cv", config, "--folds", folds, "--run-dir", tmp_path / "cv")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: --folds:") and needle in lines[-1] and "hint:" in lines[-1], result.output
    assert "Traceback" not in result.output


def test_resume_needs_the_same_folds_and_config(tmp_path, cv_data, cli_runner):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_cv_config(cv_data)))
    (tmp_path / "cv").mkdir()
    result = cli_runner("cv", config, "--folds", "2", "--run-dir", tmp_path / "cv", "--resume")
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_ensemble_without_a_test_split_is_refused_before_any_fold_trains(tmp_path, cv_data, cli_runner):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_cv_config(cv_data)))
    result = cli_runner("cv", config, "--folds", "2", "--run-dir", tmp_path / "cv", "--ensemble")
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: --ensemble:") and "no test split" in last and "data.test_split" in last, last
    assert "cv: fold" not in result.output and not (tmp_path / "cv").exists()  # nothing planned, nothing trained


def test_run_dir_with_user_files_is_refused(tmp_path, cv_data, cli_runner, user_folder):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_cv_config(cv_data)))
    result = cli_runner("cv", config, "--folds", "2", "--run-dir", user_folder)
    assert result.exit_code == 2 and f"--run-dir {user_folder}: already holds files" in result.output, result.output
    assert user_files(user_folder) == ["notes.txt", "photos/a.jpg"]


def test_sparse_fold_assignment_equals_the_dense_one():
    """`assign_folds` keeps each group's class counts sparse; its folds are those of the dense
    groups x classes matrix it replaced, on imbalanced labels with near-duplicate groups."""
    from tfft.studies.cv import assign_folds

    def dense(labels, groups, folds, seed):
        num_classes = int(labels.max()) + 1
        unique, group_index = np.unique(groups, return_inverse=True)
        counts = np.zeros((len(unique), num_classes))
        np.add.at(counts, (group_index, labels), 1.0)
        target = counts.sum(axis=0) / folds
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xC5])
        shuffled = rng.permutation(len(unique))
        rarity = (counts / np.maximum(counts.sum(axis=0), 1)).max(axis=1)
        order = shuffled[np.lexsort((-rarity[shuffled], -counts[shuffled].sum(axis=1)))]
        per_fold, chosen, scale = np.zeros((folds, num_classes)), np.zeros(len(unique), np.int64), np.maximum(target, 1e-9)
        for g in order:
            after = per_fold + counts[g]
            cost = (((after - target) / scale) ** 2).sum(axis=1) - (((per_fold - target) / scale) ** 2).sum(axis=1)
            best = np.lexsort((np.arange(folds), per_fold.sum(axis=1), np.round(cost, 9)))[0]
            chosen[g] = best
            per_fold[best] += counts[g]
        return chosen[group_index] + 1

    rng = np.random.default_rng(4)
    for n, classes, folds in ((1040, 2, 5), (3000, 40, 3), (500, 7, 4)):
        labels = np.minimum(rng.geometric(0.3, n) - 1, classes - 1)
        groups = np.arange(n)
        groups[rng.choice(n, n // 10)] = rng.integers(0, n, n // 10)  # some near-duplicate clusters
        for seed in (0, 7):
            np.testing.assert_array_equal(assign_folds(labels, groups, folds, seed), dense(labels, groups, folds, seed))

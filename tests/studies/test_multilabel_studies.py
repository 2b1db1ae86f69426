"""cv, tune and ensemble on multi-label data (builtin:shapes-multi, the tiny backbone): folds stratified
per label, out-of-fold label sets and label issues, an mAP objective pruned on val_auc, ensembles
that write their own thresholds.json and that evaluate, predict and export treat as multi-label."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.studies.conftest import head_config

pytestmark = pytest.mark.slow  # two module fixtures: a 2-fold cv with its ensemble (~25 s), a 2-trial study (~15 s)

LABELS = ["circle", "square", "triangle", "star", "cross", "ring", "stripes", "checkerboard"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _multi_config(backbone: Path, name: str, **data) -> dict:
    config = head_config(backbone, data={"source": "builtin:shapes-multi", "builtin_per_class": 6, **data},
                         training={"verbose": "quiet"})
    config["name"] = name
    return config


@pytest.fixture(scope="module")
def ml_cv(tmp_path_factory, tiny_backbone):
    """`tfft cv --folds 2 --ensemble` over shapes-multi's train+val (a test split held back)."""
    from click.testing import CliRunner

    from tfft.cli.main import cli

    root = tmp_path_factory.mktemp("mlcv")
    config = _multi_config(tiny_backbone, "mlcv", test_split=0.25)
    config["evaluate"] = {"splits": ["val", "test"]}
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["cv", str(root / "c.yaml"), "--folds", "2", "--run-dir", str(root / "cv"),
                                      "--ensemble"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"run dir: {root / 'cv'}"
    assert "mAP" in result.output and "micro_f1" in result.output  # the per-fold table
    return root / "cv"


@pytest.fixture(scope="module")
def ml_study(tmp_path_factory, tiny_backbone):
    """Two head-only trials on shapes-multi with the default objective; then their ensemble."""
    import tfft

    root = tmp_path_factory.mktemp("mltune")
    config = _multi_config(tiny_backbone, "mltune")
    result = tfft.tune(config, {"schedule.lr": {"log_uniform": [1e-3, 3e-2]}}, trials=2, run_dir=str(root / "tune"))
    members = [root / "tune" / "trials" / f"trial-{i:04d}" for i in range(2)]
    ensemble = tfft.ensemble(members, out=str(root / "ensemble"))
    return {"root": root, "tune": result, "members": members, "ensemble": ensemble}


# -- cv --------------------------------------------------------------------------------------------


def test_cv_folds_are_iterative_stratification_per_label(ml_cv):
    import tfft
    from tfft import data
    from tfft.data.sources import example_keys, pooled
    from tfft.data.stratify import iterative_kfold

    root = ml_cv
    cfg = tfft.load_config(root / "config.yaml")
    pool = pooled(data.load_splits(cfg.data, cfg.seed, task="multi_label"))
    plan = _rows(root / "folds.csv")
    assert [r["path"] for r in plan] == example_keys(pool)
    assert [r["label"] for r in plan] == [" ".join(LABELS[c] for c in np.flatnonzero(y)) for y in pool.labels]
    expected = iterative_kfold(pool.labels, 2, cfg.seed) + 1
    assert [int(r["fold"]) for r in plan] == expected.tolist()
    for c, name in enumerate(LABELS):  # every label validated in both folds
        per_fold = [int(pool.labels[expected == k, c].sum()) for k in (1, 2)]
        assert min(per_fold) >= 1, (name, per_fold)
    for k in (1, 2):  # each fold's run validates on its fold, on the shapes-multi images themselves
        report = json.loads((root / f"fold-{k}" / "data_report.json").read_text())
        assert report["task"] == "multi_label"
        assert report["splits"]["val"]["images"] == int((expected == k).sum())
        assert report["splits"]["val"]["per_class"] == {
            name: int(pool.labels[expected == k, c].sum()) for c, name in enumerate(LABELS)}


def test_cv_oof_has_label_sets_predicted_at_each_folds_thresholds(ml_cv):
    root = ml_cv
    oof = _rows(root / "oof_predictions.csv")
    plan = {r["path"]: r for r in _rows(root / "folds.csv")}
    assert list(oof[0]) == ["path", "label", "predicted", "fold"] + [f"p_{n}" for n in LABELS]
    assert sorted(r["path"] for r in oof) == sorted(plan)  # every train+val image exactly once
    cuts = {k: json.loads((root / f"fold-{k}" / "thresholds.json").read_text()) for k in (1, 2)}
    for row in oof:
        assert row["label"] == plan[row["path"]]["label"] and row["fold"] == plan[row["path"]]["fold"]
        t = cuts[int(row["fold"])]
        assert row["predicted"].split() == [n for n in LABELS if float(row[f"p_{n}"]) >= t[n]]


def test_cv_summary_reports_map_and_f1_per_fold_and_out_of_fold(ml_cv):
    from tfft.data.multilabel import multi_hot
    from tfft.task.multi_label import compute_multilabel_metrics

    root = ml_cv
    summary = json.loads((root / "cv_summary.json").read_text())
    assert summary["task"] == "multi_label"
    assert list(summary["metrics"]) == ["mAP", "micro_f1", "macro_f1", "loss", "micro_f1_at_0.5", "macro_f1_at_0.5"]
    folds = [json.loads((root / f"fold-{k}" / "metrics.json").read_text()) for k in (1, 2)]
    for name, stats in summary["metrics"].items():
        values = [m["val"][name] for m in folds]
        assert stats["per_fold"] == pytest.approx(values) and stats["mean"] == pytest.approx(np.mean(values))
        assert stats["std"] == pytest.approx(np.std(values, ddof=1))
        assert summary["test"][name]["per_fold"] == pytest.approx([m["test"][name] for m in folds])
    assert set(summary["per_class_ap"]) == set(LABELS)
    oof = _rows(root / "oof_predictions.csv")
    y = multi_hot([r["label"].split() for r in oof], LABELS)
    probs = np.array([[float(r[f"p_{n}"]) for n in LABELS] for r in oof])
    cuts = np.array([[summary["thresholds"][f"fold-{r['fold']}"][n] for n in LABELS] for r in oof])
    pooled = compute_multilabel_metrics(y, probs, LABELS, cuts)
    for name in summary["oof"]:
        assert summary["oof"][name] == pytest.approx(pooled[name], abs=1e-5), name
    assert (root / "cv.png").stat().st_size > 1000


def test_cv_label_issues_rank_per_label_disagreement(ml_cv):
    root = ml_cv
    issues = _rows(root / "label_issues.csv")
    oof = {r["path"]: r for r in _rows(root / "oof_predictions.csv")}
    assert list(issues[0])[:4] == ["path", "given", "suggested", "score"] and len(issues) == len(oof)
    flags = [r["is_issue"] == "1" for r in issues]
    assert flags == sorted(flags, reverse=True)  # flagged images first
    for row in issues:
        source = oof[row["path"]]
        assert row["given"] == source["label"] and row["suggested"] == source["predicted"]
        assert (row["is_issue"] == "1") == (row["given"] != row["suggested"])
        p = float(source[f"p_{row['label']}"])
        doubt = 1.0 - p if row["label"] in row["given"].split() else p
        assert float(row["score"]) == pytest.approx(doubt, abs=1e-5)
        if row["kind"]:
            assert row["kind"] == ("extra" if row["label"] in row["given"].split() else "missing")


def test_cv_ensemble_thresholds_are_the_folds_mean_and_it_evaluates_as_multi_label(ml_cv, cli_runner):
    ensemble = ml_cv / "ensemble"
    thresholds = json.loads((ensemble / "thresholds.json").read_text())
    folds = [json.loads((ml_cv / f"fold-{k}" / "thresholds.json").read_text()) for k in (1, 2)]
    assert list(thresholds) == LABELS
    assert thresholds == pytest.approx({n: (folds[0][n] + folds[1][n]) / 2 for n in LABELS})
    assert json.loads((ensemble / "ensemble.json").read_text())["thresholds"].startswith("mean of the members'")
    assert yaml.safe_load((ensemble / "config.yaml").read_text())["task"] == "multi_label"
    result = cli_runner("evaluate", ensemble, "--split", "test")
    assert result.exit_code == 0, result.output
    metrics = json.loads((ensemble / "eval" / "test" / "metrics.json").read_text())["test"]
    assert metrics["task"] == "multi_label" and metrics["num_examples"] == 12
    assert {n: row["threshold"] for n, row in metrics["per_class"].items()} == pytest.approx(thresholds)


def test_data_issues_declines_multi_label_with_one_line(tmp_path, tiny_backbone, cli_runner):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_multi_config(tiny_backbone, "mlissues")))
    result = cli_runner("data", "issues", config, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: task:") and "tfft cv" in result.output


# -- tune ------------------------------------------------------------------------------------------


def test_tune_optimises_map_by_default_and_prunes_on_val_auc(ml_study):
    import optuna

    result = ml_study["tune"]
    assert result.metric == "mAP" and result.direction == "maximize"
    rows = _rows(result.run_dir / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    for row, member in zip(rows, ml_study["members"]):
        val = json.loads((member / "metrics.json").read_text())["val"]
        assert float(row["value"]) == pytest.approx(val["mAP"], rel=1e-9)
        history = _rows(member / "history.csv")
        trial = study.trials[int(row["number"])]
        assert trial.intermediate_values == pytest.approx(
            {i: float(h["val_auc"]) for i, h in enumerate(history)})  # what the pruner read, each epoch
    assert result.best_value == pytest.approx(max(float(r["value"]) for r in rows))


# -- ensemble --------------------------------------------------------------------------------------


def test_ensemble_of_multilabel_runs_tunes_thresholds_on_common_val(ml_study):
    import keras

    import tfft
    from tfft import data
    from tfft.reporting.evaluate import collect
    from tfft.task.thresholds import robust_thresholds

    result = ml_study["ensemble"]
    out = result.run_dir
    assert result.thresholds_from.startswith("tuned") and result.split == "val"
    cfg = tfft.load_config(out / "config.yaml")
    splits = data.load_splits(cfg.data, cfg.seed, task="multi_label")
    model = keras.models.load_model(out / "model.keras", compile=False)
    y, probs = collect(model, data.make_dataset(splits, "val", cfg.data, seed=cfg.seed, training=False))
    assert len(y) == result.num_examples == len(splits["val"])
    thresholds = json.loads((out / "thresholds.json").read_text())
    assert list(thresholds.values()) == pytest.approx(robust_thresholds(y, probs)[0].tolist())
    intervals = json.loads((out / "threshold_intervals.json").read_text())["labels"]
    assert [row["threshold"] for row in intervals.values()] == list(thresholds.values())
    metrics = json.loads((out / "metrics.json").read_text())["val"]
    assert metrics["task"] == "multi_label" and (out / "pr_curves.png").is_file()
    for member in result.members:  # each member scored at its own thresholds on the same images
        own = json.loads((Path(member["run_dir"]) / "metrics.json").read_text())["val"]
        assert member["mAP"] == pytest.approx(own["mAP"], abs=1e-5)


def test_ensemble_predicts_and_exports_its_labels_above_its_thresholds(ml_study, cli_runner, tmp_path):
    import tensorflow as tf
    from PIL import Image

    from tfft.data import shapes
    from tfft.evaluation.export import export

    out = ml_study["ensemble"].run_dir
    thresholds = json.loads((out / "thresholds.json").read_text())
    files = []
    for image_id in range(7000, 7004):
        files.append(tmp_path / f"img_{image_id}.png")
        Image.fromarray(shapes.render_multi(image_id)).save(files[-1])
    result = cli_runner("predict", out, *files, "--format", "json")
    assert result.exit_code == 0, result.output
    for row in json.loads(result.stdout):
        p = row["all_probabilities"]
        assert sorted(row["labels"]) == sorted(n for n in LABELS if p[n] >= thresholds[n])
    saved = export(out, format="savedmodel", out=tmp_path / "sm", parity_images=8)
    assert min(saved.parity_labels.values()) == 100.0 and set(saved.parity_labels) == set(LABELS)
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    answer = serve(image_bytes=tf.constant([f.read_bytes() for f in files]))
    for probs, label in zip(answer["probabilities"].numpy(), answer["label"].numpy()):
        assert label.decode() == " ".join(n for n, p in zip(LABELS, probs) if p >= thresholds[n])


def test_ensemble_refuses_single_and_multi_label_members_together(ml_study, tiny_backbone, tmp_path, cli_runner):
    from tfft.training.run import train

    single = train(head_config(tiny_backbone, training={"verbose": "quiet"}), run_dir=str(tmp_path / "single"))
    result = cli_runner("ensemble", ml_study["members"][0], single.run_dir, "--out", tmp_path / "mixed")
    assert result.exit_code == 2 and "one task" in result.output and "Traceback" not in result.output


def test_ensemble_scored_on_other_data_keeps_the_thresholds_chosen_on_val(ml_study, tmp_path):
    """`--data` images never choose the thresholds they are scored at: those come from the members'
    val images (the same as the default ensemble's), and the metrics say the figures are not in-sample."""
    from PIL import Image

    import tfft
    from tfft.data import shapes

    rows = ["path,labels"]
    for image_id in range(7000, 7024):
        Image.fromarray(shapes.render_multi(image_id)).save(tmp_path / f"img_{image_id}.png")
        rows.append(f"{tmp_path / f'img_{image_id}.png'},{' '.join(LABELS[c] for c in shapes.multi_labels(image_id))}")
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    default = ml_study["ensemble"]
    other = tfft.ensemble(ml_study["members"], out=str(tmp_path / "other"), data=f"csv:{tmp_path / 'new.csv'}")
    assert other.num_examples == 24
    assert other.thresholds == pytest.approx(default.thresholds)  # chosen on val, not on the 24 images
    assert other.thresholds_in_sample is False and "[val]" in other.thresholds_from
    metrics = json.loads((tmp_path / "other" / "metrics.json").read_text())["val"]
    assert metrics["thresholds_in_sample"] is False and metrics["thresholds_chosen_on"] == other.thresholds_from
    own = json.loads((default.run_dir / "metrics.json").read_text())["val"]
    assert default.thresholds_in_sample is True and own["thresholds_in_sample"] is True
    assert "in-sample" in own["thresholds_chosen_on"]

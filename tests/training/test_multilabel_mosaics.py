"""Multi-label end to end on real photos: pets-mini mosaics (two photos side by side, labelled with
the classes they show) with the pretrained Lite0: training, thresholds, metrics, evaluate on another
manifest, predict, SavedModel and TFLite parity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_config

pytestmark = pytest.mark.slow  # Lite0 built twice (train, export) and a SavedModel + TFLite conversion


def _read(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def mosaic_run(pets_mini, tmp_path_factory):
    """20 photos per class and split -> 40 train, 20 val, 20 test mosaics of 64x128; two head epochs
    on Lite0's cached ImageNet features."""
    from tfft.data.mosaics import build_mosaics
    from tfft.training.run import train

    root = tmp_path_factory.mktemp("mosaics")
    manifest = build_mosaics(pets_mini, root / "mosaics", size=64, seed=0, photos_per_class=20)
    rows = _read(manifest)
    other = root / "test_only.csv"  # another manifest: the test mosaics alone, no split column
    with open(other, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "labels"])
        writer.writerows((str(manifest.parent / r["path"]), r["labels"]) for r in rows if r["split"] == "test")
    cfg = tiny_config(
        name="mosaics",
        data={"source": f"csv:{manifest}", "image_size": [64, 128], "batch_size": 16},
        model={"backbone": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.0},
        schedule={"preset": "feature_extraction", "epochs": 2, "lr": 1e-2},
        training={"steps_per_epoch": None, "verbose": "quiet"},
        evaluate={"splits": ["val", "test"]},
    )
    result = train(cfg, run_dir=str(root / "run"))
    return {"run": result.run_dir, "manifest": manifest, "rows": rows, "other": other}


def test_mosaics_manifest_every_photo_twice_in_its_own_split(mosaic_run):
    rows = mosaic_run["rows"]
    counts = {split: sum(r["split"] == split for r in rows) for split in ("train", "val", "test")}
    assert counts == {"train": 40, "val": 20, "test": 20}
    assert {r["labels"] for r in rows} <= {"cat", "dog", "cat dog"}
    assert sum(r["labels"] == "cat dog" for r in rows) > 0


def test_thresholds_and_metrics_beat_chance_on_held_out_mosaics(mosaic_run):
    run = mosaic_run["run"]
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert list(thresholds) == ["cat", "dog"] and all(0.0 < t < 1.0 for t in thresholds.values())
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["num_examples"] == 20 and test["task"] == "multi_label"
    # Chance AP of a label is its prevalence; Lite0's features rank far better on held-out mosaics.
    rows = [r for r in mosaic_run["rows"] if r["split"] == "test"]
    prevalence = np.mean([[name in r["labels"].split() for name in ("cat", "dog")] for r in rows], axis=0)
    assert test["mAP"] > prevalence.mean() + 0.5 * (1 - prevalence.mean()), (test["mAP"], prevalence)
    for name in ("cat", "dog"):
        assert test["per_class"][name]["threshold"] == pytest.approx(thresholds[name])
        assert test["per_class"][name]["support"] == sum(name in r["labels"].split() for r in rows)
    assert (run / "pr_curves.png").is_file() and (run / "label_cooccurrence.png").is_file()


def test_evaluate_other_manifest_equals_the_runs_test_split(mosaic_run, cli_runner):
    run = mosaic_run["run"]
    result = cli_runner("evaluate", run, "--data", f"csv:{mosaic_run['other']}", "--split", "test")
    assert result.exit_code == 0, result.output
    again = json.loads((run / "eval" / f"csv-{Path(mosaic_run['other']).stem}-test" / "metrics.json").read_text())["test"]
    own = json.loads((run / "metrics.json").read_text())["test"]
    assert again["num_examples"] == 20
    for key in ("mAP", "micro_f1", "macro_f1", "loss"):
        assert again[key] == pytest.approx(own[key], abs=1e-5), key


def test_predict_labels_above_thresholds(mosaic_run, cli_runner):
    run, manifest = mosaic_run["run"], mosaic_run["manifest"]
    thresholds = json.loads((run / "thresholds.json").read_text())
    files = [str(manifest.parent / r["path"]) for r in mosaic_run["rows"] if r["split"] == "test"][:4]
    result = cli_runner("predict", run, *files, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [Path(r["path"]).name for r in rows] == [Path(f).name for f in files]
    for row in rows:
        p = row["all_probabilities"]
        assert sorted(row["labels"]) == sorted(n for n in thresholds if p[n] >= thresholds[n])


def test_savedmodel_and_tflite_parity(mosaic_run, tmp_path):
    """Per-label parity on the run's own images (the SavedModel's `label` string is checked
    against the thresholds in test_multilabel_e2e.py)."""
    from tfft.evaluation.export import export

    run = mosaic_run["run"]
    saved = export(run, format="savedmodel", out=tmp_path / "sm", parity_images=8)
    assert saved.parity_max_abs_diff < 1e-4 and set(saved.parity_labels) == {"cat", "dog"}
    assert min(saved.parity_labels.values()) == 100.0
    assert "label agreement cat" in saved.parity_line()
    lite = export(run, format="tflite", out=tmp_path / "m.tflite", parity_images=8)
    assert lite.parity_max_abs_diff < 1e-4 and min(lite.parity_labels.values()) == 100.0

"""Multi-label end to end on builtin:shapes-multi: training, thresholds, metrics, evaluate on another
manifest, predict, SavedModel and TFLite parity; a model.keras that loads without tfft."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    """Two short phases (frozen backbone with the feature cache, then everything) on shapes-multi."""
    from tfft.training.run import train

    cfg = tiny_config(
        name="multi",
        data={"source": "builtin:shapes-multi", "image_size": [32, 32], "batch_size": 16, "builtin_per_class": 8},
        schedule={"phases": [{"name": "head", "epochs": 1, "unfreeze": "none", "lr": 1e-2},
                             {"name": "all", "epochs": 1, "unfreeze": "all", "lr": 1e-3}]},
        training={"steps_per_epoch": 2, "class_weight": "balanced", "label_smoothing": 0.05},
    )
    return train(cfg, run_dir=str(tmp_path_factory.mktemp("runs") / "multi"))


@pytest.fixture(scope="module")
def other_manifest(tmp_path_factory) -> tuple[Path, list[tuple[str, list[str]]]]:
    """Another manifest of shapes-multi images (ids the run never used), one row with no label."""
    from PIL import Image

    from tfft.data import shapes

    root = tmp_path_factory.mktemp("other")
    rows = []
    for image_id in range(5000, 5012):
        name = f"img_{image_id}.png"
        Image.fromarray(shapes.render_multi(image_id)).save(root / name)
        rows.append((name, [shapes.CLASSES[c] for c in shapes.multi_labels(image_id)]))
    with open(root / "other.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "labels"])
        writer.writerows((name, " ".join(labels)) for name, labels in rows)
    return root / "other.csv", rows


def test_run_writes_thresholds_metrics_and_figures(multi_run):
    from tfft.data import shapes

    run = multi_run.run_dir
    labels = (run / "labels.txt").read_text().split()
    assert labels == list(shapes.CLASSES)
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert list(thresholds) == labels and all(0.0 <= t <= 1.0 for t in thresholds.values())
    metrics = json.loads((run / "metrics.json").read_text())["val"]
    for key in ("mAP", "micro_f1", "macro_f1", "micro_f1_at_0.5", "macro_f1_at_0.5", "loss"):
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= (1.0 if key != "loss" else 50.0), key
    for name in labels:
        row = metrics["per_class"][name]
        assert {"ap", "f1", "threshold", "support"} <= set(row)
        assert row["threshold"] == pytest.approx(thresholds[name])
    for name in ("pr_curves.png", "label_cooccurrence.png", "confusion_matrix.png", "curves.png"):
        assert (run / name).read_bytes()[:4] == b"\x89PNG", name
    assert yaml.safe_load((run / "config.yaml").read_text())["task"] == "multi_label"  # auto, resolved
    report = json.loads((run / "data_report.json").read_text())
    assert report["task"] == "multi_label" and sum(report["splits"]["val"]["labels_per_image"].values()) > 0
    history = list(csv.DictReader(open(run / "history.csv")))
    assert {"auc", "f1", "val_auc", "val_f1"} <= set(history[0])


def test_model_keras_outputs_sigmoid_probabilities_without_tfft(multi_run):
    script = textwrap.dedent("""
        import sys, numpy as np, keras
        model = keras.models.load_model(sys.argv[1])
        p = model.predict(np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32"), verbose=0)
        print(p.shape, model.get_layer("probabilities").get_config()["activation"], bool((p.sum(1) != 1).any()))
        assert "tfft" not in sys.modules
    """)
    out = subprocess.run([sys.executable, "-c", script, str(multi_run.run_dir / "model.keras")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(4, 8) sigmoid True"


def test_evaluate_another_manifest_scores_every_row(multi_run, other_manifest, cli_runner):
    manifest, rows = other_manifest
    result = cli_runner("evaluate", str(multi_run.run_dir), "--data", f"csv:{manifest}", "--split", "test")
    assert result.exit_code == 0, result.output
    assert "mAP" in result.output and "test: 12 images" in result.output
    out = multi_run.run_dir / "eval" / f"csv-{Path(manifest).stem}-test"  # named after the data
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    assert metrics["num_examples"] == 12
    supports = {name: row["support"] for name, row in metrics["per_class"].items()}
    assert supports == {name: sum(name in labels for _, labels in rows) for name in supports}
    assert (out / "pr_curves.png").is_file()


def test_predict_lists_the_labels_above_their_thresholds(multi_run, other_manifest, cli_runner):
    manifest, rows = other_manifest
    thresholds = json.loads((multi_run.run_dir / "thresholds.json").read_text())
    result = cli_runner("predict", str(multi_run.run_dir), str(manifest.parent), "--format", "json")
    assert result.exit_code == 0, result.output
    predicted = json.loads(result.stdout)
    assert len(predicted) == len(rows)
    for row in predicted:
        scores = row["all_probabilities"]
        assert list(scores) == list(thresholds)
        assert sorted(row["labels"]) == sorted(n for n, p in scores.items() if p >= thresholds[n])
    table = cli_runner("predict", str(multi_run.run_dir), str(manifest.parent)).stdout.splitlines()
    assert table[0] == "path,labels," + ",".join(f"p_{n}" for n in thresholds) + ",error"


def test_savedmodel_label_joins_labels_above_threshold_and_tflite_parity(multi_run, other_manifest, tmp_path):
    import tensorflow as tf

    from tfft.evaluation.export import export

    saved = export(multi_run.run_dir, format="savedmodel", out=tmp_path / "sm", parity_images=16)
    line = saved.parity_line()
    assert line.startswith("parity: top1 agreement") and "label agreement circle" in line
    assert saved.parity_max_abs_diff < 1e-4 and min(saved.parity_labels.values()) == 100.0
    thresholds = json.loads((multi_run.run_dir / "thresholds.json").read_text())
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    manifest, rows = other_manifest
    data = [(manifest.parent / name).read_bytes() for name, _ in rows[:6]]
    out = serve(image_bytes=tf.constant(data))
    names = list(thresholds)
    for probs, label in zip(out["probabilities"].numpy(), out["label"].numpy()):
        expected = " ".join(n for n, p in zip(names, probs) if p >= thresholds[n])
        assert label.decode() == expected
    lite = export(multi_run.run_dir, format="tflite", out=tmp_path / "m.tflite", parity_images=16)
    assert lite.parity_max_abs_diff < 1e-4 and set(lite.parity_labels) == set(names)

"""A third kind of problem, registered from this test, through a real run: train, evaluate, predict.

ARCHITECTURE.md, "How to add a task": everything that depends on the problem is the task's. The
toy `TopTwo` (two labels an image: the two most probable classes) lives only in this module; tfft
trains it (`encode`, `loss`, `metrics`), scores it (`metrics_table`, `figures`), reports it
(`format_table`, `summary`), and predicts with it (`prediction_row`, `format_predictions`),
without a line of tfft knowing its name.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import yaml

from tests.conftest import tiny_config
from tfft.task import TASKS, Task


class TopTwo(Task):
    """Two labels an image, the two most probable classes; right when the given class is one of them."""

    name = "top_two"
    activation = "softmax"
    default_metric = "top2_accuracy"
    headline = ("top2_accuracy",)
    row_fields = frozenset({"pair"})

    def encode(self, labels, num_classes):
        import tensorflow as tf

        return tf.one_hot(labels, num_classes)

    def loss(self, label_smoothing=0.0):
        import keras

        return keras.losses.CategoricalCrossentropy(label_smoothing=float(label_smoothing))

    def metrics(self, num_classes, top_k):
        import keras

        return [keras.metrics.TopKCategoricalAccuracy(k=2, name="top2")]

    def class_weight(self, counts, class_names):
        return None

    def decide(self, probabilities, thresholds=None):
        return np.argsort(-np.asarray(probabilities), axis=-1, kind="stable")[..., :2]

    def epoch_metric(self, metric):
        return "loss" if metric == "loss" else "top2"

    def example_losses(self, probs, labels):
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        return -np.log(np.clip(np.asarray(probs, np.float64)[np.arange(len(labels)), labels], 1e-7, 1.0))

    def metrics_table(self, y_true, probs, class_names, thresholds=None, top_k=5):
        y = np.asarray(y_true).astype(np.int64).reshape(-1)
        hit = (self.decide(probs) == y[:, None]).any(axis=1)
        return {"task": self.name, "num_examples": int(len(y)),
                "top2_accuracy": float(hit.mean()) if len(y) else math.nan,
                "loss": float(self.example_losses(probs, y).mean()) if len(y) else math.nan,
                "per_class": {name: {"top2_accuracy": float(hit[y == i].mean()) if (y == i).any() else None,
                                     "support": int((y == i).sum())} for i, name in enumerate(class_names)},
                "class_names": list(class_names)}

    def format_table(self, metrics, title=None):
        lines = [] if title is None else [title]
        lines.append(f"top-2 accuracy {metrics['top2_accuracy']:.4f}  loss {metrics['loss']:.4f}")
        return "\n".join(lines + [f"{name}: {row['support']}" for name, row in metrics["per_class"].items()])

    def prediction_row(self, path, probabilities, class_names, thresholds=None, top_k=5):
        first, second = self.decide(probabilities).tolist()
        p = np.asarray(probabilities, np.float64)
        return {"path": path, "labels": [class_names[first], class_names[second]],
                "probabilities": [round(float(p[first]), 6), round(float(p[second]), 6)],
                "pair": f"{class_names[first]}+{class_names[second]}"}

    def format_predictions(self, rows, top_k=None):
        return "\n".join(["path,pair,error"] + [f"{r['path']},{r.get('pair', '')},{r.get('error') or ''}" for r in rows])


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    import tfft

    root = tmp_path_factory.mktemp("toy_task")
    with TASKS.registered("top_two", TopTwo):
        result = tfft.train(tiny_config(task="top_two", evaluate={"splits": ["val"]}), run_dir=str(root / "run"))
        yield root, result


def test_a_toy_task_trains_and_scores_its_own_way(toy_run):
    root, result = toy_run
    run = root / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["task"] == "top_two"
    val = json.loads((run / "metrics.json").read_text())["val"]
    assert val["task"] == "top_two" and 0.0 <= val["top2_accuracy"] <= 1.0 and val["split"] == "val"
    assert sum(row["support"] for row in val["per_class"].values()) == val["num_examples"] > 0
    history = list(csv.DictReader(io.StringIO((run / "history.csv").read_text())))
    assert "val_top2" in history[0]  # the task's compiled metric, logged each epoch
    assert not (run / "thresholds.json").exists()  # a task without thresholds writes none
    assert "top-2 accuracy" in (run / "report.md").read_text()  # the report shows the task's own table


def test_a_toy_task_evaluates_and_predicts_through_the_public_api(toy_run, tmp_path):
    import tfft
    from PIL import Image

    root, _ = toy_run
    run = str(root / "run")
    with TASKS.registered("top_two", TopTwo):
        metrics = tfft.evaluate(run, split="val")
        assert metrics["task"] == "top_two" and metrics["num_examples"] > 0
        assert tfft.format_metrics(metrics).startswith("top-2 accuracy")
        for i in range(2):
            Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
        rows = tfft.predict(run, [str(tmp_path)])
        assert [len(row["labels"]) for row in rows] == [2, 2] and all("+" in row["pair"] for row in rows)
        text = tfft.format_predictions(rows)
    assert text.splitlines()[0] == "path,pair,error" and len(text.splitlines()) == 3

"""The val top losses with heatmaps that every training run draws for its report.html."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfft import layout
from tfft.config import ModelConfig
from tfft.models.build import build_classifier
from tfft.reporting.html import write_html_report
from tfft.reporting.top_losses import rank, write_run_top_losses
from tfft.task import MultiLabel, SingleLabel


def test_losses_and_rank():
    probs = np.asarray([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    losses = SingleLabel().example_losses(probs, [0, 0, 1])
    np.testing.assert_allclose(losses, -np.log([0.9, 0.2, 0.4]))
    assert rank(losses, 2).tolist() == [1, 2]
    pairs = MultiLabel().example_losses(probs, [[1, 0], [1, 1], [0, 0]])
    assert pairs.shape == (3, 2) and np.isclose(pairs[1, 0], -np.log(0.2))


@pytest.fixture(scope="module")
def model(tiny_backbone):
    return build_classifier(ModelConfig(backbone=f"keras:{tiny_backbone}", weights=None), 2, (32, 32))


def test_writes_the_worst_val_images_with_heatmaps(model, tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (20, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 2, 20)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    path = write_run_top_losses(model, dataset, ["cat", "dog"], tmp_path, top=5)
    assert path == tmp_path / layout.TOP_LOSSES and path.stat().st_size > 1000
    summary = json.loads((tmp_path / layout.TOP_LOSSES_JSON).read_text())
    expected = np.sort(SingleLabel().example_losses(model.predict_on_batch(images), labels))[::-1][:5]
    np.testing.assert_allclose([r["loss"] for r in summary["top_losses"]], expected, rtol=1e-4, atol=1e-5)
    assert summary["scanned"] == 20 and not summary["more"]
    page = write_html_report(tmp_path).read_text()
    assert "Top losses (val" in page and page.count("data:image/png;base64,") == 1


def test_no_val_split_is_a_note(model, tmp_path):
    assert write_run_top_losses(model, None, ["cat", "dog"], tmp_path) is None
    assert not (tmp_path / layout.TOP_LOSSES).exists()
    assert "no val split" in write_html_report(tmp_path).read_text()


def test_a_run_without_val_notes_it_in_its_report(tmp_path):
    from tests.conftest import tiny_config
    from tfft.training.run import train

    cfg = tiny_config(name="noval", data={"val_split": 0.0, "builtin_per_class": 8},
                      training={"steps_per_epoch": 1, "verbose": "quiet"})
    run_dir = train(cfg, run_dir=str(tmp_path / "run")).run_dir
    assert not (run_dir / layout.TOP_LOSSES).exists()
    assert "no val split" in (run_dir / "report.html").read_text()

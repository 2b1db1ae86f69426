"""Real transfer offline: EfficientNet-Lite0's ImageNet features on pets-mini photos."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_config


@pytest.mark.slow  # one feature pass over 1040 photos with Lite0 at 224 px (one to three minutes here)
def test_feature_extraction_on_pets_reaches_95_percent(pets_mini, tmp_path):
    from tfft.training.run import train

    cfg = tiny_config(
        name="pets-lite0",
        data={"source": str(pets_mini), "image_size": [224, 224], "batch_size": 32},
        model={"backbone": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.2},
        schedule={"preset": "feature_extraction", "epochs": 5, "lr": 1e-3},
        augment={"horizontal_flip": False},  # one cached pass; the flip cache doubles it
        training={"steps_per_epoch": None, "verbose": "quiet"},
        evaluate={"splits": ["val"]},
    )
    result = train(cfg, run_dir=str(tmp_path / "run"))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())["val"]
    assert metrics["accuracy"] >= 0.95, metrics
    assert min(metrics["per_class"][name]["recall"] for name in ("cat", "dog")) >= 0.9, metrics

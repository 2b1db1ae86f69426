"""Mixed precision end to end on the CPU: train, save, load, export, on a `keras:` backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import tiny_config


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_keras_backbone_trains_saves_and_exports_under_mixed_precision(tmp_path, policy):
    """The `keras:` backbone's layers compute under the policy (they once stayed float32 while
    environment.json said mixed_float16); the run restores the global policy; model.keras takes
    and returns float32, and the exported SavedModel and .tflite agree with it."""
    import keras

    import tfft
    from tfft.evaluation.export import export

    keras.backend.clear_session()
    config = tiny_config(name=f"precision-{policy}", data={"builtin_per_class": 8},
                         performance={"precision": policy}, training={"steps_per_epoch": 2, "verbose": "quiet"},
                         evaluate={"splits": ["val"]})
    result = tfft.train(config, run_dir=str(tmp_path / "run"))
    assert keras.config.dtype_policy().name == "float32"  # the run's policy did not outlive it
    assert json.loads((result.run_dir / "environment.json").read_text())["precision"] == policy
    assert np.isfinite(result.metrics["val"]["loss"])

    model = keras.models.load_model(result.run_dir / "model.keras")
    convs = [layer for layer in model.get_layer("backbone").layers if layer.weights]
    assert convs and {layer.dtype_policy.name for layer in convs} == {policy}
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    probs = model(images)
    assert model.inputs[0].dtype == "float32" and keras.backend.standardize_dtype(probs.dtype) == "float32"
    np.testing.assert_allclose(np.asarray(probs).sum(axis=1), 1.0, atol=1e-5)

    for fmt in ("savedmodel", "tflite"):
        exported = export(result.run_dir, format=fmt)
        assert exported.parity_images > 0 and exported.parity_top1 == 100.0, (fmt, exported.parity_line())
        assert exported.parity_max_abs_diff < 1e-2, (fmt, exported.parity_line())

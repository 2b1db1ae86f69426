"""The public Python API (contract: "Python API"): build_model, data.build, load_config, __all__."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tfft
from tests.conftest import TINY_BACKBONE

SIZE = 32


def _cfg_dict(**augment) -> dict:
    return {
        "seed": 3,
        "data": {"source": "builtin:shapes", "image_size": [SIZE, SIZE], "batch_size": 8,
                 "builtin_per_class": 8},
        "model": {"backbone": TINY_BACKBONE, "weights": None},  # the run is tested, not the network
        "augment": {"horizontal_flip": False, **augment},
    }


def test_build_model_fits_saves_and_reloads_without_tfft(tmp_path: Path):
    import keras

    model = tfft.build_model(_cfg_dict(), num_classes=3)
    assert isinstance(model, keras.Model)
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == (None, 3)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, SIZE, SIZE, 3)).astype("float32")
    y = rng.integers(0, 3, 8)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-4)  # probabilities out
    np.save(tmp_path / "x.npy", x)

    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import keras
        model = keras.models.load_model({str(path)!r})
        np.save({str(tmp_path / "got.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0))
        assert "tfft" not in sys.modules, sorted(m for m in sys.modules if m.startswith("tfft"))
    """)
    # cwd away from the repo so `tfft` cannot even be found by accident on sys.path[0].
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "got.npy"), expected, atol=1e-5, rtol=1e-5)


def test_data_build_yields_batches_and_pipeline_augmentation_changes_them():
    import tensorflow as tf

    cfg = tfft.load_config(_cfg_dict())
    ds = tfft.data.build(cfg, split="train")
    assert isinstance(ds, tf.data.Dataset)
    plain_images, plain_labels = next(iter(ds))
    assert plain_images.dtype == tf.float32
    assert tuple(plain_images.shape) == (8, SIZE, SIZE, 3)
    assert tuple(plain_labels.shape) == (8,)
    assert plain_labels.dtype.is_integer
    assert float(tf.reduce_min(plain_images)) >= 0.0 and float(tf.reduce_max(plain_images)) <= 255.0
    assert float(tf.reduce_max(plain_images)) > 1.0  # 0-255, not 0-1

    val_images, _ = next(iter(tfft.data.build(cfg, "val")))
    assert tuple(val_images.shape[1:]) == (SIZE, SIZE, 3)

    augmented_cfg = tfft.load_config(_cfg_dict(placement="pipeline", horizontal_flip=True,
                                                rotation_range=30, width_shift_range=0.2))
    aug_images, aug_labels = next(iter(tfft.data.build(augmented_cfg, "train")))
    np.testing.assert_array_equal(aug_labels.numpy(), plain_labels.numpy())  # same seed, same order
    assert aug_images.shape == plain_images.shape
    assert not np.allclose(aug_images.numpy(), plain_images.numpy())
    # Seeded: the same config yields the same augmented batch again.
    again, _ = next(iter(tfft.data.build(augmented_cfg, "train")))
    np.testing.assert_allclose(again.numpy(), aug_images.numpy())


def test_load_config_accepts_path_dict_yaml_text_and_overrides(tmp_path: Path):
    text = "name: api\ndata:\n  source: builtin:shapes\n  batch_size: 4\nmodel:\n  weights: null\n"
    path = tmp_path / "api.yaml"
    path.write_text(text)
    from_path = tfft.load_config(str(path))
    from_pathlike = tfft.load_config(path)
    from_text = tfft.load_config(text)
    from_dict = tfft.load_config({"name": "api", "data": {"source": "builtin:shapes", "batch_size": 4},
                                  "model": {"weights": None}})
    for cfg in (from_path, from_pathlike, from_text, from_dict):
        assert isinstance(cfg, tfft.Config)
        assert (cfg.name, cfg.data.batch_size, cfg.model.weights) == ("api", 4, None)
        assert cfg.data.image_size == (224, 224)  # defaults filled in
    overridden = tfft.load_config(str(path), overrides=["data.batch_size=16", "data.image_size=[96,96]",
                                                        "schedule.preset=gradual"])
    assert overridden.data.batch_size == 16
    assert overridden.data.image_size == (96, 96)
    assert overridden.schedule.preset == "gradual"
    assert tfft.load_config(from_dict).to_dict() == from_dict.to_dict()  # a Config is copied
    assert tfft.load_config().to_dict() == tfft.load_config({}).to_dict()
    with pytest.raises(tfft.UserError):
        tfft.load_config({"data": {"batch_sise": 4}})
    json.dumps(overridden.to_dict())  # plain data


def test_public_names_exist_and_functions_have_examples():
    assert tfft.__all__
    for name in tfft.__all__:
        assert hasattr(tfft, name), f"tfft.{name} is in __all__ but missing"
    functions = [name for name in tfft.__all__
                 if inspect.isfunction(getattr(tfft, name)) or inspect.isclass(getattr(tfft, name))]
    assert {"load_config", "build_model", "train", "evaluate", "predict", "export"} <= set(functions)
    for name in functions:
        obj = getattr(tfft, name)
        if inspect.isclass(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        assert "Example" in doc, f"tfft.{name} has no Example in its docstring"
    assert inspect.getdoc(tfft.data.build) and "Example" in inspect.getdoc(tfft.data.build)
    specs = tfft.backbones.list()
    assert len(specs) > 10
    assert "resnet50" in [getattr(spec, "name", spec) for spec in specs]

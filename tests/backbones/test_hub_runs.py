"""What a finished `hub:` run goes through: prune in a fresh process, gradual freezing, predict,
SavedModel export, ensembles and distillation into a CNN student; a DINOv2 preset through the
generic path.

The runs use the tiny ViT preset of `conftest.py` (32 px, 2 encoder layers), builtin shapes, one
short epoch; nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_BACKBONE, tiny_config, write_image_folder

ROOT = Path(__file__).resolve().parents[2]


def _vit_config(preset: Path, seed: int = 1, **sections) -> dict:
    return tiny_config(name="hub_vit", seed=seed, model={"backbone": f"hub:{preset}", "weights": "imagenet"},
                       schedule={"preset": "feature_extraction", "epochs": 1, "lr": 1e-2}, **sections)


@pytest.fixture(scope="module")
def vit_runs(tiny_presets, tmp_path_factory) -> list[Path]:
    """Two finished ViT runs (seeds 1 and 2) on the same classes."""
    import tfft

    root = tmp_path_factory.mktemp("hub_runs")
    runs = []
    for seed in (1, 2):
        tfft.train(_vit_config(tiny_presets["vit"], seed=seed), run_dir=str(root / f"vit{seed}"))
        runs.append(root / f"vit{seed}")
    return runs


@pytest.mark.slow  # about 40 s here: a fresh Python imports TensorFlow, then 40 pruning steps
def test_prune_loads_a_hub_run_in_a_fresh_process(vit_runs, tmp_path):
    """`python -m tfft prune` never imported keras_hub itself: loading model.keras must do it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = tmp_path / "pruned"
    result = subprocess.run([sys.executable, "-m", "tfft", "prune", str(vit_runs[0]), "--sparsity", "0.5",
                             "--epochs", "1", "--min-steps", "40", "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (out / "model.keras").is_file()


def test_gradual_schedule_freezes_exactly_per_phase(tiny_presets):
    """Each gradual phase trains the ViT's top blocks (encoder layers, then the embedding) and nothing else."""
    from tfft.config import ModelConfig, ScheduleConfig
    from tfft.models.build import build_classifier, get_backbone, resolve_backbone
    from tfft.schedule.freezing import apply_freezing
    from tfft.schedule.phases import resolve_phases

    cfg = ModelConfig(backbone=f"hub:{tiny_presets['vit']}")
    model, spec = build_classifier(cfg, 3, (32, 32)), resolve_backbone(cfg)
    backbone = get_backbone(model)
    top = ["ln", "transformer_block_2", "transformer_block_1", "vit_patching_and_embedding"]
    expected = {"none": set(), "top:1": set(top[:2]), "top:2": set(top[:3]), "top:3": set(top)}
    phases = resolve_phases(ScheduleConfig(preset="gradual"), len(spec.blocks))
    assert [phase.unfreeze for phase in phases] == list(expected)
    head = sum(int(np.prod(w.shape)) for w in model.get_layer("logits").weights)
    for phase in phases:
        report = apply_freezing(model, spec, phase.unfreeze, "frozen")
        assert set(report.trainable_backbone_layers) == expected[phase.unfreeze], phase
        counted = sum(int(np.prod(w.shape)) for layer in backbone.layers
                      if layer.name in expected[phase.unfreeze] for w in layer.trainable_weights)
        assert report.trainable_params == counted + head
        assert report.trainable_params + report.non_trainable_params == sum(
            int(np.prod(w.shape)) for w in model.weights)


def test_predict_and_savedmodel_export_of_a_hub_run(vit_runs, tmp_path, cli_runner):
    images = write_image_folder(tmp_path / "images", {"a": 2}, size=32)
    result = cli_runner("predict", vit_runs[0], images, "--format", "json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and all(row["error"] is None and len(row["labels"]) == 2 for row in rows)
    result = cli_runner("export", vit_runs[0], "--format", "savedmodel", "--out", tmp_path / "sm")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("parity: top1 agreement 100.00%")


def test_an_ensemble_of_two_hub_runs(vit_runs, tmp_path):
    """The ensemble's model.keras (KerasHub layers inside) loads back and averages its members."""
    import tfft
    from tfft.runs.directory import load_model, open_run

    result = tfft.ensemble(vit_runs, tmp_path / "ens")
    assert len(result.members) == 2
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    members = [load_model(open_run(run)).predict_on_batch(images) for run in vit_runs]
    ensemble = load_model(open_run(tmp_path / "ens")).predict_on_batch(images)
    np.testing.assert_allclose(ensemble, np.mean(members, axis=0), atol=1e-5)


def test_a_cnn_student_distils_a_vit_teacher(vit_runs, tmp_path):
    """A convolutional student (the suite's two-convolution backbone, re-initialised) of the ViT run.
    (It was EfficientNet-Lite0: about 70 s here, most of it building and tracing Lite0.)"""
    import tfft

    config = tiny_config(name="student", model={"backbone": TINY_BACKBONE, "weights": None},
                         distill={"teacher": str(vit_runs[0]), "temperature": 2.0, "alpha": 0.5})
    result = tfft.train(config, run_dir=str(tmp_path / "student"))
    with open(tmp_path / "student" / "history.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    task, kd = float(row["task_loss"]), float(row["distillation_loss"])
    assert float(row["loss"]) == pytest.approx(0.5 * task + 0.5 * kd, rel=1e-4)
    assert "val" in result.metrics


def test_a_tiny_dinov2_preset_goes_through_the_generic_path(tmp_path):
    """A preset class other than ViT/ResNet: DINOv2 (2 layers, 32 px) builds, pools its class token, saves and loads."""
    import keras_hub

    from tfft import backbones
    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier

    keras_hub.models.DINOV2Backbone(patch_size=8, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
                                    use_mask_token=False, image_shape=(32, 32, 3)).save_to_preset(
        str(tmp_path / "dino"))
    spec = backbones.get(f"hub:{tmp_path / 'dino'}")
    assert spec.block_names == ["stem", "stage1", "stage2"]
    assert (spec.pooling, spec.default_size) == ("class_token", 32)
    model = build_classifier(ModelConfig(backbone=f"hub:{tmp_path / 'dino'}"), 3, (32, 32))
    model.save(tmp_path / "m.keras")
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    loaded = backbones.load_saved_model(tmp_path / "m.keras", "m", "")
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())

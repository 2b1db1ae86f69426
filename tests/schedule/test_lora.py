"""LoRA: adapters train, every backbone weight stays bitwise, the merge gives a plain model."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile

import keras
import numpy as np
import pytest

from tests.conftest import checkpoint_weights, interrupt_second_phase, tiny_config
from tfft.errors import UserError

pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from tests.backbones.conftest import save_tiny_presets

    return save_tiny_presets(tmp_path_factory.mktemp("lora_presets"))["vit"]


def _backbone_weights(model):
    """`{(layer, i, name): value}` over the backbone's layers (paths differ once saved and loaded)."""
    return {(layer.name, i, v.name): np.array(v.numpy()) for layer in model.get_layer("backbone").layers
            for i, v in enumerate(layer.weights)}


def _lora_config(tiny_vit) -> dict:
    return tiny_config(name="lora", model={"backbone": f"hub:{tiny_vit}", "weights": "imagenet"},
                       schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 2,
                                 "finetune_unfreeze": "all", "lr": 1e-2, "lora": {"rank": 2, "alpha": 4}})


@pytest.fixture(scope="module")
def lora_run(tiny_vit, tmp_path_factory) -> tuple:
    """One uninterrupted two-phase LoRA run (adapters on every block) and what it printed: the
    merge test reads it, the resume test compares its interrupted-and-resumed twin with it."""
    import tfft

    run, printed = tmp_path_factory.mktemp("lora") / "whole", io.StringIO()
    with contextlib.redirect_stdout(printed):
        tfft.train(_lora_config(tiny_vit), run_dir=str(run))
    return run, printed.getvalue()


@pytest.mark.slow  # a two-phase ViT run, shared with the resume test: 14 s at load 3.5
def test_lora_run_keeps_backbone_bitwise_and_merges_into_a_plain_model(lora_run, tiny_vit):
    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier

    run, out = lora_run
    assert "lora: rank 2, alpha 4:" in out and "adapters of 12 layers merged" in out

    saved = keras.models.load_model(run / "model.keras")
    plain = build_classifier(ModelConfig(backbone=f"hub:{tiny_vit}"), 8, (32, 32))
    assert saved.count_params() == plain.count_params()
    with zipfile.ZipFile(run / "model.keras") as archive:
        assert "lora_rank" not in archive.read("config.json").decode()  # a plain model
    # every backbone weight is the preset's, but the kernels the adapters merged into
    before, after = _backbone_weights(plain), _backbone_weights(saved)
    assert before.keys() == after.keys()
    moved = {key for key in before if not np.array_equal(before[key], after[key])}
    assert moved and {name for _, _, name in moved} == {"kernel"}
    assert {layer for layer, _, _ in moved} == {"transformer_block_1", "transformer_block_2"}
    phases = json.loads((run / "phases.json").read_text())
    assert phases[1]["trainable_params"] < phases[0]["trainable_params"] + 2000  # adapters, not the ViT


def test_lora_phase_freezes_everything_but_adapters_exactly(tiny_vit, monkeypatch):
    from tfft.config import ModelConfig, ScheduleConfig
    from tfft.models.build import build_classifier, resolve_backbone
    from tfft.schedule import lora
    from tfft.schedule.freezing import apply_freezing
    from tfft.schedule.phases import resolve_phases

    cfg = ModelConfig(backbone=f"hub:{tiny_vit}")
    spec = resolve_backbone(cfg)
    model = build_classifier(cfg, 3, (32, 32), spec=spec)
    phases = resolve_phases(ScheduleConfig(preset="two_phase", lora={"rank": 2}), len(spec.blocks))
    assert (phases[0].lora_rank, phases[1].lora_rank, phases[1].lora_alpha) == (None, 2, 2.0)
    assert lora.prepare_run(model, phases)
    report, line = lora.apply(model, phases[1], apply_freezing(model, spec, "top:1", "frozen"), True)
    names = {v.path.rsplit("/", 1)[-1] for v in model.trainable_weights}
    assert names == {"lora_kernel_a", "lora_kernel_b", "kernel", "bias"}  # kernel/bias: the head's
    head = {v.path for v in model.trainable_weights if not v.path.endswith(lora.ADAPTERS)}
    assert all(path.startswith("logits/") for path in head)
    block2 = set(map(id, lora.adaptable([model.get_layer("backbone").get_layer("transformer_block_2")])))
    adapted = {id(layer) for layer in lora.adaptable(model.get_layer("backbone").layers)
               if layer.lora_kernel_a.trainable}
    assert adapted == block2 and len(block2) == 6  # top:1 only: q, k, v, output, two MLP denses
    assert report.trainable_params == sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert "the backbone's own weights are frozen" in line

    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    before = {v.path: np.array(v.numpy()) for v in model.get_layer("backbone").weights}
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="sparse_categorical_crossentropy")
    model.fit(images, np.array([0, 1, 2, 0]), epochs=2, verbose=0)
    after = {v.path: np.array(v.numpy()) for v in model.get_layer("backbone").weights}
    for path, value in before.items():
        if path.endswith(lora.ADAPTERS):
            continue
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert any(not np.array_equal(after[p], before[p]) for p in before if p.endswith("lora_kernel_b"))
    logits = model.predict(images, verbose=0)
    import gc

    collections, collect = [], gc.collect
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or collect(*args))
    assert lora.merge(model) == 12
    assert len(collections) == 1  # once for the merge, not once per adapter (Keras' Layer.__delattr__)
    np.testing.assert_allclose(model.predict(images, verbose=0), logits, atol=1e-5)
    assert not any(v.path.endswith(lora.ADAPTERS) for v in model.weights)


def test_lora_config_is_validated_at_the_edge():
    import tfft

    with pytest.raises(UserError) as info:
        tfft.load_config(tiny_config(schedule={"lora": {"rank": 0}}))
    assert "schedule.lora.rank" in str(info.value)
    with pytest.raises(UserError) as info:
        tfft.load_config(tiny_config(schedule={"lora": {"rank": 2}, "phases": [
            {"name": "a", "epochs": 1, "unfreeze": "all", "lora": {"rank": 4}}]}))
    assert "one rank" in str(info.value)


def test_lora_on_a_cnn_is_a_user_error(tmp_path):
    import tfft

    config = tiny_config(schedule={"preset": "full", "lora": {"rank": 2}})
    with pytest.raises(UserError) as info:
        tfft.train(config, run_dir=str(tmp_path / "run"))
    assert info.value.where == "schedule.lora"


@pytest.mark.slow  # the shared run's twin, interrupted then resumed: 9 s at load 3.5
def test_lora_run_resumes_bitwise(lora_run, tiny_vit, tmp_path, cli_runner, monkeypatch):
    import tfft
    from tfft.errors import TrainingInterrupted

    run = tmp_path / "resumed"
    interrupt_second_phase(monkeypatch, run)
    with pytest.raises(TrainingInterrupted):
        tfft.train(_lora_config(tiny_vit), run_dir=str(run))
    monkeypatch.undo()
    result = cli_runner("train", run / "config.yaml", "--run-dir", run, "--resume")
    assert result.exit_code == 0, result.output
    a, b = checkpoint_weights(lora_run[0]), checkpoint_weights(run)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.values(), b.values()))
    assert any("lora_kernel_b" in key for key in a)  # the adapters are checkpointed and restored

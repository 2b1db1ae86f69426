"""`resolve` and `assemble`: one resolved run, checked before data is read, shared by train and lr-find."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_config
from tfft.config import load_config
from tfft.errors import UserError
from tfft.training.assembly import assemble, resolve


def test_a_bad_top_n_of_a_later_phase_fails_before_any_data_is_read(tmp_path, monkeypatch):
    import tfft.data
    from tfft.training.run import train

    def never(*args, **kwargs):
        raise AssertionError("data was scanned before the config was checked")

    monkeypatch.setattr(tfft.data, "load_splits", never)
    cfg = tiny_config(schedule={"phases": [{"name": "head", "epochs": 1, "unfreeze": "none"},
                                           {"name": "finetune", "epochs": 1, "unfreeze": "top:99"}]})
    with pytest.raises(UserError) as info:
        train(cfg, run_dir=str(tmp_path / "run"))
    assert info.value.where == "schedule.phases[1].unfreeze"
    assert "top:99" in str(info.value) and "top:1..top:" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_a_bad_from_layer_of_a_later_phase_fails_before_the_first_phase_trains(tmp_path):
    from tfft.training.run import train

    cfg = tiny_config(schedule={"phases": [{"name": "head", "epochs": 1, "unfreeze": "none"},
                                           {"name": "finetune", "epochs": 1, "unfreeze": "from:no_such_layer"}]})
    with pytest.raises(UserError, match="no_such_layer"):
        train(cfg, run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run" / "history.csv").exists()


@pytest.mark.parametrize("key", ["mixup", "cutmix"])
def test_mixing_inside_the_model_is_refused_naming_both_keys(key):
    with pytest.raises(UserError) as info:
        resolve(tiny_config(augment={key: 0.4, "placement": "model"}))
    assert f"augment.{key}" in info.value.where and "augment.placement" in info.value.where
    # `auto` never picks the combination: MixUp/CutMix mix in the pipeline, even on a GPU.
    run = resolve(tiny_config(augment={key: 0.4, "placement": "auto"}))
    assert run.augment_placement(accelerator=True) == "pipeline"


def test_model_placement_trains_with_per_example_seeds():
    """`augment.placement: model` used to stop at the first step: 'seed' of shape (2,) for (None, 2)."""
    import keras

    asm = assemble(resolve(tiny_config(augment={"rotation_range": 20, "placement": "model"})))
    assert asm.placement == "model" and asm.train_model is not asm.model
    (images, seeds), labels = next(iter(asm.dataset("train", range(0, 1))))
    assert tuple(seeds.shape) == (images.shape[0], 2)
    asm.compile(asm.train_model, keras.optimizers.Adam(1e-3))
    logs = asm.train_model.train_on_batch((images, seeds), labels, return_dict=True)
    assert np.isfinite(logs["loss"])


def test_bn_auto_follows_the_weights_and_is_shown_resolved():
    assert load_config({"model": {"weights": None}}).schedule.bn == "train"
    assert load_config({"model": {"weights": "imagenet"}}).schedule.bn == "frozen"
    assert load_config({"model": {"weights": None}, "schedule": {"bn": "frozen"}}).schedule.bn == "frozen"
    assert "bn: train" in load_config({"model": {"weights": None}}).to_yaml()


def test_lr_find_adds_the_standardization_layers_train_adds(tmp_path, capsys):
    from tfft.training.lr_find import find_lr

    cfg = tiny_config(augment={"horizontal_flip": False, "featurewise_center": True})
    result = find_lr(cfg, steps=5, start_lr=1e-4, end_lr=1e-2, run_dir=str(tmp_path / "lr"))
    assert "featurewise statistics from 104 training images" in capsys.readouterr().out
    assert len(result.lrs) == 5

"""Exact freezing for ResNet50 and VGG16: what trains is what `unfreeze` names, nothing else moves."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfft.config import ModelConfig, ScheduleConfig
from tfft.models.build import build_classifier, get_backbone, resolve_backbone
from tfft.schedule.freezing import apply_freezing
from tfft.schedule.phases import resolve_phases

SIZE = (32, 32)
PREFIXES = {"resnet50": [f"conv{i}_" for i in range(1, 6)], "vgg16": [f"block{i}_" for i in range(1, 6)]}


@pytest.fixture(scope="module", params=["resnet50", "vgg16"])
def built(request):
    cfg = ModelConfig(backbone=request.param, weights=None)
    model = build_classifier(cfg, 3, SIZE)
    return request.param, model, resolve_backbone(cfg)


def _expected_layers(name, backbone, unfreeze, bn):
    layers = backbone.layers
    if unfreeze == "none":
        chosen = []
    elif unfreeze == "all":
        chosen = layers
    elif unfreeze.startswith("top:"):
        n = int(unfreeze[4:])
        prefixes = tuple(PREFIXES[name][-n:])
        chosen = [l for l in layers if l.name.startswith(prefixes)]
        if name == "resnet50" and n == 5:  # the stem's pads/pool belong to conv1 as well
            chosen = [l for l in layers if l.name not in ("input_layer",) and not isinstance(l, keras.layers.InputLayer)]
    else:
        names = [l.name for l in layers]
        chosen = layers[names.index(unfreeze[5:]):]
    return {l.name for l in chosen if l.weights and not (bn == "frozen" and isinstance(l, keras.layers.BatchNormalization))}


def _from_spec(name):
    return "from:conv4_block6_out" if name == "resnet50" else "from:block4_conv3"


@pytest.mark.parametrize("unfreeze", ["none", "all", "top:1", "top:2", "from"])
@pytest.mark.parametrize("bn", ["frozen", "train"])
def test_trainable_layers_match_blocks(built, unfreeze, bn):
    name, model, spec = built
    unfreeze = _from_spec(name) if unfreeze == "from" else unfreeze
    report = apply_freezing(model, spec, unfreeze, bn)
    backbone = get_backbone(model)
    expected = _expected_layers(name, backbone, unfreeze, bn)
    assert set(report.trainable_backbone_layers) == expected
    # Parameter counts equal Keras' own counts for those layers plus the head.
    head = sum(int(np.prod(w.shape)) for w in model.get_layer("logits").weights)
    counted = sum(int(np.prod(w.shape)) for l in backbone.layers if l.name in expected for l in [l]
                  for w in l.trainable_weights)
    assert report.trainable_params == counted + head
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    assert report.trainable_params + report.non_trainable_params == total
    if name == "resnet50" and unfreeze == "top:1":
        assert expected and all(n.startswith("conv5_") for n in expected)


@pytest.mark.parametrize("preset", ["feature_extraction", "full", "two_phase", "gradual"])
def test_every_preset_phase_freezes_exactly(built, preset):
    name, model, spec = built
    for phase in resolve_phases(ScheduleConfig(preset=preset), len(spec.blocks)):
        report = apply_freezing(model, spec, phase.unfreeze, "frozen")
        expected = _expected_layers(name, get_backbone(model), phase.unfreeze, "frozen")
        assert set(report.trainable_backbone_layers) == expected, phase


def _snapshot(model):
    return {v.path: np.array(v.numpy()) for v in model.variables}


@pytest.mark.slow
@pytest.mark.parametrize("bn", ["frozen", "train"])
def test_frozen_weights_and_bn_statistics_do_not_move(bn):
    cfg = ModelConfig(backbone="resnet50", weights=None, dropout=0.0)
    model = build_classifier(cfg, 3, SIZE)
    spec = resolve_backbone(cfg)
    apply_freezing(model, spec, "top:1", bn)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = _snapshot(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, *SIZE, 3)).astype("float32")
    y = rng.integers(0, 3, 8)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = _snapshot(model)
    for path, value in before.items():
        moved = not np.array_equal(value, after[path])
        layer = path.split("/")[0]
        in_top = layer.startswith("conv5_") or layer in ("logits",)
        is_bn_stat = "moving_" in path
        is_bn = "_bn" in layer
        if "seed_generator" in path or "iteration" in path:
            continue
        if not in_top:
            assert not moved, f"{path} moved but is frozen"
        elif is_bn and bn == "frozen":
            assert not moved, f"{path} (BatchNorm, bn: frozen) moved"
        elif is_bn_stat and bn == "train":
            assert moved, f"{path} should update its statistics with bn: train"
        elif not is_bn:
            assert moved, f"{path} is trainable but did not move"


def test_unknown_from_layer_is_a_user_error(built):
    from tfft.errors import UserError

    _, model, spec = built
    with pytest.raises(UserError, match="did you mean|no layer"):
        apply_freezing(model, spec, "from:conv5_blok1_1_conv")
    with pytest.raises(UserError, match="more blocks"):
        apply_freezing(model, spec, "top:9")

"""Learning-rate schedules and layer-wise rates."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfft.config import ModelConfig, ScheduleConfig
from tfft.schedule.optimizers import PhaseSchedule, make_optimizer
from tfft.schedule.phases import resolve_phases


def test_cosine_with_warmup():
    s = PhaseSchedule("cosine", 1.0, total_steps=110, warmup_steps=10)
    values = [float(s(i)) for i in range(110)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.5, abs=1e-6)
    assert values[-1] < 1e-3
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_step_and_one_cycle_and_constant():
    step = PhaseSchedule("step", 1.0, total_steps=40, steps_per_epoch=5, step_every=2, step_factor=0.5)
    assert [float(step(i)) for i in (0, 9, 10, 20)] == [1.0, 1.0, 0.5, 0.25]
    cycle = PhaseSchedule("one_cycle", 1.0, total_steps=100)
    values = [float(cycle(i)) for i in range(100)]
    assert int(np.argmax(values)) in range(28, 32) and values[0] < 0.1 and values[-1] < 1e-3
    assert float(PhaseSchedule("constant", 0.3, 10)(7)) == pytest.approx(0.3)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop"])
def test_optimizers_build(name):
    phase = resolve_phases(ScheduleConfig(preset="full", optimizer=name, weight_decay=1e-4), 5)[0]
    assert isinstance(make_optimizer(phase, 10), keras.optimizers.Optimizer)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_layer_decay_scales_each_blocks_rate(name):
    from tfft.models.build import build_classifier, get_backbone, resolve_backbone
    from tfft.schedule.freezing import apply_freezing
    from tfft.schedule.optimizers import layer_decay_multipliers

    cfg = ModelConfig(backbone="vgg16", weights=None, dropout=0.0)
    model = build_classifier(cfg, 2, (32, 32))
    spec = resolve_backbone(cfg)
    apply_freezing(model, spec, "top:2")
    multipliers = layer_decay_multipliers(model, spec, 0.5)
    assert multipliers["block5_conv1/kernel"] == 0.5 and multipliers["block4_conv1/kernel"] == 0.25
    phase = resolve_phases(ScheduleConfig(preset="full", optimizer=name, lr=1e-2), 5)[0]
    model.compile(optimizer=make_optimizer(phase, 1, multipliers), loss="sparse_categorical_crossentropy")
    backbone = get_backbone(model)
    b5, b4 = backbone.get_layer("block5_conv3").kernel, backbone.get_layer("block4_conv3").kernel
    before5, before4 = b5.numpy().copy(), b4.numpy().copy()
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, batch_size=4, verbose=0)
    step5, step4 = np.abs(b5.numpy() - before5), np.abs(b4.numpy() - before4)
    if name == "adam":  # Adam's first step is lr * sign(g): exactly the block's rate
        assert np.max(step5) == pytest.approx(1e-2 * 0.5, rel=1e-3)
        assert np.max(step4) == pytest.approx(1e-2 * 0.25, rel=1e-3)
    else:
        assert np.max(step5) > 0 and np.max(step4) > 0


def test_carry_state_copies_slots_of_shared_variables():
    from tfft.schedule.optimizers import carry_state

    a, b = keras.Variable(np.ones((2, 2)), name="a"), keras.Variable(np.ones(3), name="b")
    old = keras.optimizers.Adam(0.1)
    old.build([a])
    old.apply([np.full((2, 2), 0.5, "float32")], [a])
    new = keras.optimizers.Adam(0.1)
    new.build([a, b])
    assert carry_state(old, new) == 1
    assert np.allclose(new._momentums[0].numpy(), old._momentums[0].numpy())
    assert np.allclose(new._momentums[0].numpy(), 0.05)  # (1 - beta_1) * g
    assert np.all(new._momentums[1].numpy() == 0)
    assert int(new.iterations.numpy()) == 1

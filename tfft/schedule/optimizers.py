"""Optimizers and learning-rate schedules for a phase, with discriminative (layer-wise) rates.

Layer-wise rates work with any Keras optimizer: every Keras 3 optimizer applies its update in
`update_step(gradient, variable, learning_rate)`, once per variable and per replica under
tf.distribute, so a subclass that multiplies `learning_rate` by the variable's factor gives each
block its own rate without touching the update rule (Adam's scale-invariance defeats the usual
gradient-scaling trick; this does not).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras

from tfft import compat
from tfft.schedule.phases import Phase

_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


@keras.saving.register_keras_serializable(package="tfft")
class PhaseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then constant, cosine, one-cycle or step decay, over one phase.

    Args:
        kind: `constant | cosine | one_cycle | step` (`plateau` runs as constant plus a callback).
        lr: the peak rate.
        total_steps: steps in the phase.
        warmup_steps: linear warm-up from 0 (one-cycle warms up over 30% when this is 0).
        steps_per_epoch: for `step`, which multiplies by `step_factor` every `step_every` epochs.
        offset: optimizer iterations already done when the phase starts (carried optimizers).

    Example:
    >>> s = PhaseSchedule("cosine", 1e-3, total_steps=100, warmup_steps=10)
    >>> round(float(s(10)), 6)
    0.001
    """

    def __init__(self, kind: str, lr: float, total_steps: int, warmup_steps: int = 0,
                 steps_per_epoch: int = 1, step_every: int = 1, step_factor: float = 0.1,
                 offset: int = 0):
        self.kind = kind
        self.lr = float(lr)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.step_every = int(step_every)
        self.step_factor = float(step_factor)
        self.offset = int(offset)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32") - float(self.offset)
        lr = self.lr
        warmup = float(self.warmup_steps)
        if self.kind == "one_cycle":
            warmup = warmup or 0.3 * self.total_steps
        decay_steps = max(self.total_steps - warmup, 1.0)
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        if self.kind == "cosine":
            value = 0.5 * lr * (1.0 + ops.cos(math.pi * progress))
        elif self.kind == "one_cycle":
            # Anneal from lr to lr/1e4 (fastai's default final divisor), cosine-shaped.
            low = lr / 1e4
            value = low + 0.5 * (lr - low) * (1.0 + ops.cos(math.pi * progress))
        elif self.kind == "step":
            epoch = ops.floor(step / float(self.steps_per_epoch))
            value = lr * ops.power(self.step_factor, ops.floor(epoch / float(self.step_every)))
        else:
            value = ops.convert_to_tensor(lr, "float32") + 0.0 * step
        if warmup > 0:
            start = lr / 25.0 if self.kind == "one_cycle" else 0.0
            ramp = start + (lr - start) * ops.clip((step + 1.0) / warmup, 0.0, 1.0)
            value = ops.where(step < warmup, ramp, value)
        return value

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "lr": self.lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "steps_per_epoch": self.steps_per_epoch,
                "step_every": self.step_every, "step_factor": self.step_factor, "offset": self.offset}


_LAYERWISE_CLASSES: dict[type, type] = {}


def _layerwise_class(base: type) -> type:
    """A subclass of `base` whose update scales the rate per variable (cached per base)."""
    if base in _LAYERWISE_CLASSES:
        return _LAYERWISE_CLASSES[base]

    class Layerwise(base):  # type: ignore[misc, valid-type]
        def __init__(self, lr_multipliers: Mapping[str, float], **kwargs):
            super().__init__(**kwargs)
            self._lr_multipliers = dict(lr_multipliers)
            self._index_multipliers: list[float] = []

        def build(self, variables):
            super().build(variables)
            self._index_multipliers = [self._lr_multipliers.get(v.path, 1.0) for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            factor = self._index_multipliers[self._get_variable_index(variable)]
            if factor != 1.0:
                learning_rate = learning_rate * factor
            return super().update_step(gradient, variable, learning_rate)

    Layerwise.__name__ = f"Layerwise{base.__name__}"
    _LAYERWISE_CLASSES[base] = Layerwise
    return Layerwise


def layer_decay_multipliers(model: keras.Model, spec: Any, decay: float) -> dict[str, float]:
    """Per-variable rate factors: head 1, the backbone's top block `decay`, the next `decay**2`...

    Args:
        model: a tfft classifier.
        spec: its `BackboneSpec` (for the block of each layer).
        decay: the factor per block, in (0, 1]; 1 turns layer-wise rates off.
    """
    if decay >= 1.0:
        return {}
    from tfft.models.build import get_backbone

    backbone = get_backbone(model)
    blocks = spec.block_of_layers(backbone)
    total = len(spec.blocks)
    factors = {}
    for layer in backbone.layers:
        depth_from_top = total - blocks[layer.name]  # top block -> 1
        for variable in layer.weights:
            factors[variable.path] = float(decay ** depth_from_top)
    return factors


def make_optimizer(phase: Phase, steps_per_epoch: int, lr_multipliers: Mapping[str, float] | None = None,
                   offset: int = 0) -> keras.optimizers.Optimizer:
    """Build the optimizer a phase asks for.

    Args:
        phase: the resolved phase (optimizer, rate, schedule, warm-up, weight decay).
        steps_per_epoch: optimizer steps per epoch.
        lr_multipliers: variable path -> rate factor (from `layer_decay_multipliers`).
        offset: optimizer iterations done before this phase (carried optimizer state).

    Example:
    >>> from tfft.config import ScheduleConfig
    >>> from tfft.schedule.phases import resolve_phases
    >>> phase = resolve_phases(ScheduleConfig(preset="full", optimizer="sgd"), 5)[0]
    >>> type(make_optimizer(phase, steps_per_epoch=10)).__name__
    'SGD'
    """
    total = phase.epochs * steps_per_epoch
    warmup = int(round(phase.warmup_epochs * steps_per_epoch))
    if phase.lr_schedule == "plateau" or (phase.lr_schedule == "constant" and warmup == 0):
        rate: Any = phase.lr  # a variable, so ReduceLROnPlateau can lower it
    else:
        kind = "constant" if phase.lr_schedule == "plateau" else phase.lr_schedule
        rate = PhaseSchedule(kind, phase.lr, total, warmup, steps_per_epoch,
                             phase.step_every, phase.step_factor, offset)
    kwargs: dict[str, Any] = {"learning_rate": rate}
    base = _OPTIMIZERS[phase.optimizer]
    if phase.optimizer == "sgd":
        kwargs.update(momentum=phase.momentum, nesterov=phase.nesterov)
    elif phase.optimizer == "rmsprop":
        kwargs.update(momentum=phase.momentum if phase.nesterov else 0.0)
    if phase.weight_decay:
        kwargs["weight_decay"] = phase.weight_decay
    if lr_multipliers:
        return _layerwise_class(base)(lr_multipliers=lr_multipliers, **kwargs)
    return base(**kwargs)


def current_lr(optimizer: keras.optimizers.Optimizer) -> float:
    """The rate the optimizer uses at its current iteration."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def carry_state(old: keras.optimizers.Optimizer, new: keras.optimizers.Optimizer) -> int:
    """Copy the per-variable slots (moments, velocities) of `old` into the built `new` optimizer.

    Works for any Keras optimizer that keeps its slots as lists aligned with its trainable
    variables (Adam, AdamW, SGD, RMSprop and the rest of `keras.optimizers`). Variables that
    `old` did not train start from zero; the iteration count carries on.

    Args:
        old: the previous phase's optimizer (built).
        new: this phase's optimizer, built on this phase's trainable variables.

    Returns:
        How many model variables had their slots carried over.

    Example:
    >>> # between phases, with schedule.carry_optimizer: true
    >>> carry_state(previous_optimizer, model.optimizer)  # doctest: +SKIP
    """
    old_vars, new_vars = compat.optimizer_variables_of(old), compat.optimizer_variables_of(new)
    old_index = {v.path: i for i, v in enumerate(old_vars)}
    carried = set()
    for name, slots in vars(new).items():
        old_slots = getattr(old, name, None)
        aligned = (isinstance(slots, list) and len(slots) == len(new_vars) and slots
                   and isinstance(old_slots, list) and len(old_slots) == len(old_vars))
        if not aligned or not all(isinstance(s, keras.Variable) for s in slots):
            continue
        for j, variable in enumerate(new_vars):
            i = old_index.get(variable.path)
            if i is not None and tuple(old_slots[i].shape) == tuple(slots[j].shape):
                slots[j].assign(old_slots[i])
                carried.add(variable.path)
    new.iterations.assign(old.iterations)
    return len(carried)

"""tfft's freezing schedule as a Keras callback, for a user's own `model.fit`."""

from __future__ import annotations

from typing import Any, Optional, Union

import keras

from tfft.config import ScheduleConfig
from tfft.schedule.freezing import apply_freezing
from tfft.schedule.optimizers import layer_decay_multipliers, make_optimizer
from tfft.schedule.phases import Phase, resolve_phases


class FreezingSchedule(keras.callbacks.Callback):
    """Apply a tfft freezing schedule inside a user's own `model.fit`.

    At the first epoch of each phase it sets the trainable layers as the phase says (BatchNorm
    rule included), builds the phase's optimizer (rate, schedule, layer-wise decay) and recompiles
    the model with the loss and metrics the user compiled it with, so the next step trains
    exactly the phase's variables. Fit for `callback.total_epochs` epochs.

    The loss, metrics and other compile settings come from Keras' public
    `model.get_compile_config()`; only the optimizer is replaced.

    Args:
        model: a model from `tfft.build_model` (the backbone is its layer named `backbone`).
        schedule: a `ScheduleConfig`, or the `schedule` section as a dict.
        backbone: the backbone's name (`model.backbone` of the config) or its `BackboneSpec`;
            default: the registered backbone whose blocks describe the nested backbone's layers
            (`tfft.models.build.backbone_spec_of`), whatever the model is called.
        pretrained: what `schedule.bn: auto` means here: `frozen` for pretrained weights
            (True), `train` from scratch (False).

    Example:
    >>> model = tfft.build_model(cfg, num_classes=3)  # doctest: +SKIP
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # doctest: +SKIP
    >>> schedule = FreezingSchedule(model, {"preset": "two_phase", "head_epochs": 2, "finetune_epochs": 3})  # doctest: +SKIP
    >>> model.fit(ds, epochs=schedule.total_epochs, callbacks=[schedule])  # doctest: +SKIP
    """

    def __init__(self, model: keras.Model, schedule: Union[ScheduleConfig, dict, None] = None,
                 backbone: Union[str, Any, None] = None, pretrained: bool = True):
        super().__init__()
        from tfft.config import ModelConfig
        from tfft.models.build import backbone_spec_of, resolve_backbone

        if not isinstance(schedule, ScheduleConfig):
            schedule = ScheduleConfig.model_validate(schedule or {})
        if backbone is None:
            self.spec = backbone_spec_of(model)
        elif isinstance(backbone, str):
            self.spec = resolve_backbone(ModelConfig(backbone=backbone))
        else:
            self.spec = backbone
        self.bn = schedule.bn if schedule.bn != "auto" else ("frozen" if pretrained else "train")
        self.schedule = schedule
        self.phases: list[Phase] = resolve_phases(schedule, len(self.spec.blocks))
        self.starts = []
        epoch = 0
        for phase in self.phases:
            self.starts.append(epoch)
            epoch += phase.epochs
        self.total_epochs = epoch
        self.current: Optional[int] = None
        self.target = model

    def phase_at(self, epoch: int) -> int:
        """Index of the phase that epoch `epoch` (0-based) belongs to."""
        index = 0
        for i, start in enumerate(self.starts):
            if epoch >= start:
                index = i
        return index

    def on_epoch_begin(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        index = self.phase_at(epoch)
        if index == self.current:
            return
        self.current = index
        phase = self.phases[index]
        model = self.model
        report = apply_freezing(self.target, self.spec, phase.unfreeze, self.bn)
        steps = int(self.params.get("steps") or 1)
        multipliers = layer_decay_multipliers(self.target, self.spec, phase.layer_decay)
        optimizer = make_optimizer(phase, steps, multipliers)
        config = keras.saving.deserialize_keras_object(model.get_compile_config())
        config["optimizer"] = optimizer
        model.compile(**config)
        optimizer.build(model.trainable_variables)
        model.make_train_function(force=True)
        print(f"phase {index + 1}/{len(self.phases)} {phase.name}: unfreeze {phase.unfreeze}, lr {phase.lr:g}, "
              f"{report.trainable_params:,} trainable params")

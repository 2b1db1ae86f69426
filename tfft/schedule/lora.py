"""LoRA: low-rank adapters in a backbone's Dense / EinsumDense layers, its own weights frozen.

`schedule.lora: {rank: R, alpha: A}` (or a phase's `lora`) gives every Dense and EinsumDense
layer (a transformer's attention projections and MLP) inside the blocks a phase's `unfreeze`
names a pair of adapters `A (in x R)`, `B (R x out)`; the layer computes with
`kernel + (alpha / R) * A @ B` (Keras 3's own `enable_lora`). In that phase only the adapters and
the head train: every other variable of the backbone, biases and normalisation included, is
frozen, so it stays bitwise what it was.

The adapters are created once per run, before any checkpoint is restored (`prepare`), with `B`
zero, so they change nothing until trained and a resumed run restores them like any variable.
At the end `merge` folds them into the kernels and removes them: `model.keras` is a plain
model, the same layers and parameter count as without LoRA, loadable without tfft.

Example:
>>> import keras
>>> inputs = keras.Input((4,))
>>> backbone = keras.Model(inputs, keras.layers.Dense(3, name="proj")(inputs), name="backbone")
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(backbone(inputs)))
>>> adapted = prepare(model, rank=2, alpha=4.0)
>>> [layer.name for layer in adapted], freeze_all_but_adapters(adapted, True)
(['proj'], 14)
>>> merge(model), model.count_params()
(1, 23)
"""

from __future__ import annotations

import gc

from collections.abc import Sequence
from typing import Any, Optional

from tfft import compat
from tfft.errors import UserError

BACKBONE = "backbone"
ADAPTERS = ("lora_kernel_a", "lora_kernel_b")


def _sublayers(layer: Any) -> list[Any]:
    """`layer` and every layer inside it (a KerasHub block's attention and MLP included)."""
    return compat.flatten_layers(layer)


def adaptable(layers: Sequence[Any]) -> list[Any]:
    """The Dense / EinsumDense layers in `layers` and inside them, each once, in order."""
    import keras

    found: list[Any] = []
    for layer in layers:
        for sub in _sublayers(layer):
            if isinstance(sub, (keras.layers.Dense, keras.layers.EinsumDense)) and sub not in found:
                found.append(sub)
    return found


def _backbone(model: Any) -> Any:
    return model.get_layer(BACKBONE) if any(layer.name == BACKBONE for layer in model.layers) else model


def prepare(model: Any, rank: int, alpha: float, layers: Optional[Sequence[Any]] = None) -> list[Any]:
    """Give the Dense / EinsumDense layers of the backbone (or of `layers`) adapters of `rank`.

    Args:
        model: the tfft classifier (its nested `backbone` is adapted) or a backbone.
        rank: the adapters' rank.
        alpha: the scale numerator (`alpha / rank`).
        layers: the layers to search (default: all the backbone's).

    Returns:
        The adapted layers.

    Raises:
        UserError: `schedule.lora` when there is no Dense / EinsumDense layer to adapt.
    """
    targets = adaptable(layers if layers is not None else _backbone(model).layers)
    if not targets:
        raise UserError("schedule.lora", "the backbone has no Dense or EinsumDense layer to adapt",
                        "LoRA adapts attention and MLP layers: use a transformer (e.g. a hub: ViT "
                        "preset), or drop schedule.lora")
    for layer in targets:
        if not layer.lora_enabled:
            layer.enable_lora(rank, lora_alpha=alpha)
    return targets


def _is_adapter(variable: Any) -> bool:
    return variable.path.rsplit("/", 1)[-1] in ADAPTERS


def freeze_all_but_adapters(layers: Sequence[Any], train_adapters: bool) -> int:
    """In the trainable ones of `layers` (a phase's unfrozen backbone layers), freeze every
    variable but the adapters, or with `train_adapters` False the adapters too (a phase without
    LoRA in a run with adapters). Returns how many adapter parameters train.

    With `train_adapters`, a layer without adapters that holds variables (LayerNormalization,
    BatchNormalization: then in inference mode, its moving statistics exact) is set
    `trainable = False`; an adapted layer keeps `trainable` and its kernel and bias are frozen
    variable by variable.
    """
    count = 0
    for layer in layers:
        if not layer.trainable:
            continue
        for sub in _sublayers(layer):
            own = compat.own_variables(sub)
            if any(_is_adapter(v) for v in own):
                for variable in own:
                    variable.trainable = train_adapters and _is_adapter(variable)
                    count += int(variable.numpy().size) if variable.trainable else 0
            elif own and train_adapters:
                sub.trainable = False
    return count


def prepare_run(model: Any, phases: Sequence[Any]) -> bool:
    """Create the run's adapters (rank from its LoRA phases) in the backbone, before any
    checkpoint is restored; False (nothing done) for a run without LoRA."""
    lora = [phase for phase in phases if getattr(phase, "lora_rank", None)]
    if not lora:
        return False
    prepare(model, lora[0].lora_rank, lora[0].lora_alpha)
    return True


def apply(model: Any, phase: Any, report: Any, in_run: bool) -> tuple[Any, Optional[str]]:
    """A phase's LoRA freezing, after `apply_freezing` (nothing for a run without adapters).

    Args:
        model: the classifier, frozen for the phase by `tfft.schedule.freezing.apply_freezing`.
        phase: the resolved `Phase` (`lora_rank`, `lora_alpha`; None: no LoRA in this phase).
        report: `apply_freezing`'s `FreezeReport`.
        in_run: what `prepare_run` returned.

    Returns:
        The report with this phase's parameter counts, and the line to print (or None).
    """
    if not in_run:
        return report, None
    import dataclasses

    import keras

    backbone = _backbone(model)
    count = freeze_all_but_adapters(backbone.layers, phase.lora_rank is not None)
    for layer in adaptable(backbone.layers):
        if phase.lora_alpha is not None:
            layer.lora_alpha = phase.lora_alpha
    trainable = sum(int(keras.ops.size(v)) for v in model.trainable_weights)
    report = dataclasses.replace(report, trainable_params=trainable, non_trainable_params=sum(
        int(keras.ops.size(v)) for v in model.non_trainable_weights))
    if phase.lora_rank is None:
        return report, None
    return report, (f"lora: rank {phase.lora_rank}, alpha {phase.lora_alpha:g}: {count:,} adapter "
                    f"params train ({trainable:,} trainable in all); the backbone's own weights are frozen")


def merge(model: Any) -> int:
    """Fold each layer's adapters into its kernel and remove them (a plain layer again).

    `model`'s traced functions are dropped; another model sharing these layers must not reuse
    a function traced before the merge.

    Returns:
        How many layers were merged.
    """
    import keras

    merged = 0
    for layer in _sublayers(model):
        if not getattr(layer, "lora_enabled", False):
            continue
        kernel = keras.ops.convert_to_numpy(layer.kernel)  # kernel + (alpha / rank) * A @ B
        adapters = [layer.lora_kernel_a, layer.lora_kernel_b]
        compat.base_kernel(layer).assign(kernel)
        # Keras has no `disable_lora`: untrack the adapters and clear the flags, so the layer's
        # variables, config and saved file are those of a layer that never had them.
        compat.untrack_variables(layer, adapters)
        compat.delete_variable_attributes(layer, list(ADAPTERS))
        layer.lora_enabled = False
        layer.lora_rank = None
        layer.lora_alpha = None
        compat.base_kernel(layer).trainable = True
        merged += 1
    if merged:  # a traced predict/evaluate/train step still adds A @ B: trace again on next use
        for name in ("predict_function", "test_function", "train_function"):
            if hasattr(model, name):
                setattr(model, name, None)
        gc.collect()  # the adapters' memory, released once (Keras collects once per variable)
    return merged


__all__ = ["adaptable", "apply", "freeze_all_but_adapters", "merge", "prepare", "prepare_run"]

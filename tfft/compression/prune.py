"""`tfft prune RUN_DIR --sparsity S`: gradual magnitude pruning while fine-tuning, native Keras 3.

TF-MOT's `prune_low_magnitude` does not support Keras 3 (tensorflow/model-optimization#1119),
so this is its schedule written as one Keras callback (`MagnitudePruning`):

* what is pruned: the kernels of every `Conv2D` and `Dense` layer (the backbone's too); not
  depthwise kernels (one 3x3 filter per channel: a few weights that carry a whole channel), not
  biases, not BatchNormalization;
* the schedule, in optimizer steps (`plan_schedule`): at least `min_steps` (100) of them, the
  training data repeating as often as needed (8 steps of a small data set could not both ramp and
  recover); the sparsity follows Zhu & Gupta's cubic ramp (TF-MOT's `PolynomialDecay`, power 3):
  at step t it is `S x (1 - (1 - t / n)^3)`, rising from 0 to S over the first
  `n = ramp x steps` steps (`ramp` 0.75 by default), and the last steps train at S to recover;
  a schedule with fewer than `MIN_RECOVERY_STEPS` recovery steps or `MIN_MASK_UPDATES` mask
  updates in its ramp is refused (exit 2);
* the masks: non-trainable variables, recomputed every `frequency` steps per layer from the
  magnitudes of the kept weights (the smallest `round(s x size)` set to 0), `frequency` chosen
  from the ramp's length (about `MASK_UPDATES` updates) unless given, and applied after every
  optimizer step (`on_train_batch_end`), so a pruned weight that the optimizer moves returns to
  exactly 0.

The val accuracy of the dense model and of the pruned one (the same images, the same
computation: `val_accuracy`) is printed and stored in pruning.json; a fall of more than
`ACCURACY_WARN_DROP` gets a warning that suggests a longer schedule or a lower sparsity.

The run is the source run's assembled run (`tfft.training.assembly`: its data, augmentation,
task loss and metrics), its classifier loaded with the source's weights, every layer trainable
(BatchNorm too, by default: `bn="train"`, see `prune`). The result is a run directory: `model.keras` (plain layers,
exact zeros: there is nothing to strip, the masks never enter the model), `pruning.json`
(contract: target and reached sparsity, per layer, gzip sizes dense and pruned), `metrics.json`,
`history.csv`, `phases.json`, `config.yaml`, `labels.txt`, `data_report.json`. `tfft evaluate`,
`predict` and `export` (int8 included: a zero weight quantizes to exactly 0) take it.

Example:
>>> import tfft
>>> result = tfft.prune("runs/pets", sparsity=0.75, epochs=2)  # doctest: +SKIP
>>> round(result.sparsity, 3), result.run_dir.name  # doctest: +SKIP
(0.75, 'pets-pruned-75')
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from tfft import layout
from tfft.atomic import atomic_path, check_output, write_csv, write_json, write_text
from tfft.errors import UserError

PRUNING = "pruning.json"
BN_MOMENTUM = 0.9  # Keras' 0.99 averages over ~100 steps: longer than a short pruning run's last sparsity step
HISTORY_COLUMNS = ("epoch", "phase", "loss", "val_loss", "lr", "sparsity")
MIN_STEPS = 100  # default least number of pruning steps: the data repeats to reach it
MASK_UPDATES = 16  # about this many mask updates over the ramp when --frequency is not given
MIN_MASK_UPDATES = 4  # fewer is a jump, not a gradual prune
MIN_RECOVERY_STEPS = 10  # steps at the final sparsity after the ramp
ACCURACY_WARN_DROP = 0.03  # warn when the pruned val accuracy is this much below the dense one


@dataclasses.dataclass(frozen=True)
class PruningSchedule:
    """The pruning schedule in optimizer steps (see `plan_schedule`).

    Attributes:
        steps: optimizer steps in all.
        epochs: Keras epochs (`steps / epochs` steps each).
        data_passes: passes over the training data streamed (the data repeats when needed).
        ramp_steps: steps over which the sparsity rises from 0 to the target.
        frequency: the masks are recomputed every this many steps during the ramp.
        frequency_source: `auto` (from the ramp's length) or `--frequency`.
    """

    steps: int
    epochs: int
    data_passes: int
    ramp_steps: int
    frequency: int
    frequency_source: str = "auto"

    @property
    def steps_per_epoch(self) -> int:
        return self.steps // self.epochs

    @property
    def recovery_steps(self) -> int:
        return self.steps - self.ramp_steps

    @property
    def mask_updates(self) -> int:
        """Mask updates during the ramp (every `frequency` steps, and at its last step)."""
        return self.ramp_steps // self.frequency + (1 if self.ramp_steps % self.frequency else 0)

    def describe(self) -> str:
        return (f"{self.steps} steps ({self.epochs} epoch(s) of {self.steps_per_epoch}, {self.data_passes} pass(es) "
                f"over the data): sparsity ramps (cubic) over {self.ramp_steps}, then {self.recovery_steps} "
                f"recovery steps; masks every {self.frequency} steps ({self.frequency_source}), "
                f"{self.mask_updates} updates")


def plan_schedule(epochs: int, steps_per_pass: int, min_steps: int = MIN_STEPS, ramp: float = 0.75,
                  frequency: Optional[int] = None) -> PruningSchedule:
    """The pruning schedule of `epochs` passes over data of `steps_per_pass` batches.

    The run has `max(epochs x steps_per_pass, min_steps)` steps (rounded up to whole epochs): a
    small data set repeats. The sparsity ramps over the first `ramp` of them; the masks are
    recomputed every `frequency` steps (default: about `MASK_UPDATES` times over the ramp).

    Args:
        epochs: Keras epochs (at least 1).
        steps_per_pass: batches in one pass over the training data.
        min_steps: the least number of steps.
        ramp: the fraction of the steps over which the sparsity rises, in (0, 1).
        frequency: steps between mask updates, or None to derive it from the ramp.

    Returns:
        A `PruningSchedule`.

    Raises:
        UserError: a schedule with fewer than `MIN_RECOVERY_STEPS` recovery steps or fewer than
            `MIN_MASK_UPDATES` mask updates in its ramp, or a bad argument.

    Example:
    >>> schedule = plan_schedule(2, 8)  # 245 images in batches of 32, 2 epochs: the data repeats
    >>> schedule.steps, schedule.ramp_steps, schedule.recovery_steps, schedule.frequency
    (100, 75, 25, 4)
    """
    if not 0.0 < float(ramp) < 1.0:
        raise UserError("--ramp", f"expected a fraction of the steps in (0, 1), got {ramp}",
                        "e.g. 0.75: the sparsity rises over the first 3/4, the rest recovers")
    if int(min_steps) < 1:
        raise UserError("--min-steps", f"expected at least 1, got {min_steps}", f"the default is {MIN_STEPS}")
    if frequency is not None and int(frequency) < 1:
        raise UserError("--frequency", f"expected at least 1 step, got {frequency}", "or leave it out (auto)")
    epochs = int(epochs)
    per_epoch = max(int(steps_per_pass), math.ceil(int(min_steps) / epochs))
    steps = per_epoch * epochs
    ramp_steps = max(1, int(round(float(ramp) * steps)))
    source = "auto" if frequency is None else "--frequency"
    every = max(1, ramp_steps // MASK_UPDATES) if frequency is None else int(frequency)
    schedule = PruningSchedule(steps, epochs, math.ceil(steps / int(steps_per_pass)), ramp_steps, every, source)
    longer = (f"lengthen it: --epochs (now {epochs}) or --min-steps (now {min_steps}; the data repeats), "
              "or a lower --ramp")
    if schedule.recovery_steps < MIN_RECOVERY_STEPS:
        raise UserError("--epochs", f"the pruning schedule is too short: {steps} steps leave "
                        f"{schedule.recovery_steps} at the final sparsity after a ramp of {ramp_steps}, "
                        f"expected at least {MIN_RECOVERY_STEPS} to recover", longer)
    if schedule.mask_updates < MIN_MASK_UPDATES:
        hint = (f"use --frequency {max(1, ramp_steps // MASK_UPDATES)} or leave it out (auto)"
                if frequency is not None else longer)
        raise UserError("--frequency" if frequency is not None else "--epochs",
                        f"masks every {every} steps over a ramp of {ramp_steps} steps is {schedule.mask_updates} "
                        f"update(s), expected at least {MIN_MASK_UPDATES} for a gradual prune", hint)
    return schedule


@dataclasses.dataclass
class PruneResult:
    """What `prune` wrote: the run directory, the sparsity reached, the pruned model's metrics."""

    run_dir: Path
    target_sparsity: float
    sparsity: float
    layers: dict[str, float]
    gzip_bytes: dict[str, int]
    metrics: dict[str, Any]


def polynomial_sparsity(step: int, target: float, ramp_steps: int, power: int = 3) -> float:
    """TF-MOT's `PolynomialDecay` from 0: `target x (1 - (1 - step / ramp_steps)^power)`, then `target`.

    Example:
    >>> [round(polynomial_sparsity(t, 0.8, 4), 4) for t in range(6)]
    [0.0, 0.4625, 0.7, 0.7875, 0.8, 0.8]
    """
    progress = min(max(step / max(ramp_steps, 1), 0.0), 1.0)
    return float(target * (1.0 - (1.0 - progress) ** power))


def _all_layers(model: Any) -> list[Any]:
    """Every layer of a model, nested models' layers included, each once."""
    found: list[Any] = []

    def walk(layer: Any) -> None:
        if all(layer is not other for other in found):
            found.append(layer)
        for inner in getattr(layer, "layers", []) or []:
            walk(inner)

    for layer in model.layers:
        walk(layer)
    return found


def prunable_layers(model: Any) -> list[Any]:
    """The `Conv2D` and `Dense` layers of a model, nested models included (not depthwise or
    separable convolutions, which are other classes in Keras 3), each once, in model order.

    Example:
    >>> import keras
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.DepthwiseConv2D(3, name="dw")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(keras.layers.Flatten()(x)))
    >>> [layer.name for layer in prunable_layers(model)]
    ['conv', 'fc']
    """
    import keras

    return [layer for layer in _all_layers(model) if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """1 for the weights kept, 0 for the `round(sparsity x size)` smallest in magnitude.

    Example:
    >>> magnitude_mask(np.array([[0.1, -3.0], [2.0, -0.5]]), 0.5).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    flat = np.abs(np.asarray(kernel, np.float32)).ravel()
    count = int(round(float(sparsity) * flat.size))
    mask = np.ones(flat.size, np.float32)
    if count > 0:
        mask[np.argpartition(flat, count - 1)[:count]] = 0.0
    return mask.reshape(np.shape(kernel))


def _make_callback_class() -> Any:
    import keras

    class MagnitudePruning(keras.callbacks.Callback):
        """Gradual magnitude pruning of `layers`' kernels (see the module docstring).

        Args:
            layers: from `prunable_layers`.
            target: the final sparsity S.
            schedule: a `PruningSchedule` (its `ramp_steps` and `frequency`).

        After training, `ramp_sparsity` is the sparsity measured over the kernels at the end of the
        ramp and `recovery_steps_run` the optimizer steps that ran after it.
        """

        def __init__(self, layers: list[Any], target: float, schedule: PruningSchedule):
            super().__init__()
            self.layers = layers
            self.target = float(target)
            self.ramp_steps = int(schedule.ramp_steps)
            self.frequency = int(schedule.frequency)
            self.step = 0
            self.sparsity = 0.0
            self.ramp_sparsity: Optional[float] = None
            self.recovery_steps_run = 0
            self.masks = [keras.Variable(np.ones(tuple(layer.kernel.shape), np.float32), trainable=False,
                                         name=f"{layer.name}_prune_mask") for layer in layers]

        def _update_masks(self) -> None:
            self.sparsity = polynomial_sparsity(self.step, self.target, self.ramp_steps)
            for layer, mask in zip(self.layers, self.masks):
                mask.assign(magnitude_mask(keras.ops.convert_to_numpy(layer.kernel), self.sparsity))

        def _apply(self) -> None:
            for layer, mask in zip(self.layers, self.masks):
                layer.kernel.assign(layer.kernel * keras.ops.cast(mask, layer.kernel.dtype))

        def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
            self.step += 1
            if self.step > self.ramp_steps:
                self.recovery_steps_run += 1
            elif self.step % self.frequency == 0 or self.step == self.ramp_steps:
                self._update_masks()
            self._apply()
            if self.step == self.ramp_steps:
                self.ramp_sparsity = sparsity_of(self.layers)[0]

        def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
            if logs is not None:
                logs["sparsity"] = self.sparsity

        def on_train_end(self, logs: Optional[dict] = None) -> None:
            if self.sparsity < self.target:  # a run stopped before the end of its ramp still ends at S
                self.step = max(self.step, self.ramp_steps)
                self._update_masks()
            self._apply()

    return MagnitudePruning


def sparsity_of(layers: list[Any]) -> tuple[float, dict[str, float]]:
    """The fraction of exact zeros over the kernels of `layers`, and per layer."""
    import keras

    per_layer, zeros, total = {}, 0, 0
    for layer in layers:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        count = int((kernel == 0).sum())
        per_layer[layer.name] = count / kernel.size
        zeros, total = zeros + count, total + kernel.size
    return (zeros / total if total else 0.0), per_layer


def gzip_size(path: Path) -> int:
    """Bytes of `path` compressed by gzip at level 9 (the usual measure of a pruned model's size)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def _plain_gzip_size(model: Any) -> int:
    """`gzip_size` of `model` saved as the pruned one is (uncompiled: a trained run's model.keras may
    hold its optimizer's state too, which would flatter the comparison)."""
    import tempfile

    import keras

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "dense.keras"
        keras.Model(model.inputs, model.outputs, name=model.name).save(target)
        return gzip_size(target)


def _schedule_record(schedule: PruningSchedule, pruning: Any, min_steps: int) -> dict[str, Any]:
    """pruning.json's `schedule`: the one planned, and what ran (steps, sparsity at the ramp's end)."""
    return {"kind": "polynomial, power 3, from 0 (Zhu & Gupta 2017)", "steps": schedule.steps,
            "min_steps": int(min_steps), "epochs": schedule.epochs, "steps_per_epoch": schedule.steps_per_epoch,
            "data_passes": schedule.data_passes, "ramp_steps": schedule.ramp_steps,
            "recovery_steps": schedule.recovery_steps, "frequency": schedule.frequency,
            "frequency_source": schedule.frequency_source, "mask_updates": schedule.mask_updates,
            "steps_run": pruning.step, "ramp_sparsity": pruning.ramp_sparsity,
            "recovery_steps_run": pruning.recovery_steps_run}


def val_accuracy(model: Any, dataset: Any) -> float:
    """Top-1 accuracy of `model` over `dataset`'s batches of (images, one-hot labels).

    The dense and the pruned model are both measured by this, on the same val batches.
    """
    correct = total = 0
    for images, labels in dataset:
        predicted = np.asarray(model.predict_on_batch(images)).argmax(axis=-1)
        truth = np.asarray(labels)
        truth = truth.argmax(axis=-1) if truth.ndim > 1 else truth
        correct += int((predicted == truth).sum())
        total += int(truth.shape[0])
    return correct / total if total else float("nan")


def _report_accuracy(before: Optional[float], after: Optional[float], sparsity: float, images: int) -> None:
    """Print the dense -> pruned val accuracy, and a warning when it fell more than `ACCURACY_WARN_DROP`."""
    if before is None or after is None:
        print("prune: no val split: the accuracy before and after pruning is not measured")
        return
    drop = before - after
    print(f"prune: val accuracy {before:.4f} -> {after:.4f} ({-drop * 100:+.1f} points; dense -> pruned, "
          f"{images} val images)")
    if drop > ACCURACY_WARN_DROP:
        print(f"warning: pruning to sparsity {sparsity:g} cost {drop * 100:.1f} points of val accuracy "
              f"(more than {ACCURACY_WARN_DROP * 100:g}); prune again with more --epochs (or --min-steps) "
              "to recover, or a lower --sparsity")


def _output_dir(source: Path, sparsity: float, out: Optional[Union[str, os.PathLike]], overwrite: bool) -> Path:
    path = Path(out).expanduser() if out is not None else source.parent / f"{source.name}-pruned-{round(sparsity * 100)}"
    if path.resolve() == source.resolve():
        raise UserError("--out", f"{path} is the run being pruned", "choose another --out folder")
    return check_output(path, overwrite=overwrite, runs=[source])  # with overwrite: replaces only tfft's files


def prune(run_dir: Union[str, os.PathLike], sparsity: float, epochs: int = 2,
          out: Optional[Union[str, os.PathLike]] = None, *, lr: Optional[float] = None,
          frequency: Optional[int] = None, ramp: float = 0.75, min_steps: int = MIN_STEPS, bn: str = "train",
          overwrite: bool = False) -> PruneResult:
    """Prune a finished run's model to `sparsity` while fine-tuning it, into a new run directory.

    Args:
        run_dir: a finished single-label run (`tfft train`, `tfft cv`'s folds, a distilled student).
        sparsity: S, the fraction of each Conv2D / Dense kernel set to zero (0 < S < 1).
        epochs: fine-tuning epochs (the sparsity rises over the first `ramp` of their steps).
        out: the new run directory (default `RUN_DIR-pruned-<S in %>` beside the run).
        lr: the fine-tuning rate (default: the smallest rate of the run's phases).
        frequency: recompute the masks every this many steps (default: from the ramp's length).
        ramp: the fraction of the steps over which the sparsity rises from 0 to S.
        min_steps: at least this many steps in all (the data repeats): see `plan_schedule`.
        bn: `train` (default): BatchNormalization learns and its statistics follow the pruned
            convolutions (momentum at most `BN_MOMENTUM` while pruning, so that they catch up within
            tens of steps; the saved layers keep their own); `frozen`: as the dense model had them. Zeroing 75% of a kernel shrinks
            its outputs, which frozen statistics then mis-normalize: on pets-mini, Lite0 pruned to
            75% over 6 epochs fell to chance with `frozen` (benchmarks/RESULTS.md).
        overwrite: replace `out` when it holds files.

    Returns:
        A `PruneResult`.

    Raises:
        UserError: a sparsity outside (0, 1), no finished run, a multi-label run, `out` taken, a
            schedule too short to ramp and recover (`plan_schedule`).

    Example:
    >>> prune("runs/pets", sparsity=1.5)  # doctest: +SKIP
    Traceback (most recent call last):
    tfft.errors.UserError: --sparsity: expected a fraction of weights in (0, 1), got 1.5 ...
    """
    sparsity = _checked_sparsity(sparsity, bn, epochs)
    run = _finished_single_label_run(run_dir)
    path = _output_dir(run.run_dir, sparsity, out, overwrite)
    pruning = _set_up(run, path, sparsity, int(epochs), lr=lr, frequency=frequency, ramp=float(ramp),
                      min_steps=min_steps, bn=bn)
    fitted = _fit_while_pruning(pruning)
    return _finish(pruning, fitted)


@dataclasses.dataclass
class _Pruning:
    """What `_set_up` assembled for the fine-tuning: the new run's model, data and schedule."""

    run: Any  # the source run (`tfft.runs.directory.Run`)
    path: Path  # the new run directory
    build: Any  # the source run's config, as assembled here (weights from model.keras, no teacher)
    asm: Any  # the assembled run (`tfft.training.assembly.Assembly`)
    source: Any  # the dense model, as loaded
    freezing: Any  # `apply_freezing`'s report: every layer trainable
    layers: list[Any]  # the pruned Conv2D / Dense layers
    norms: list[Any]  # BatchNormalization layers, their momenta restored after the fit
    momenta: list[float]
    sparsity: float
    epochs: int
    rate: float
    ramp: float
    min_steps: int
    bn: str
    schedule: PruningSchedule
    callback: Any  # the `MagnitudePruning` callback


@dataclasses.dataclass
class _Fitted:
    """What the fine-tuning did: Keras' history, the val accuracy dense and pruned, the sparsity reached."""

    history: dict[str, list[float]]
    before: Optional[float]
    after: Optional[float]
    reached: float
    per_layer: dict[str, float]


def _checked_sparsity(sparsity: float, bn: str, epochs: int) -> float:
    """`sparsity` as a float, after checking the arguments a user typed."""
    if not 0.0 < float(sparsity) < 1.0:
        raise UserError("--sparsity", f"expected a fraction of weights in (0, 1), got {sparsity}",
                        "e.g. --sparsity 0.75 sets 75% of every Conv2D and Dense kernel to zero")
    if bn not in ("train", "frozen"):
        raise UserError("--bn", f"expected train or frozen, got {bn!r}")
    if int(epochs) < 1:
        raise UserError("--epochs", f"expected at least 1, got {epochs}")
    return float(sparsity)


def _finished_single_label_run(run_dir: Union[str, os.PathLike]) -> Any:
    from tfft.runs.directory import open_run, task_of

    run = open_run(run_dir)
    if not layout.is_finished(run.run_dir):
        raise UserError(str(run.run_dir), f"not a finished run (no {layout.METRICS})",
                        "finish it first (tfft train ... --resume)")
    task_of(run).refuse("prune", str(run.run_dir))
    return run


def _set_up(run: Any, path: Path, sparsity: float, epochs: int, *, lr: Optional[float], frequency: Optional[int],
            ramp: float, min_steps: int, bn: str) -> _Pruning:
    """Assemble the source run again with its trained weights, every layer trainable, the
    schedule planned and the pruning callback made; compile it."""
    import keras

    from tfft.data import steps_per_epoch
    from tfft.runs.directory import load_model
    from tfft.schedule.freezing import apply_freezing
    from tfft.training.assembly import assemble, resolve

    build = run.config.model_copy(deep=True)
    build.model.weights = None  # the weights come from model.keras
    build.distill.teacher = None  # a distilled student is fine-tuned on its own task loss
    build.performance.cache_features = "off"  # every layer trains
    resolved = resolve(build)
    asm = assemble(resolved)
    if asm.class_names != run.class_names:
        raise UserError(str(run.run_dir), f"its labels.txt lists {run.class_names}, its data now has "
                        f"{asm.class_names}", "prune where the run's data.source is as it was when training")
    source = load_model(run)  # imports keras_hub when the file names its layers
    asm.model.set_weights(source.get_weights())
    freezing = apply_freezing(asm.model, resolved.spec, "all", bn)
    norms = [layer for layer in _all_layers(asm.model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    if bn == "train":
        for layer in norms:
            layer.momentum = min(layer.momentum, BN_MOMENTUM)
    layers = prunable_layers(asm.model)
    rate = float(lr) if lr is not None else min(phase.lr for phase in resolved.phases)
    per_pass = steps_per_epoch(asm.splits, "train", build.data.batch_size)
    schedule = plan_schedule(epochs, per_pass, min_steps, ramp, frequency)
    callback = _make_callback_class()(layers, sparsity, schedule)
    asm.compile(asm.train_model, keras.optimizers.Adam(rate))
    if schedule.steps > epochs * per_pass:
        print(f"prune: {epochs} epoch(s) of {per_pass} steps is {epochs * per_pass} steps, fewer than "
              f"{min_steps} (--min-steps): the training data repeats")
    print(f"prune: {len(layers)} Conv2D/Dense kernels ({sum(int(np.prod(l.kernel.shape)) for l in layers):,} "
          f"weights) to sparsity {sparsity:g}, lr {rate:g}, BatchNorm {bn}; {schedule.describe()}")
    return _Pruning(run, path, build, asm, source, freezing, layers, norms, momenta, sparsity, epochs, rate,
                    ramp, min_steps, bn, schedule, callback)


def _fit_while_pruning(p: _Pruning) -> _Fitted:
    """Measure the dense model on val, fine-tune while the callback prunes, measure the pruned one."""
    asm, schedule = p.asm, p.schedule
    val = asm.dataset("val", None) if asm.has_val else None
    before = val_accuracy(asm.model, val) if val is not None else None  # the dense model, as loaded
    history = asm.train_model.fit(asm.dataset("train", range(schedule.data_passes)), epochs=schedule.epochs,
                                  steps_per_epoch=schedule.steps_per_epoch, validation_data=val,
                                  callbacks=[p.callback], verbose=2, shuffle=False)
    for layer, momentum in zip(p.norms, p.momenta):
        layer.momentum = momentum
    reached, per_layer = sparsity_of(p.layers)
    after = val_accuracy(asm.model, val) if val is not None else None  # the same images, the same way
    at_ramp = "n/a" if p.callback.ramp_sparsity is None else f"{p.callback.ramp_sparsity:.4f}"
    print(f"prune: sparsity {reached:.4f} over the pruned kernels (target {p.sparsity:g}; "
          f"{at_ramp} at the end of the ramp, then {p.callback.recovery_steps_run} recovery steps)")
    _report_accuracy(before, after, p.sparsity, len(asm.splits.splits["val"]) if val is not None else 0)
    return _Fitted(history.history, before, after, reached, per_layer)


def _finish(p: _Pruning, fitted: _Fitted) -> PruneResult:
    """Write the new run directory (metrics.json last: it marks the run finished)."""
    plain, sizes = _write_run_files(p, fitted)
    metrics = _evaluate_splits(p, plain)
    write_json(p.path / layout.METRICS, metrics)
    print(f"gzip: {sizes['dense']:,} bytes dense, {sizes['pruned']:,} pruned")
    return PruneResult(p.path, p.sparsity, fitted.reached, fitted.per_layer, sizes, metrics)


def _write_run_files(p: _Pruning, fitted: _Fitted) -> tuple[Any, dict[str, int]]:
    """config.yaml, labels.txt, data_report.json, history.csv, phases.json, model.keras and
    pruning.json; returns the saved (plain, uncompiled) model and the gzip sizes."""
    import keras

    from tfft.data import data_report

    path, asm, source_cfg = p.path, p.asm, p.run.config
    path.mkdir(parents=True, exist_ok=True)
    cfg = source_cfg.model_copy(deep=True)
    cfg.name = f"{source_cfg.name}-pruned-{round(p.sparsity * 100)}"
    write_text(path / layout.CONFIG, cfg.to_yaml())
    write_text(path / layout.LABELS, "\n".join(asm.class_names) + "\n")
    write_json(path / layout.DATA_REPORT, data_report(asm.splits))
    rows = []
    for index in range(len(fitted.history.get("loss", []))):
        row = {"epoch": index + 1, "phase": "prune", "lr": p.rate}
        row.update({key: float(values[index]) for key, values in fitted.history.items()})
        rows.append(row)
    columns = list(HISTORY_COLUMNS) + sorted({k for row in rows for k in row} - set(HISTORY_COLUMNS))
    write_csv(path / layout.HISTORY, rows, columns)
    write_json(path / layout.PHASES, [{"name": "prune", "epochs": p.epochs, "unfreeze": "all", "lr": p.rate,
                                       "trainable_params": p.freezing.trainable_params,
                                       "non_trainable_params": p.freezing.non_trainable_params}])
    plain = keras.Model(asm.model.inputs, asm.model.outputs, name=asm.model.name)  # uncompiled, plain layers
    with atomic_path(path / layout.MODEL, suffix=".keras") as tmp:
        plain.save(tmp)
    sizes = {"dense": _plain_gzip_size(p.source), "pruned": gzip_size(path / layout.MODEL)}
    write_json(path / PRUNING, {"target_sparsity": p.sparsity, "sparsity": fitted.reached, "layers": fitted.per_layer,
                                "gzip_bytes": sizes, "source": str(p.run.run_dir), "epochs": p.epochs,
                                "lr": p.rate, "frequency": p.schedule.frequency, "ramp": p.ramp, "bn": p.bn,
                                "val_accuracy_before": fitted.before, "val_accuracy_after": fitted.after,
                                "schedule": _schedule_record(p.schedule, p.callback, p.min_steps)})
    return plain, sizes


def _evaluate_splits(p: _Pruning, plain: Any) -> dict[str, Any]:
    """The pruned model's metrics on each of `evaluate.splits` the data has (files in the run
    directory for val, in eval/SPLIT/ for the others)."""
    from tfft.data import make_dataset
    from tfft.reporting.evaluate import evaluate_model

    build, splits = p.build, p.asm.splits.splits
    metrics = {}
    for split in build.evaluate.splits:
        if split in splits and len(splits[split]) > 0:
            dataset = make_dataset(p.asm.splits, split, build.data, seed=build.seed, training=False)
            out_dir = p.path if split == "val" or "val" not in splits else p.path / layout.EVAL / split
            metrics[split] = evaluate_model(plain, dataset, p.asm.class_names, out_dir,
                                            top_k=build.evaluate.top_k, split=split)
            print(f"{split}: accuracy {metrics[split]['accuracy']:.4f}, loss {metrics[split]['loss']:.4f}")
    return metrics


__all__ = ["PruneResult", "PruningSchedule", "prune", "plan_schedule", "val_accuracy", "polynomial_sparsity",
           "magnitude_mask", "prunable_layers", "sparsity_of"]

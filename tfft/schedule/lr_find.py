"""The learning-rate range test (Leslie Smith, 2015; fastai's `lr_find`).

A throwaway copy of the model a phase would train is built exactly as `tfft train` builds it
(the same data pipeline with augmentation, the same classifier, the phase's freezing, optimizer,
weight decay, layer-wise rates and loss), and trained for one batch per rate while the rate grows
exponentially from `start_lr` to `end_lr`. The loss of every batch is recorded, smoothed with a
bias-corrected exponential moving average (beta 0.98, as fastai), and the test stops early once
the smoothed loss exceeds 4x the best so far (or the loss is NaN/Inf).

The suggested rate is the one where the smoothed loss falls fastest: the most negative slope of
the smoothed loss against log10(rate) (a central difference over +-1/4 decade), ignoring the first 10% (at most 10) and last 5% (at most
5) of the recorded points, where the moving average is still warming up or already diverging,
and everything after the lowest smoothed loss.
When the loss never falls (no negative slope), it is the rate of the lowest smoothed loss divided
by 10 instead. Either way it lies within [start_lr, end_lr]. With layer-wise rates
(`layer_decay` < 1) the rates shown are the head's; each backbone block gets its factor of them.

The optimizer's rate is a `keras.optimizers.schedules.LearningRateSchedule` of the optimizer's
own iteration count, so the compiled train step reads it without a callback. Nothing is saved
but `lr_find.json`, `lr_find.png` and `config.yaml`; the model is discarded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from tfft.config import Config, load_config
from tfft.errors import UserError, did_you_mean
from tfft.schedule.phases import Phase
from tfft.training.rundir import atomic_path, write_json, write_text

SMOOTHING = 0.98
DIVERGENCE_FACTOR = 4.0
MIN_STEPS = 5


@dataclasses.dataclass
class LRFindResult:
    """What `find_lr` returns.

    Attributes:
        lrs: the rate of every recorded step (increasing).
        losses: the training loss of that step's batch.
        smoothed: the bias-corrected moving average of `losses`.
        suggestion: the suggested rate (see the module docstring for the rule).
        plot_path: `lr_find.png`.
        json_path: `lr_find.json`.
        phase: the name of the phase tested.
        rule: `steepest` or `min/10`, whichever gave `suggestion`.
        stopped: `completed`, `diverged` (smoothed loss > 4x best) or `nan`.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    plot_path: Path
    json_path: Path
    phase: str = ""
    rule: str = "steepest"
    stopped: str = "completed"

    def __repr__(self) -> str:
        return (f"LRFindResult(phase={self.phase!r}, steps={len(self.lrs)}, stopped={self.stopped!r}, "
                f"suggestion={self.suggestion:.3g}, plot_path={str(self.plot_path)!r})")


def _schedule_class() -> type:
    import keras

    class ExponentialRange(keras.optimizers.schedules.LearningRateSchedule):
        """`start_lr * (end_lr / start_lr) ** (step / (steps - 1))`: one rate per step."""

        def __init__(self, start_lr: float, end_lr: float, steps: int):
            self.start_lr = float(start_lr)
            self.end_lr = float(end_lr)
            self.steps = int(steps)

        def __call__(self, step):
            ops = keras.ops
            fraction = ops.cast(step, "float32") / float(max(self.steps - 1, 1))
            return self.start_lr * ops.exp(fraction * math.log(self.end_lr / self.start_lr))

        def get_config(self) -> dict[str, Any]:
            return {"start_lr": self.start_lr, "end_lr": self.end_lr, "steps": self.steps}

    return ExponentialRange


def exponential_rates(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """The rates of the range test: `steps` values growing geometrically from start to end.

    Args:
        start_lr: the first rate.
        end_lr: the last rate.
        steps: how many rates.

    Example:
    >>> [float(f"{r:.0e}") for r in exponential_rates(1e-4, 1.0, 5)]
    [0.0001, 0.001, 0.01, 0.1, 1.0]
    """
    return np.geomspace(start_lr, end_lr, steps)


def smooth(losses: Sequence[float], beta: float = SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average (fastai's smoothing of the range test).

    Args:
        losses: the raw losses in order.
        beta: the weight of the past; 0 returns the losses unchanged.

    Example:
    >>> smooth([1.0, 1.0, 1.0]).round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    out, average = [], 0.0
    for i, loss in enumerate(losses, start=1):
        average = beta * average + (1.0 - beta) * float(loss)
        out.append(average / (1.0 - beta ** i))
    return np.asarray(out, dtype="float64")


def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> tuple[float, str]:
    """The suggested rate: the steepest descent of the smoothed loss, or min-loss rate / 10.

    The slope is taken against log10(rate) as a central difference over +-1/4 decade, over the points left after dropping the first 10%
    (at most 10) and the last 5% (at most 5), before the lowest smoothed loss among them. If no
    slope there is negative, or fewer than 3 points remain, the rate of the lowest smoothed loss divided by 10 is returned instead
    (clipped to the tested range).

    Args:
        lrs: the tested rates, increasing.
        smoothed: the smoothed loss at each rate.

    Returns:
        `(rate, rule)` with rule `steepest` or `min/10`.

    Example:
    >>> lrs = exponential_rates(1e-5, 1.0, 51)
    >>> loss = 2.0 - np.tanh(np.log10(lrs) + 2.5)  # falls fastest at 10**-2.5
    >>> rate, rule = suggest_lr(lrs, loss)
    >>> rule, round(float(np.log10(rate)), 1)
    ('steepest', -2.5)
    """
    lrs = np.asarray(lrs, dtype="float64")
    smoothed = np.asarray(smoothed, dtype="float64")
    if len(lrs) == 0:
        raise ValueError("no points to suggest a rate from")
    n = len(lrs)
    skip_start = min(10, n // 10)
    skip_end = min(5, n // 20)
    window = slice(skip_start, n - skip_end)
    x, y = np.log10(lrs[window]), smoothed[window]
    if len(x) >= 3:
        # Central differences over +-1/4 decade (at least one point), so batch noise on a flat
        # stretch does not pass for a descent.
        per_decade = (len(x) - 1) / max(x[-1] - x[0], 1e-12)
        h = max(1, int(round(0.25 * per_decade)))
        ahead = np.minimum(np.arange(len(x)) + h, len(x) - 1)
        behind = np.maximum(np.arange(len(x)) - h, 0)
        slopes = (y[ahead] - y[behind]) / (x[ahead] - x[behind])
        # Only the descent: points before the lowest smoothed loss (after it is divergence noise).
        descent = slopes[: int(np.argmin(y))]
        if descent.size and descent.min() < 0:
            return float(lrs[window][int(np.argmin(descent))]), "steepest"
    rate = float(lrs[int(np.argmin(smoothed))]) / 10.0
    return float(np.clip(rate, lrs[0], lrs[-1])), "min/10"


def select_phase(phases: Sequence[Phase], phase: Union[int, str, None]) -> tuple[int, Phase]:
    """The phase to test: by name, by index into `schedule.phases` (from 0), or the default.

    The default is the first phase that unfreezes part of the backbone (`unfreeze` other than
    `none`), or the first phase when none does.

    Args:
        phases: the resolved phases.
        phase: a phase name, an index (an int or a string of digits, negative from the end),
            or None for the default.

    Returns:
        `(index, phase)`.

    Raises:
        UserError: the name or index matches no phase.

    Example:
    >>> from tfft.config import ScheduleConfig
    >>> from tfft.schedule.phases import resolve_phases
    >>> phases = resolve_phases(ScheduleConfig(preset="two_phase"), 5)
    >>> [select_phase(phases, p)[1].name for p in (None, "head", 0, "-1")]
    ['finetune', 'head', 'head', 'finetune']
    """
    names = [p.name for p in phases]
    if phase is None:
        for index, item in enumerate(phases):
            if item.unfreeze != "none":
                return index, item
        return 0, phases[0]
    text = str(phase).strip()
    if text in names:
        index = names.index(text)
        return index, phases[index]
    try:
        index = int(text)
    except ValueError:
        hint = did_you_mean(text, names) or f"phases: {', '.join(names)} (or an index 0..{len(names) - 1})"
        raise UserError("--phase", f"no phase named {text!r}", hint) from None
    if not -len(phases) <= index < len(phases):
        raise UserError("--phase", f"index {index} is out of range (the schedule has {len(phases)} phase(s))",
                        f"use 0..{len(phases) - 1} or a name: {', '.join(names)}")
    index %= len(phases)
    return index, phases[index]


def _check_range(start_lr: float, end_lr: float, steps: int) -> None:
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise UserError("--start-lr", f"expected a rate > 0, got {start_lr!r}", "e.g. 1e-7")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise UserError("--end-lr", f"expected a rate above --start-lr ({start_lr:g}), got {end_lr!r}", "e.g. 10")
    if int(steps) < MIN_STEPS:
        raise UserError("--steps", f"expected at least {MIN_STEPS} steps, got {steps}", "a few hundred, e.g. 200")


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                 suggestion: float, path: Union[str, Path], title: str = "") -> Path:
    """Draw loss against rate (log x-axis), raw and smoothed, the suggestion marked; PNG, atomic.

    Args:
        lrs: the tested rates.
        losses: the raw loss per rate.
        smoothed: the smoothed loss per rate.
        suggestion: the rate to mark.
        path: where to write the PNG.
        title: the plot title.

    Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "lr.png"
    >>> lrs = exponential_rates(1e-4, 1.0, 20)
    >>> plot_lr_find(lrs, np.ones(20), np.ones(20), 1e-2, out).stat().st_size > 1000
    True
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    lrs = np.asarray(lrs, dtype="float64")
    smoothed = np.asarray(smoothed, dtype="float64")
    figure = Figure(figsize=(7, 4.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(lrs, losses, color="0.75", linewidth=1, label="loss per batch")
    axes.plot(lrs, smoothed, color="C0", linewidth=2, label="smoothed loss")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss")
    # Clip raw spikes of the divergent tail so the interesting part of the curve stays readable.
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        span = max(high - low, 1e-3)
        axes.set_ylim(low - 0.1 * span, high + 0.15 * span)
    marked = float(np.interp(math.log10(suggestion), np.log10(lrs), smoothed)) if len(lrs) > 1 else smoothed[0]
    axes.axvline(suggestion, color="C3", linestyle="--", linewidth=1)
    axes.plot([suggestion], [marked], "o", color="C3", label=f"suggested lr {suggestion:.2e}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left")
    axes.set_title(title or "learning-rate range test")
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    return path


def default_run_dir(cfg: Config) -> Path:
    """`runs/NAME-lr-find` (under `training.runs_dir`)."""
    return Path(cfg.training.runs_dir) / f"{cfg.name}-lr-find"


def find_lr(
    config: Union[Config, dict, str, None] = None,
    phase: Union[int, str, None] = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
    run_dir: Optional[Union[str, Path]] = None,
) -> LRFindResult:
    """Run the learning-rate range test for one phase and write `lr_find.png` / `lr_find.json`.

    The data, augmentation, model, freezing, optimizer (with its weight decay and layer-wise
    rates) and loss are those `tfft train` would use for the phase; only the rate differs: it
    grows exponentially from `start_lr` to `end_lr` over `steps` batches (the training set
    repeats as often as needed). The test stops early once the smoothed loss exceeds 4x its best.

    Args:
        config: a `Config`, a dict, a YAML path or text (see `tfft.load_config`).
        phase: the phase to test: its name, its index in the resolved phases (from 0, negative
            from the end), or None for the first phase that unfreezes part of the backbone
            (the first phase when none does).
        start_lr: the first rate.
        end_lr: the last rate.
        steps: how many batches (one rate each).
        run_dir: where to write (default `runs/NAME-lr-find`); files there are replaced.

    Returns:
        An `LRFindResult` with the rates, raw and smoothed losses, the suggestion and the plot.

    Raises:
        UserError: a bad phase, rate range or step count, or unusable data.

    Example:
    >>> result = find_lr({"data": {"source": "builtin:shapes", "image_size": [32, 32]},
    ...                   "model": {"backbone": "mobilenet_v3_small", "weights": None}},
    ...                  steps=50)  # doctest: +SKIP
    >>> result.suggestion  # doctest: +SKIP
    0.0031
    """
    cfg = load_config(config)
    _check_range(float(start_lr), float(end_lr), int(steps))
    steps = int(steps)
    started = time.time()

    from tfft.models.build import resolve_backbone
    from tfft.schedule.phases import resolve_phases

    spec = resolve_backbone(cfg.model)
    phases = resolve_phases(cfg.schedule, len(spec.blocks))
    index, chosen = select_phase(phases, phase)
    path = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    path.mkdir(parents=True, exist_ok=True)
    write_text(path / "config.yaml", cfg.to_yaml())

    import keras

    previous_policy = keras.mixed_precision.global_policy().name
    try:
        lrs, losses, stopped = _range_test(cfg, spec, chosen, start_lr, end_lr, steps)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    if not lrs:
        raise UserError(f"schedule.phases[{index}]",
                        f"the loss was NaN/Inf from the first step at lr {start_lr:g}",
                        "lower --start-lr, or check the data and model.weights")
    smoothed = smooth(losses)
    suggestion, rule = suggest_lr(lrs, smoothed)
    title = f"{cfg.name}: phase {chosen.name!r} (unfreeze {chosen.unfreeze}, {chosen.optimizer})"
    plot_path = plot_lr_find(lrs, losses, smoothed, suggestion, path / "lr_find.png", title)
    json_path = path / "lr_find.json"
    write_json(json_path, {
        "phase": chosen.name, "phase_index": index, "unfreeze": chosen.unfreeze,
        "optimizer": chosen.optimizer, "configured_lr": chosen.lr,
        "start_lr": float(start_lr), "end_lr": float(end_lr), "steps": steps,
        "recorded_steps": len(lrs), "stopped": stopped,
        "suggestion": suggestion, "rule": rule,
        "min_loss_lr": float(lrs[int(np.argmin(smoothed))]),
        "lrs": [float(v) for v in lrs], "losses": [float(v) for v in losses],
        "smoothed": [float(v) for v in smoothed],
        "seconds": round(time.time() - started, 1),
    })
    print(f"lr-find: {len(lrs)} step(s), {stopped}, in {time.time() - started:.0f} s; "
          f"phase {chosen.name!r} is configured with lr {chosen.lr:g}")
    print(f"suggested lr: {suggestion:.3g} ({rule})")
    print(f"plot: {plot_path}")
    return LRFindResult([float(v) for v in lrs], [float(v) for v in losses], [float(v) for v in smoothed],
                        suggestion, plot_path, json_path, chosen.name, rule, stopped)


def _range_test(cfg: Config, spec: Any, phase: Phase, start_lr: float, end_lr: float,
                steps: int) -> tuple[list[float], list[float], str]:
    """Build the throwaway model, train one batch per rate; returns (lrs, losses, stopped)."""
    import keras
    import tensorflow as tf

    from tfft import data
    from tfft.models.build import build_classifier
    from tfft.schedule.freezing import apply_freezing
    from tfft.schedule.optimizers import layer_decay_multipliers, make_optimizer
    from tfft.training import distribute

    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(distribute.resolve_precision(cfg.performance, tf.distribute.get_strategy()))

    splits = data.load_splits(cfg.data, cfg.seed)
    class_names = list(splits.class_names)
    if len(class_names) < 2:
        raise UserError("data.source", f"found {len(class_names)} class(es) in {cfg.data.source}",
                        "a classifier needs at least 2 class folders")
    num_train = len(splits.splits["train"]) if "train" in splits.splits else 0
    if num_train == 0:
        raise UserError("data.source", "no training images", "check the folder and data.val_split")
    num_classes = len(class_names)

    augmenter = None
    try:
        from tfft import augment
    except ImportError:  # pragma: no cover - augment ships with tfft
        augment = None
    if augment is not None:
        augmenter = augment.build_augmenter(cfg.augment, tuple(cfg.data.image_size), num_classes)
    extra = []
    if augmenter is not None and hasattr(augmenter, "standardization_layers"):
        extra = augmenter.standardization_layers(
            data.make_dataset(splits, "train", cfg.data, seed=cfg.seed, training=False))

    on_decoded, on_batch = augmenter.pipeline_steps() if augmenter is not None else (None, None)

    def prepare(images, labels, seed):
        labels = tf.one_hot(labels, num_classes)
        if on_batch is not None:
            images, labels = on_batch(images, labels, seed)
        return images, labels

    per_epoch = data.steps_per_epoch(splits, "train", cfg.data.batch_size)
    epochs = math.ceil(steps / per_epoch)
    dataset = data.make_dataset(splits, "train", cfg.data, seed=cfg.seed, training=True,
                                epochs=range(0, epochs + 1), augment_fn=prepare, on_decoded=on_decoded)
    if num_train >= cfg.data.batch_size:
        # Only full batches: one traced train step (a partial batch costs a retrace per shape)
        # and no noisier small-batch loss among the points. `epochs + 1` covers the dropped ones.
        batch = int(cfg.data.batch_size)
        dataset = dataset.filter(lambda images, labels: tf.shape(images)[0] == batch)

    model = build_classifier(cfg.model, num_classes, cfg.data.image_size, extra)
    apply_freezing(model, spec, phase.unfreeze, cfg.schedule.bn)
    multipliers = layer_decay_multipliers(model, spec, phase.layer_decay)
    constant = dataclasses.replace(phase, lr=float(start_lr), lr_schedule="constant", warmup_epochs=0.0)
    optimizer = make_optimizer(constant, per_epoch, multipliers)
    optimizer.learning_rate = _schedule_class()(start_lr, end_lr, steps)
    accelerator = distribute.has_accelerator()
    jit = {"on": True, "off": False, "auto": "auto" if accelerator else False}[cfg.performance.jit_compile]
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.training.label_smoothing),
                  jit_compile=jit)
    # Built eagerly, so the first traced step creates no variables and is traced once, not twice.
    model.optimizer.build(model.trainable_variables)
    class_weight = None
    if cfg.training.class_weight == "balanced":
        counts = splits.counts("train")
        total = sum(counts.values())
        class_weight = {i: total / (num_classes * max(counts.get(name, 0), 1))
                        for i, name in enumerate(class_names)}

    lrs: list[float] = []
    losses: list[float] = []
    best, average, stopped = math.inf, 0.0, "completed"
    print(f"lr-find: phase {phase.name!r} (unfreeze {phase.unfreeze}, {phase.optimizer}), "
          f"{steps} steps from {start_lr:g} to {end_lr:g}, {num_train} training images")
    for step, (images, labels) in enumerate(dataset.repeat().take(steps)):
        rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))  # this step's rate
        logs = model.train_on_batch(images, labels, class_weight=class_weight, return_dict=True)
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            stopped = "nan"
            break
        lrs.append(rate)
        losses.append(loss)
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        best = min(best, smoothed)
        if step > 0 and smoothed > DIVERGENCE_FACTOR * best:
            stopped = "diverged"
            break
    return lrs, losses, stopped

"""`tfft lr-find`: the learning-rate range test of one phase, on the run `tfft train` would make.

The run is resolved and assembled by `tfft.training.assembly` exactly as `tfft train` does (the
same data pipeline and augmentation, standardization layers, classifier, task loss with label
smoothing and class weights, jit), the phase's freezing and optimizer (weight decay, layer-wise
rates) applied; only the rate differs: it grows exponentially from `start_lr` to `end_lr`, one
batch per rate, read by the compiled train step from a `LearningRateSchedule` of the optimizer's
own iteration count. The arithmetic (smoothing, the suggestion, the plot) is
`tfft.schedule.lr_range`. Nothing is saved but `lr_find.json`, `lr_find.png` and `config.yaml`;
the model is discarded.

Made to take a small fraction of a training run: the head phase by default, the frozen part of
the model run once per image where the phase allows it (the feature cache that `tfft train` uses,
`tfft.training.feature_cache`, under `performance.cache_features`), a length derived from the
data (`lr_range.default_steps`: at most 100 steps), a plain progress line every tenth of the
steps, and an early stop once the smoothed loss exceeds 4x its best (fastai's rule).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from tfft import layout
from tfft.atomic import write_json, write_text
from tfft.config import Config
from tfft.errors import UserError
from tfft.schedule.lr_range import (DEFAULT_EPOCHS, DEFAULT_MAX_STEPS, DEFAULT_MIN_STEPS, DIVERGENCE_FACTOR,
                                    SMOOTHING, check_range, default_steps, plot_lr_find, select_phase, smooth,
                                    suggest_lr)
from tfft.schedule.phases import Phase
from tfft.training import process_state
from tfft.training.assembly import ResolvedRun, assemble, resolve
from tfft.wording import plural


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
        steps: the steps asked (`--steps`, or the default derived from the data).
        cached: the phase trained on cached backbone features (the feature cache).
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
    steps: int = 0
    cached: bool = False

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


def default_run_dir(cfg: Config) -> Path:
    """`runs/NAME-lr-find` (under `training.runs_dir`)."""
    return Path(cfg.training.runs_dir) / f"{cfg.name}-lr-find"


def find_lr(
    config: Union[Config, dict, str, None] = None,
    phase: Union[int, str, None] = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: Optional[int] = None,
    run_dir: Optional[Union[str, Path]] = None,
) -> LRFindResult:
    """Run the learning-rate range test for one phase and write `lr_find.png` / `lr_find.json`.

    The data, augmentation, model, freezing, optimizer (with its weight decay and layer-wise
    rates) and loss are those `tfft train` would use for the phase; only the rate differs: it
    grows exponentially from `start_lr` to `end_lr` over `steps` batches (the training set
    repeats as often as needed). The test stops early once the smoothed loss exceeds 4x its best.
    A phase whose backbone is frozen trains on its features computed once (as `tfft train` does).

    Args:
        config: a `Config`, a dict, a YAML path or text (see `tfft.load_config`).
        phase: the phase to test: its name, its index in the resolved phases (from 0, negative
            from the end), or None for the first phase.
        start_lr: the first rate.
        end_lr: the last rate.
        steps: how many batches (one rate each); None: `default_steps` of the training data
            (4 passes, within 30..100).
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
    resolved = resolve(config)
    cfg = resolved.config
    check_range(float(start_lr), float(end_lr), steps)
    started = time.time()
    index, chosen = select_phase(resolved.phases, phase)
    path = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    path.mkdir(parents=True, exist_ok=True)
    write_text(path / layout.CONFIG, cfg.to_yaml())
    lrs, losses, stopped, steps, cached = _range_test_in_run_state(resolved, chosen, start_lr, end_lr, steps)
    if not lrs:
        raise UserError(f"schedule.phases[{index}]",
                        f"the loss was NaN/Inf from the first step at lr {start_lr:g}",
                        "lower --start-lr, or check the data and model.weights")
    smoothed = smooth(losses)
    suggestion, rule = suggest_lr(lrs, smoothed)
    title = f"{cfg.name}: phase {chosen.name!r} (unfreeze {chosen.unfreeze}, {chosen.optimizer})"
    plot_path = plot_lr_find(lrs, losses, smoothed, suggestion, path / layout.LR_FIND_PLOT, title)
    result = LRFindResult([float(v) for v in lrs], [float(v) for v in losses], [float(v) for v in smoothed],
                          suggestion, plot_path, path / layout.LR_FIND_JSON, chosen.name, rule, stopped, steps,
                          cached)
    write_json(result.json_path, _json_record(result, index, chosen, float(start_lr), float(end_lr), started))
    print(f"lr-find: {plural(len(lrs), 'step')}, {stopped}, in {time.time() - started:.0f} s; "
          f"phase {chosen.name!r} is configured with lr {chosen.lr:g}")
    print(f"suggested lr: {suggestion:.3g} ({rule})")
    print(f"plot: {plot_path}")
    return result


def _range_test_in_run_state(run: ResolvedRun, phase: Phase, start_lr: float, end_lr: float,
                             steps: Optional[int]) -> tuple[list[float], list[float], str, int, bool]:
    """`_range_test` under the run's seed, determinism and precision, as `tfft train` sets them."""
    import tensorflow as tf

    from tfft.training import distribute

    cfg = run.config
    precision = distribute.resolve_precision(cfg.performance, tf.distribute.get_strategy())
    with process_state.run_state(cfg.seed, cfg.training.deterministic, precision):
        return _range_test(run, phase, start_lr, end_lr, steps)


def _json_record(result: LRFindResult, index: int, phase: Phase, start_lr: float, end_lr: float,
                 started: float) -> dict[str, Any]:
    """lr_find.json: the phase tested, the range asked, every step's rate and loss, the suggestion."""
    return {
        "phase": phase.name, "phase_index": index, "unfreeze": phase.unfreeze,
        "optimizer": phase.optimizer, "configured_lr": phase.lr,
        "start_lr": start_lr, "end_lr": end_lr, "steps": result.steps,
        "recorded_steps": len(result.lrs), "stopped": result.stopped, "feature_cache": result.cached,
        "suggestion": result.suggestion, "rule": result.rule,
        "min_loss_lr": float(result.lrs[int(np.argmin(result.smoothed))]),
        "lrs": result.lrs, "losses": result.losses, "smoothed": result.smoothed,
        "seconds": round(time.time() - started, 1),
    }


def _cached_head(asm: Any) -> Optional[Any]:
    """The phase's `FeatureCache`, filled, when `tfft train` would cache it (a frozen backbone, or a
    frozen bottom under `top:N` with BatchNorm frozen); else None. The freezing is already applied.

    The same building blocks as training (`feature_cache.decide`, `split_model`, `FeatureCache`):
    with flips as the only augmentation every flip of every image is computed once; with
    `performance.cache_augmented_copies: K`, K augmented passes; without augmentation, one pass.
    """
    from tfft.training import feature_cache

    augmenter = asm.augmenter
    decision = feature_cache.decide_for_model(asm.model, asm.cfg.performance, augmenter, asm.num_train)
    print(f"lr-find: feature cache {decision.reason}")
    if not decision.use:
        return None
    feature_cache.log.info("feature cache: caching %s", feature_cache.describe_point(asm.model))
    with asm.strategy.scope():
        feature_model, head = feature_cache.split_model(asm.model)
    cache = feature_cache.FeatureCache(feature_model, head, asm.cfg.seed, asm.cfg.data.batch_size)
    if decision.flips:
        cache.fill_flips(asm.dataset("train", None), asm.num_train, augmenter.flip_outcomes)
    elif augmenter is not None:
        cache.fill_train([asm.dataset("train", range(j, j + 1), in_pipeline=True) for j in range(decision.copies)],
                         asm.num_train, first_epoch=0, shuffled=True)
    else:
        cache.fill_train([asm.dataset("train", None)], asm.num_train, first_epoch=0, shuffled=False)
    return cache


class _Progress:
    """A plain line every tenth of the steps (and at the last): step, rate, loss, speed, time left."""

    def __init__(self, steps: int):
        self.steps = int(steps)
        self.every = max(1, self.steps // 10)
        self.started = time.monotonic()

    def step(self, step: int, rate: float, loss: float, smoothed: float) -> None:
        done = step + 1
        if done % self.every and done != self.steps:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        print(f"lr-find: step {done}/{self.steps}, lr {rate:.2e}, loss {loss:.4f} (smoothed {smoothed:.4f}), "
              f"{done / elapsed:.1f} steps/s, ~{(self.steps - done) * elapsed / done:.0f} s left", flush=True)


def _range_test(run: ResolvedRun, phase: Phase, start_lr: float, end_lr: float,
                steps: Optional[int]) -> tuple[list[float], list[float], str, int, bool]:
    """Assemble the run as `tfft train` does, train one batch per rate.

    Returns:
        `(lrs, losses, stopped, steps, cached)`: `steps` as asked or derived from the data,
        `cached` when the phase trained on cached features.
    """
    import keras
    import tensorflow as tf

    from tfft import data
    from tfft.schedule.freezing import apply_freezing
    from tfft.schedule.optimizers import layer_decay_multipliers, make_optimizer

    cfg = run.config
    asm = assemble(run)
    per_epoch = data.steps_per_epoch(asm.splits, "train", cfg.data.batch_size)
    source = ("--steps" if steps is not None else f"the default: {DEFAULT_EPOCHS} passes of {per_epoch}, "
              f"within {DEFAULT_MIN_STEPS}..{DEFAULT_MAX_STEPS}")
    steps = int(steps) if steps is not None else default_steps(per_epoch)
    epochs = range(0, math.ceil(steps / per_epoch) + 1)
    apply_freezing(asm.model, run.spec, phase.unfreeze, cfg.schedule.bn)
    cache = _cached_head(asm)
    model = cache.head if cache is not None else asm.train_model
    dataset = cache.train_dataset(epochs) if cache is not None else asm.dataset("train", epochs)
    if asm.num_train >= cfg.data.batch_size:
        # Only full batches: one traced train step (a partial batch costs a retrace per shape)
        # and no noisier small-batch loss among the points. The extra epoch covers the dropped ones.
        batch = int(cfg.data.batch_size)
        dataset = dataset.filter(lambda images, labels: tf.shape(tf.nest.flatten(images)[0])[0] == batch)

    multipliers = layer_decay_multipliers(asm.model, run.spec, phase.layer_decay)
    constant = dataclasses.replace(phase, lr=float(start_lr), lr_schedule="constant", warmup_epochs=0.0)
    optimizer = make_optimizer(constant, per_epoch, multipliers)
    optimizer.learning_rate = _schedule_class()(start_lr, end_lr, steps)
    asm.compile(model, optimizer, metrics=False)
    class_weight = asm.class_weight()

    lrs: list[float] = []
    losses: list[float] = []
    best, average, stopped = math.inf, 0.0, "completed"
    print(f"lr-find: phase {phase.name!r} (unfreeze {phase.unfreeze}, {phase.optimizer}), "
          f"{steps} steps ({source}) from {start_lr:g} to {end_lr:g}, {asm.num_train} training images"
          + (", on cached features" if cache is not None else ""))
    progress = _Progress(steps)
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
        progress.step(step, rate, loss, smoothed)
        if step > 0 and smoothed > DIVERGENCE_FACTOR * best:
            stopped = "diverged"
            print(f"lr-find: stopped at step {step + 1}/{steps}: the smoothed loss {smoothed:.4f} is over "
                  f"{DIVERGENCE_FACTOR:g}x its best ({best:.4f})")
            break
    if stopped == "nan":
        print(f"lr-find: stopped at step {len(lrs) + 1}/{steps}: the loss is NaN/Inf")
    return lrs, losses, stopped, steps, cache is not None

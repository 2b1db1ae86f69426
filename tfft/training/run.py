"""`tfft.train`: one run from a config to a complete run directory.

The loop: resolve the run directory, record the config and the environment, read the data, build
the model in the strategy's scope, then for each phase of the schedule apply its freezing,
compile a fresh optimizer and `fit` over the phase's epochs with checkpoints after every epoch.
At the end: the best (or last) weights into `model.keras`, evaluation, plots and a report.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional, Union

from tfft.config import Config, load_config
from tfft.errors import TrainingInterrupted, UserError
from tfft.training import rundir
from tfft.training.rundir import write_csv, write_json, write_text

# Keys a resumed run may change; everything else must match the interrupted run's config.
_RESUMABLE_CHANGES = ("training.verbose", "training.checkpoint_steps", "evaluate.", "performance.jit_compile",
                      "performance.steps_per_execution")
HISTORY_COLUMNS = ("epoch", "phase", "loss", "val_loss", "lr")


@dataclasses.dataclass
class TrainResult:
    """What `tfft.train` returns: where the run is and how good the model is."""

    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    phases: list[dict[str, Any]]

    def __repr__(self) -> str:
        val = self.metrics.get("val", {})
        return f"TrainResult(run_dir={str(self.run_dir)!r}, val_accuracy={val.get('accuracy')})"


def _verbosity(setting: str) -> int:
    if setting == "quiet":
        return 0
    if setting == "line":
        return 2
    if setting == "bar":
        return 1
    return 1 if (sys.stdout.isatty() or "ipykernel" in sys.modules) else 2


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_resumable(saved: Config, new: Config) -> None:
    old, cur = _flatten(saved.to_dict()), _flatten(new.to_dict())
    changed = [k for k in sorted(set(old) | set(cur)) if old.get(k) != cur.get(k)
               and not k.startswith(_RESUMABLE_CHANGES)]
    if changed:
        raise UserError(", ".join(changed[:5]), "cannot change when resuming a run",
                        "resume with the run's own config.yaml, or start a new run")


def train(
    config: Union[Config, dict, str, None] = None,
    run_dir: Optional[str] = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train a classifier as the config says and write the run directory.

    Args:
        config: a `Config`, a dict, a YAML path or text (see `tfft.load_config`).
        run_dir: where to write (default `runs/NAME`, numbered `-2`, `-3`... when taken).
        resume: continue the unfinished run in `run_dir` (or the newest unfinished
            `runs/NAME*`) from its last checkpoint.
        overwrite: replace a finished run in `run_dir`.

    Returns:
        A `TrainResult` with `run_dir`, `metrics` (per evaluated split), `history`, `phases`.

    Example:
    >>> result = train({"data": {"source": "builtin:shapes", "image_size": [32, 32]},
    ...                 "model": {"backbone": "mobilenet_v3_small", "weights": None},
    ...                 "schedule": {"preset": "full", "epochs": 1}})  # doctest: +SKIP
    >>> sorted(result.metrics)  # doctest: +SKIP
    ['val']
    """
    from tfft.training.distribute import is_chief_task

    cfg = load_config(config)
    if is_chief_task() or resume:
        path = rundir.choose_run_dir(cfg.training.runs_dir, cfg.name, run_dir, resume, overwrite)
    else:  # a multi-worker non-chief: it writes to a temporary folder (see _Run._setup), reads nothing
        path = Path(run_dir) if run_dir else Path(cfg.training.runs_dir) / cfg.name
    if resume:
        _check_resumable(load_config(path / "config.yaml"), cfg)
    command = f"tfft train {path / 'config.yaml'} --run-dir {path} --resume"
    try:
        return _Run(cfg, path, resume).execute()
    except KeyboardInterrupt:
        raise TrainingInterrupted(str(path), command) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(str(path), "the disk is full; the last complete checkpoint is kept",
                            f"free space, then continue with: {command}") from None
        raise
    except Exception as exc:  # out of memory surfaces as TensorFlow's ResourceExhaustedError
        if _caused_by_interrupt(exc):  # Ctrl-C inside an import or a callback, re-raised as another error
            raise TrainingInterrupted(str(path), command) from None
        if type(exc).__name__ == "ResourceExhaustedError":
            raise UserError("data.batch_size", f"out of memory at batch size {cfg.data.batch_size}",
                            "lower data.batch_size or data.image_size, or set performance.precision: "
                            f"mixed_float16 on a GPU; then continue with: {command}") from None
        raise


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class _Run:
    """The state of one training run (an object only to keep `train` readable)."""

    def __init__(self, cfg: Config, path: Path, resume: bool):
        self.cfg = cfg
        self.path = path
        self.resume = resume
        self.history: list[dict[str, Any]] = []
        self.phase_rows: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}
        self.last_cache: Optional[Any] = None  # the last phase's FeatureCache, if it had one
        self.shared_cut: Optional[str] = None  # feature_cache.lowest_cut of the cached phases
        self.shared: Optional[Any] = None  # their feature_cache.SharedPass

    # -- setup -------------------------------------------------------------------------------
    def _setup(self) -> None:
        from tfft.training import distribute

        cfg = self.cfg
        self.strategy = distribute.make_strategy(cfg.distribute)  # before TF touches devices
        import keras
        import tensorflow as tf

        self.chief = distribute.is_chief(self.strategy)
        self.source = self.path  # where a resumed run's checkpoint is read (shared by all workers)
        if not self.chief:
            import tempfile

            self.path = Path(tempfile.mkdtemp(prefix="tfft-worker-"))
        self.path.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(cfg.seed)
        if cfg.training.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.precision = distribute.resolve_precision(cfg.performance, self.strategy)
        keras.mixed_precision.set_global_policy(self.precision)
        self.accelerator = distribute.has_accelerator()
        if not self.resume:
            write_text(self.path / "config.yaml", cfg.to_yaml())
        write_json(self.path / "environment.json", distribute.environment(self.strategy, self.precision))

    def _data(self) -> None:
        from tfft import data

        cfg = self.cfg
        self.splits = data.load_splits(cfg.data, cfg.seed)
        self.class_names = list(self.splits.class_names)
        if len(self.class_names) < 2:
            raise UserError("data.source", f"found {len(self.class_names)} class(es) in {cfg.data.source}",
                            "a classifier needs at least 2 class folders")
        write_text(self.path / "labels.txt", "\n".join(self.class_names) + "\n")
        write_json(self.path / "data_report.json", data.data_report(self.splits))
        self.num_train = len(self.splits.splits["train"])
        if self.num_train == 0:
            raise UserError("data.source", "no training images", "check the folder and data.val_split")
        self.has_val = "val" in self.splits.splits and len(self.splits.splits["val"]) > 0
        counts = {name: len(split) for name, split in self.splits.splits.items()}
        print("data: " + ", ".join(f"{n} {k}" for k, n in counts.items()) +
              f" images, {len(self.class_names)} classes" +
              (f", {len(self.splits.skipped)} unreadable file(s) skipped (see data_report.json)"
               if self.splits.skipped else ""))

    def _augmenter(self) -> None:
        cfg = self.cfg
        self.augmenter = None
        self.placement = "pipeline"
        try:
            from tfft import augment
        except ImportError:  # pragma: no cover - augment ships with tfft
            return
        self.augmenter = augment.build_augmenter(cfg.augment, tuple(cfg.data.image_size), len(self.class_names))
        if self.augmenter is not None:
            placement = cfg.augment.placement
            self.placement = ("model" if self.accelerator else "pipeline") if placement == "auto" else placement
            print(f"augment ({self.placement}): {self.augmenter.describe()}")

    def _model(self) -> None:
        import keras

        from tfft.models.build import build_classifier, resolve_backbone

        cfg = self.cfg
        self.spec = resolve_backbone(cfg.model)
        extra = self._standardization_layers()
        with self.strategy.scope():
            self.model = build_classifier(cfg.model, len(self.class_names), cfg.data.image_size, extra,
                                          spec=self.spec)
            if self.augmenter is not None and self.placement == "model":
                from tfft.augment import AugmentLayer

                image = keras.Input(self.model.input_shape[1:], name="image")
                seed = keras.Input((2,), dtype="int32", name="seed")
                augmented = AugmentLayer(self.augmenter)([image, seed])
                self.train_model = keras.Model([image, seed], self.model(augmented), name="train_wrapper")
            else:
                self.train_model = self.model
        self.fit_model = self.train_model  # what the current phase fits (see _feature_cache)

    def _standardization_layers(self) -> list:
        """IDG's featurewise/samplewise standardizations, as layers inside the saved model."""
        from tfft.augment import standardize

        cfg = self.cfg.augment
        if not (standardize.wants_featurewise(cfg) or standardize.wants_samplewise(cfg)):
            return []
        stats = None
        if standardize.wants_featurewise(cfg):
            from tfft import data

            images = data.make_dataset(self.splits, "train", self.cfg.data, seed=self.cfg.seed, training=False)
            stats = standardize.fit_statistics(cfg, (batch for batch, _ in images))
            print(f"featurewise statistics from {stats['count']} training images: "
                  f"mean {[round(float(m), 2) for m in stats['mean']]}, std {[round(float(v), 2) for v in stats['std']]}")
        if self.cfg.model.weights == "imagenet":
            print("warning: augment standardization moves pixels away from the 0-255 range the "
                  f"{self.cfg.model.backbone} imagenet preprocessing expects")
        return standardize.standardization_layers(cfg, stats)

    # -- datasets ----------------------------------------------------------------------------
    def _dataset(self, split: str, epochs: Optional[range], in_pipeline: bool = False, skip: int = 0) -> Any:
        """Batches of (images, one-hot labels); training ones augmented (`in_pipeline`: never in the model)."""
        import tensorflow as tf

        from tfft import data

        num_classes = len(self.class_names)
        training = epochs is not None
        augmenter = self.augmenter if training else None
        model_placement = augmenter is not None and self.placement == "model" and not in_pipeline
        # In the pipeline the warp runs on each batch as decoded, fused with the resize; the rest after.
        on_decoded, on_batch = (augmenter.pipeline_steps() if augmenter is not None and not model_placement
                                else (None, None))

        def prepare(images, labels, seed):
            labels = tf.one_hot(labels, num_classes)
            if on_batch is not None:
                images, labels = on_batch(images, labels, seed)
            if model_placement:
                return (images, tf.cast(seed, tf.int32)), labels
            return images, labels

        dataset = data.make_dataset(self.splits, split, self.cfg.data, seed=self.cfg.seed, training=training,
                                    epochs=epochs, augment_fn=prepare if training else None, skip_batches=skip,
                                    on_decoded=on_decoded)
        if not training:
            dataset = dataset.map(lambda images, labels: (images, tf.one_hot(labels, num_classes)))
            if model_placement:
                raise AssertionError("validation never runs through the augmenting wrapper")
        return dataset

    # -- phases ------------------------------------------------------------------------------
    def _compile(self, phase: Any, steps_per_epoch: int, model: Any) -> None:
        """Compile `model` (the classifier, its augmenting wrapper or the cached-feature head) for a phase."""
        import keras

        from tfft.schedule.optimizers import layer_decay_multipliers, make_optimizer

        multipliers = layer_decay_multipliers(self.model, self.spec, phase.layer_decay)
        perf = self.cfg.performance
        jit = {"on": True, "off": False, "auto": "auto" if self.accelerator else False}[perf.jit_compile]
        previous = getattr(self.fit_model, "optimizer", None)
        carry = self.cfg.schedule.carry_optimizer and previous is not None and previous.built
        offset = int(keras.ops.convert_to_numpy(previous.iterations)) if carry else 0
        with self.strategy.scope():
            optimizer = make_optimizer(phase, steps_per_epoch, multipliers, offset=offset)
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=self.cfg.training.label_smoothing)
            top_k = min(self.cfg.evaluate.top_k, len(self.class_names) - 1)
            metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
            if top_k >= 2:
                metrics.append(keras.metrics.TopKCategoricalAccuracy(k=top_k, name=f"top{top_k}"))
            model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit,
                          steps_per_execution=perf.steps_per_execution)
            # Built here, Keras need not build it inside the first step (which traces it twice).
            optimizer.build(model.trainable_variables)
            if carry:
                from tfft.schedule.optimizers import carry_state

                count = carry_state(previous, optimizer)
                print(f"optimizer state carried over for {count} variables (from iteration {offset})")
        self.fit_model = model

    def _feature_cache(self, phase: Any, start: int, first: int, end: int) -> Optional[Any]:
        """For a frozen-backbone phase, compute the backbone's features once (`performance.cache_features`).

        Returns the filled `FeatureCache` with its `head` model to fit, or None to fit the full model.
        """
        from tfft.training import feature_cache

        perf = self.cfg.performance
        decision = feature_cache.decide(perf.cache_features, perf.cache_augmented_copies,
                                        backbone_frozen=feature_cache.backbone_frozen(self.model),
                                        augmenting=self.augmenter is not None,
                                        feature_size=feature_cache.feature_size(self.model),
                                        num_examples=self.num_train,
                                        flip_outcomes=len(self.augmenter.flip_outcomes) if self.augmenter else 0)
        print(f"feature cache: {decision.reason}")
        if not decision.use:
            return None
        print(f"feature cache: caching {feature_cache.describe_point(self.model)}")
        with self.strategy.scope():
            feature_model, head = feature_cache.split_model(self.model)
        cache = feature_cache.FeatureCache(feature_model, head, self.cfg.seed, self.cfg.data.batch_size)
        if self.shared_cut is not None and (decision.flips or self.augmenter is None):
            # One pass to the lowest cut of the run's cached phases serves them all.
            outcomes = self.augmenter.flip_outcomes if decision.flips else [(False, False)]
            val = self._dataset("val", None) if self.has_val else None
            with self.strategy.scope():
                self.shared = feature_cache.shared_pass(
                    self.model, self.shared_cut, self.shared, self._dataset("train", None), self.num_train,
                    outcomes, val, len(self.splits.splits["val"]) if self.has_val else 0)
                cache.fill_derived(self.shared, feature_cache.bridge(self.model, self.shared_cut))
            return cache
        if decision.flips:  # every flip of every image, one pass; each epoch picks one per image
            cache.fill_flips(self._dataset("train", None), self.num_train, self.augmenter.flip_outcomes)
        elif self.augmenter is None:
            # One pass in file order; each epoch is gathered in its (seed, epoch) order.
            cache.fill_train([self._dataset("train", None)], self.num_train, first_epoch=start, shuffled=False)
        else:
            passes = [self._dataset("train", range(start + j, start + j + 1), in_pipeline=True)
                      for j in range(decision.copies)]
            cache.fill_train(passes, self.num_train, first_epoch=start, shuffled=True)
        if self.has_val:
            cache.fill_val(self._dataset("val", None), len(self.splits.splits["val"]))
        return cache

    def _class_weight(self) -> Optional[dict[int, float]]:
        if self.cfg.training.class_weight != "balanced":
            return None
        counts = self.splits.counts("train")
        total, k = sum(counts.values()), len(self.class_names)
        return {i: total / (k * max(counts.get(name, 0), 1)) for i, name in enumerate(self.class_names)}

    def _write_history(self, rows: list[dict[str, Any]]) -> None:
        columns = list(HISTORY_COLUMNS)
        for row in rows:
            columns += [k for k in row if k not in columns]
        write_csv(self.path / "history.csv", rows, columns)

    def _run_phases(self) -> None:
        import keras

        from tfft.schedule.freezing import apply_freezing
        from tfft.schedule.phases import resolve_phases
        from tfft.training import checkpoint
        from tfft.training.callbacks import EpochRecorder

        cfg = self.cfg
        phases = resolve_phases(cfg.schedule, len(self.spec.blocks))
        last = self.source / checkpoint.LAST
        if self.resume:
            self.state = checkpoint.load_state(self.source)
            self.history = list(self.state.get("history", []))
            self.phase_rows = list(self.state.get("phase_rows", []))
            checkpoint.restore(last, self.model.variables)
            step = self.state.get("step", 0)
            print(f"resuming {self.source} at epoch {self.state['epoch'] + 1}" + (f", step {step + 1}" if step else "")
                  + f", phase {self.state['phase'] + 1}")
        else:
            self.state = {"epoch": 0, "step": 0, "phase": 0, "phase_start": 0, "best": math.inf}
        from tfft.data import steps_per_epoch

        steps = cfg.training.steps_per_epoch or steps_per_epoch(self.splits, "train", cfg.data.batch_size)
        val = self._dataset("val", None) if self.has_val else None
        monitor = "val_loss" if self.has_val else "loss"
        verbose = _verbosity(cfg.training.verbose)
        if cfg.performance.cache_features != "off":
            from tfft.training import feature_cache

            points = []
            for phase in phases[self.state["phase"]:]:  # each phase's freezing is set again below
                apply_freezing(self.model, self.spec, phase.unfreeze, cfg.schedule.bn)
                points.append(feature_cache.cache_point(self.model))
            self.shared_cut = feature_cache.lowest_cut(self.model, points)
        for index, phase in enumerate(phases):
            if index < self.state["phase"]:
                continue
            start = self.state["phase_start"]
            end = start + phase.epochs
            first = self.state["epoch"]
            report = apply_freezing(self.model, self.spec, phase.unfreeze, cfg.schedule.bn)
            row = {"name": phase.name, "epochs": phase.epochs, "unfreeze": phase.unfreeze, "lr": phase.lr,
                   "optimizer": phase.optimizer, "lr_schedule": phase.lr_schedule,
                   "layer_decay": phase.layer_decay, "first_epoch": start + 1,
                   "trainable_params": report.trainable_params,
                   "non_trainable_params": report.non_trainable_params}
            self.phase_rows = [r for r in self.phase_rows if r["name"] != phase.name or r["first_epoch"] != start + 1]
            self.phase_rows.append(row)
            self.state["phase_rows"] = self.phase_rows
            if self.chief:
                write_json(self.path / "phases.json", self.phase_rows)
            print(f"phase {index + 1}/{len(phases)} {phase.name}: epochs {start + 1}-{end}, "
                  f"unfreeze {phase.unfreeze}, lr {phase.lr:g} ({phase.optimizer}, {phase.lr_schedule}), "
                  f"{report.trainable_params:,} trainable / {report.non_trainable_params:,} frozen params")
            skip = int(self.state.get("step", 0)) if first < end else 0  # steps of epoch `first` already done
            cache = self._feature_cache(phase, start, first, end) if first < end else None
            self.last_cache = cache  # the end-of-run evaluation reuses its val features when still valid
            self._compile(phase, steps, cache.head if cache is not None else self.train_model)
            if (first > start or skip) and first < end:
                checkpoint.restore(last, self.fit_model.optimizer.variables, "optimizer", match_paths=False)
            if first < end and not self.state.get("early_stopped"):
                recorder = EpochRecorder(self.path if self.chief else None, phase.name, self.history,
                                         self.state, self.model, monitor, phase.early_stopping,
                                         self._write_history, cfg.training.checkpoint_steps,
                                         resume_step=skip, resume_from=last if skip else None)
                callbacks: list[Any] = [recorder]
                if self.chief:
                    callbacks.append(keras.callbacks.TensorBoard(str(self.path / "tensorboard"),
                                                                 write_graph=False, profile_batch=0))
                if phase.lr_schedule == "plateau":
                    callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=phase.step_factor,
                                                                       patience=phase.step_every, verbose=1))
                val_data = (cache.val_dataset() if val else None) if cache is not None else val
                if skip:  # the rest of the interrupted epoch, from its next batch, as its own fit
                    self._fit(cache, start, first, first + 1, skip, steps, val_data, callbacks, verbose)
                    first += 1
                if first < end and not (recorder.nan or self.state.get("early_stopped")):
                    self._fit(cache, start, first, end, 0, steps, val_data, callbacks, verbose)
                if recorder.nan:
                    if (self.path / checkpoint.LAST).exists():
                        checkpoint.restore(self.path / checkpoint.LAST, self.model.variables)
                    raise UserError(f"schedule.phases[{index}].lr",
                                    f"the loss became NaN/Inf in phase {phase.name!r} at epoch {self.state['epoch'] + 1}",
                                    f"lower the rate (now {phase.lr:g}); the last good checkpoint is kept in "
                                    f"{self.path / 'checkpoints'}")
            self.state.update(phase=index + 1, phase_start=self.state["epoch"], step=0, phase_best=math.inf,
                              phase_wait=0, early_stopped=False)
            if self.chief:
                checkpoint.save(self.path, self.state, self.model.variables)

    def _fit(self, cache: Optional[Any], start: int, first: int, end: int, skip: int, steps: int, val_data: Any,
             callbacks: list[Any], verbose: int) -> None:
        """Fit epochs `first..end-1` of the phase that began at epoch `start`, the first one from its step
        `skip`, with Keras' fit or the custom loop.

        The phase reads one stream of data epochs `start, start+1, ...` (each a pass in its own
        (seed, epoch) order); fit epoch `k` takes its `steps` batches from position
        `(k - start) * steps`, so `training.steps_per_epoch` may be shorter or longer than a pass
        and a resumed run still reads exactly the batches an uninterrupted one reads.
        """
        from tfft.training import custom_loop, distribute

        from tfft.data import steps_per_epoch

        per_pass = steps_per_epoch(self.splits, "train", self.cfg.data.batch_size)
        position = (first - start) * steps + skip
        needed = range(start + position // per_pass, start + math.ceil((end - start) * steps / per_pass))
        if cache is not None:
            train = cache.train_dataset(needed, skip_batches=position % per_pass)
        else:
            train = self._dataset("train", needed, skip=position % per_pass)
        steps -= skip
        if skip:  # the metric variables must exist before the first step, to take the epoch's totals
            custom_loop.build_compiled_state(self.fit_model, self.strategy, train)
        # The classifier too: with the cache it is built in scope but never fit.
        with distribute.training_under(self.strategy, self.fit_model, self.model):
            try:
                if custom_loop.wanted(self.strategy):  # MultiWorkerMirroredStrategy: Keras' fit cannot
                    custom_loop.fit(self.fit_model, self.strategy, train, epochs=end, initial_epoch=first,
                                    steps_per_epoch=steps, validation_data=val_data, callbacks=callbacks,
                                    verbose=verbose, class_weight=self._class_weight())
                else:
                    self.fit_model.fit(train, epochs=end, initial_epoch=first, steps_per_epoch=steps,
                                       validation_data=val_data, callbacks=callbacks, verbose=verbose,
                                       shuffle=False, class_weight=self._class_weight())
            except BaseException:
                if verbose:
                    print(flush=True)  # end a progress bar cut mid-line, so the error starts its own
                raise

    # -- the end -----------------------------------------------------------------------------
    def _finish(self) -> dict[str, Any]:
        from tfft.training import checkpoint

        cfg = self.cfg
        best = self.path / checkpoint.BEST
        if cfg.training.save == "best" and best.exists():
            checkpoint.restore(best, self.model.variables)
            print(f"model.keras: best weights (epoch {self.state.get('best_epoch')}, "
                  f"{'val_loss' if self.has_val else 'loss'} {self.state.get('best'):.4f})")
        if not self.chief:
            return {}
        with rundir.atomic_path(self.path / "model.keras", suffix=".keras") as tmp:
            self.model.save(tmp)
        metrics = self._evaluate()
        self._plots()
        write_json(self.path / "metrics.json", metrics)
        try:
            from tfft.evaluation.report import write_report

            write_report(self.path)
        except ImportError:  # pragma: no cover
            pass
        return metrics

    def _evaluate(self) -> dict[str, Any]:
        from tfft.evaluation import evaluate_model

        metrics = {}
        for split in self.cfg.evaluate.splits:
            if split in self.splits.splits and len(self.splits.splits[split]) > 0:
                from tfft import data

                cache = self.last_cache
                if split == "val" and cache is not None and cache.val_still_valid():
                    # The head on the cached val features gives the model's own probabilities
                    # (the frozen part is unchanged), without a second pass through the backbone.
                    model, dataset = cache.head, cache.val
                else:
                    model = self.model
                    dataset = data.make_dataset(self.splits, split, self.cfg.data, seed=self.cfg.seed,
                                                training=False)
                out_dir = self.path if split == "val" or "val" not in self.splits.splits else self.path / "eval" / split
                metrics[split] = evaluate_model(model, dataset, self.class_names, out_dir,
                                                top_k=self.cfg.evaluate.top_k)
                print(f"{split}: accuracy {metrics[split]['accuracy']:.4f}, loss {metrics[split]['loss']:.4f}, "
                      f"macro F1 {metrics[split]['macro_f1']:.4f}")
        return metrics

    def _plots(self) -> None:
        from tfft.evaluation.plots import plot_curves

        plot_curves(self.history, self.path / "curves.png", phases=self.phase_rows)

    def execute(self) -> TrainResult:
        started = time.time()
        self._setup()
        self._data()
        self._augmenter()
        self._model()
        self._run_phases()
        metrics = self._finish()
        print(f"trained in {time.time() - started:.0f} s")
        return TrainResult(self.path, metrics, self.history, self.phase_rows)

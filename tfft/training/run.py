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
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Optional, Union

from tfft import layout
from tfft.atomic import atomic_path, write_csv, write_json, write_json_entry, write_text
from tfft.config import Config, load_config
from tfft.data.sources import lists_digest, split_lists
from tfft.errors import TrainingDiverged, TrainingInterrupted, UserError
from tfft.reporting import multilabel_eval
from tfft.reporting.evaluate import evaluate_model
from tfft.reporting.plots import plot_curves
from tfft.reporting.report import write_report
from tfft.reporting.html import write_html_report
from tfft.training import process_state, rundir
from tfft.training.assembly import ResolvedRun, resolve
from tfft.training.preflight import check_config
from tfft.wording import plural

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
    return 1 if process_state.interactive() else 2


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
    callbacks: Optional[Sequence[Any]] = None,
    *,
    feature_store: Optional[Any] = None,
) -> TrainResult:
    """Train a classifier as the config says and write the run directory.

    Args:
        config: a `Config`, a dict, a YAML path or text (see `tfft.load_config`).
        run_dir: where to write (default `runs/NAME`, numbered `-2`, `-3`... when taken).
        resume: continue the unfinished run in `run_dir` (or the newest unfinished
            `runs/NAME*`) from its last checkpoint.
        overwrite: replace a finished run in `run_dir`.
        callbacks: `keras.callbacks.Callback`s added to every phase's `fit` (after tfft's own,
            so at `on_epoch_end` the epoch is already in history.csv and the checkpoint). An
            exception a callback raises (a tuner's pruner, say) ends the run and propagates
            unchanged; the run directory keeps the last checkpoint, resumable with `resume`.
        feature_store: a `tfft.training.feature_cache.FeatureStore` shared by several runs in
            one process (`tfft tune`'s trials): a frozen-backbone phase whose features are
            already in it reuses them instead of running the backbone again.

    Returns:
        A `TrainResult` with `run_dir`, `metrics` (per evaluated split), `history`, `phases`.

    Example:
    >>> result = train({"data": {"source": "builtin:shapes", "image_size": [32, 32]},
    ...                 "model": {"backbone": "mobilenet_v3_small", "weights": None},
    ...                 "schedule": {"preset": "full", "epochs": 1}})  # doctest: +SKIP
    >>> sorted(result.metrics)  # doctest: +SKIP
    ['val']
    """
    from tfft.training import distribute

    cfg = load_config(config)
    check_config(cfg)  # missing paths, too-small images: refused before TensorFlow starts
    # Before `resolve`: loading a `keras:` backbone starts TensorFlow, after which virtual CPUs
    # and a MultiWorkerMirroredStrategy's collective ops can no longer be configured.
    strategy = distribute.make_strategy(cfg.distribute)
    resolved = resolve(cfg)  # every config mistake surfaces here, before any data is read
    cfg = resolved.config
    if distribute.is_chief_task() or resume:
        path = rundir.choose_run_dir(cfg.training.runs_dir, cfg.name, run_dir, resume, overwrite)
    else:  # a multi-worker non-chief: it writes to a temporary folder (see _Run._setup), reads nothing
        path = Path(run_dir) if run_dir else Path(cfg.training.runs_dir) / cfg.name
    if resume:
        _check_resumable(load_config(path / layout.CONFIG), cfg)
    command = f"tfft train {path / layout.CONFIG} --run-dir {path} --resume"
    made = rundir.folders_to_make(path) if distribute.is_chief_task() and not resume else None
    try:
        return _Run(resolved, strategy, path, resume, list(callbacks or []), feature_store).execute()
    except UserError:  # refused during set-up (no images in a class...): no half-made run directory
        rundir.discard_unstarted(path, made)
        raise
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


def _portable(model: Any) -> Any:
    """The model as model.keras holds it: compiled with a loss of tfft's own (the weighted binary
    cross-entropy), it is saved as an uncompiled model of the same layers, so that it still loads
    in a Python that never imports tfft (the compile state lives in the checkpoints)."""
    import keras

    loss = getattr(model, "loss", None)
    if getattr(model, "compiled", False) and loss is not None and not type(loss).__module__.startswith("keras"):
        return keras.Model(model.inputs, model.outputs, name=model.name)
    return model


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

    def __init__(self, resolved: ResolvedRun, strategy: Any, path: Path, resume: bool, callbacks: list[Any],
                 feature_store: Optional[Any] = None):
        self.resolved = resolved
        self.strategy = strategy
        self.cfg = resolved.config
        self.user_callbacks = callbacks
        self.feature_store = feature_store
        self.val_features: Optional[Any] = None  # the FeatureCache whose val features the final model shares
        self.shared_cut: Optional[str] = None  # feature_cache.lowest_cut of the run's cached phases
        self.shared: Optional[Any] = None  # their feature_cache.SharedPass
        self.path = path
        self.resume = resume
        self.history: list[dict[str, Any]] = []
        self.phase_rows: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}

    # -- setup -------------------------------------------------------------------------------
    def _setup(self) -> None:
        from tfft.training import distribute

        cfg = self.cfg
        self.chief = distribute.is_chief(self.strategy)
        self.source = self.path  # where a resumed run's checkpoint is read (shared by all workers)
        if not self.chief:
            import tempfile

            self.path = Path(tempfile.mkdtemp(prefix="tfft-worker-"))
        self.path.mkdir(parents=True, exist_ok=True)
        self.precision = distribute.resolve_precision(cfg.performance, self.strategy)
        self.accelerator = distribute.has_accelerator()
        if not self.resume:
            write_text(self.path / layout.CONFIG, cfg.to_yaml())
        write_json(self.path / layout.ENVIRONMENT, distribute.environment(self.strategy, self.precision))

    def _assemble(self) -> None:
        from tfft import data
        from tfft.training import distribute
        from tfft.training.assembly import assemble

        self.asm = asm = assemble(self.resolved, self.strategy, self.accelerator)
        self.splits, self.class_names = asm.splits, asm.class_names
        self.num_train, self.has_val = asm.num_train, asm.has_val
        self.model, self.train_model = asm.model, asm.train_model
        self.fit_model = self.train_model  # what the current phase fits (see _feature_cache)
        applied = distribute.applied_precision(self.model)  # what the layers compute in, not what was asked
        if applied != self.precision:
            print(f"precision: {self.precision} requested, the backbone's layers compute in {applied}")
        write_json_entry(self.path / layout.ENVIRONMENT, "precision", applied)
        write_text(self.path / layout.LABELS, "\n".join(self.class_names) + "\n")
        write_json(self.path / layout.DATA_REPORT, data.data_report(self.splits))
        counts = {name: len(split) for name, split in self.splits.splits.items()}
        print("data: " + ", ".join(f"{n} {k}" for k, n in counts.items()) +
              f" images, {len(self.class_names)} classes" +
              (f", {plural(len(self.splits.skipped), 'unreadable file')} skipped (see {layout.DATA_REPORT})"
               if self.splits.skipped else ""))
        if asm.augmenter is not None:
            print(f"augment ({asm.placement}): {asm.augmenter.describe()}")
        if asm.teacher is not None:
            settings = self.cfg.distill
            print(f"distill: {asm.teacher.describe()}, temperature {settings.temperature:g}, alpha {settings.alpha:g}")

    # -- phases ------------------------------------------------------------------------------
    def _compile(self, phase: Any, steps_per_epoch: int, model: Any) -> None:
        """Compile `model` (the classifier, its augmenting wrapper or the cached-feature head) for a phase."""
        import keras

        from tfft.schedule.optimizers import carry_state, layer_decay_multipliers, make_optimizer

        multipliers = layer_decay_multipliers(self.model, self.resolved.spec, phase.layer_decay)
        previous = getattr(self.fit_model, "optimizer", None)
        carry = self.cfg.schedule.carry_optimizer and previous is not None and previous.built
        offset = int(keras.ops.convert_to_numpy(previous.iterations)) if carry else 0
        with self.strategy.scope():
            optimizer = make_optimizer(phase, steps_per_epoch, multipliers, offset=offset)
        self.asm.compile(model, optimizer)
        if carry:
            with self.strategy.scope():
                count = carry_state(previous, optimizer)
            print(f"optimizer state carried over for {count} variables (from iteration {offset})")
        self.fit_model = model

    def _feature_cache(self, phase: Any, start: int, first: int, end: int) -> Optional[Any]:
        """For a frozen-backbone phase, compute the backbone's features once (`performance.cache_features`).

        Returns the filled `FeatureCache` with its `head` model to fit, or None to fit the full model.
        """
        from tfft.training import feature_cache

        perf = self.cfg.performance
        augmenter = self.asm.augmenter
        teacher = self.asm.teacher
        if teacher is not None and perf.cache_features != "off" and feature_cache.backbone_frozen(self.model) and (
                augmenter is not None or self.asm.class_weight() is not None):
            why = ("the teacher must see each epoch's augmented images" if augmenter is not None
                   else "training.class_weight reads the targets, which in a cached distilled phase carry the "
                        "teacher's logits")
            print(f"feature cache: off for this distilled phase ({why})")
            return None
        decision = feature_cache.decide_for_model(self.model, perf, augmenter, self.num_train)
        print(f"feature cache: {decision.reason}")
        if not decision.use:
            return None
        feature_cache.log.info("feature cache: caching %s", feature_cache.describe_point(self.model))
        with self.strategy.scope():
            feature_model, head = feature_cache.split_model(self.model, logits=teacher is not None)
        from tfft.training.feature_store import open_store

        if teacher is not None:
            feature_cache.log.info("feature cache: the teacher's logits are cached beside the features (one pass)")

        disk = open_store(perf.feature_store, perf.feature_store_max_gb)
        cache = feature_cache.FeatureCache(feature_model, head, self.cfg.seed, self.cfg.data.batch_size, disk)
        if self.shared_cut is not None and (decision.flips or augmenter is None):
            # One pass to the lowest cut of the run's cached phases serves them all.
            outcomes = augmenter.flip_outcomes if decision.flips else [(False, False)]
            val = self._cache_data("val") if self.has_val else None
            with self.strategy.scope():
                self.shared = feature_cache.shared_pass(
                    self.model, self.shared_cut, self.shared, self._cache_data("train"), self.num_train,
                    outcomes, val, len(self.splits.splits["val"]) if self.has_val else 0)
                cache.fill_derived(self.shared, feature_cache.bridge(self.model, self.shared_cut))
            return cache
        if decision.flips:  # every flip of every image, one pass; each epoch picks one per image
            cache.fill_flips(self.asm.dataset("train", None), self.num_train, augmenter.flip_outcomes)
            if self.has_val:
                cache.fill_val(self.asm.dataset("val", None), len(self.splits.splits["val"]))
            return cache
        key = None
        if self.feature_store is not None:
            key = self.feature_store.key(feature_model, {
                "data": self.cfg.data.model_dump(mode="json"), "seed": self.cfg.seed, "precision": self.precision,
                "augment": self.cfg.augment.model_dump(mode="json") if self.asm.augmenter is not None else None,
                "copies": decision.copies, "first_epoch": start if self.asm.augmenter is not None else 0,
                "teacher": str(teacher.run_dir) if teacher is not None else None, "files": self.data_digest})
            if self.feature_store.restore(key, cache):
                print("feature cache: reused the features an earlier run in this process computed")
                return cache
        if self.asm.augmenter is None:
            # One pass in file order; each epoch is gathered in its (seed, epoch) order.
            passes = [self._cache_data("train")]
        else:
            passes = [self.asm.dataset("train", range(start + j, start + j + 1), in_pipeline=True)
                      for j in range(decision.copies)]
        cache.fill_train(passes, self.num_train, first_epoch=start, shuffled=self.asm.augmenter is not None)
        if self.has_val:
            cache.fill_val(self._cache_data("val"), len(self.splits.splits["val"]))
        if key is not None:
            self.feature_store.store(key, cache)
        return cache

    def _cache_data(self, split: str) -> Any:
        """One unaugmented pass over `split` in file order for a feature cache; in a distilled run
        its targets carry the teacher's logits (`Teacher.with_targets`)."""
        dataset = self.asm.dataset(split, None)
        return self.asm.teacher.with_targets(dataset) if self.asm.teacher is not None else dataset

    def _write_history(self, rows: list[dict[str, Any]]) -> None:
        columns = list(HISTORY_COLUMNS)
        for row in rows:
            columns += [k for k in row if k not in columns]
        write_csv(self.path / layout.HISTORY, rows, columns)

    def _run_phases(self) -> None:
        import keras

        from tfft.schedule.freezing import apply_freezing
        from tfft.training import batchnorm, checkpoint
        from tfft.training.callbacks import EpochRecorder

        cfg = self.cfg
        phases = self.resolved.phases
        last = self.source / checkpoint.LAST
        lists = split_lists(self.splits)
        self.data_digest = lists_digest(lists)
        # -- LoRA (tfft.schedule.lora): adapters exist before a checkpoint is restored
        from tfft.schedule import lora
        with self.strategy.scope():
            self.lora = lora.prepare_run(self.model, phases)
        # -- end LoRA
        if self.resume:
            self.state = checkpoint.load_state(self.source)
            checkpoint.check_same_data(self.source, self.state, lists, self.data_digest)
            self.history = list(self.state.get("history", []))
            self.phase_rows = list(self.state.get("phase_rows", []))
            checkpoint.restore(last, self.model.variables)
            if self.chief:  # the kill may have come between an epoch's commit and its history.csv
                self._write_history(self.history)
            step = self.state.get("step", 0)
            print(f"resuming {self.source} at epoch {self.state['epoch'] + 1}" + (f", step {step + 1}" if step else "")
                  + f", phase {self.state['phase'] + 1}")
        else:
            self.state = {"epoch": 0, "step": 0, "phase": 0, "phase_start": 0, "best": math.inf,
                          "data_digest": self.data_digest}
            if self.chief:  # what `checkpoint.check_same_data` compares a resumed run's data with
                write_json(self.path / layout.SPLIT_LISTS, lists)
        from tfft.data import steps_per_epoch

        steps = cfg.training.steps_per_epoch or steps_per_epoch(self.splits, "train", cfg.data.batch_size)
        val = self.asm.dataset("val", None) if self.has_val else None
        monitor = "val_loss" if self.has_val else "loss"
        verbose = _verbosity(cfg.training.verbose)
        if cfg.performance.cache_features != "off":
            from tfft.training import feature_cache

            points = []
            for phase in phases[self.state["phase"]:]:  # each phase's freezing is set again below
                apply_freezing(self.model, self.resolved.spec, phase.unfreeze, cfg.schedule.bn)
                points.append(feature_cache.cache_point(self.model))
            self.shared_cut = feature_cache.lowest_cut(self.model, points)
        for index, phase in enumerate(phases):
            if index < self.state["phase"]:
                continue
            start = self.state["phase_start"]
            end = start + phase.epochs
            first = self.state["epoch"]
            report = apply_freezing(self.model, self.resolved.spec, phase.unfreeze, cfg.schedule.bn)
            report, lora_line = lora.apply(self.model, phase, report, self.lora)  # LoRA: adapters only
            row = {"name": phase.name, "epochs": phase.epochs, "unfreeze": phase.unfreeze, "lr": phase.lr,
                   "optimizer": phase.optimizer, "lr_schedule": phase.lr_schedule,
                   "layer_decay": phase.layer_decay, "first_epoch": start + 1,
                   "trainable_params": report.trainable_params,
                   "non_trainable_params": report.non_trainable_params}
            self.phase_rows = [r for r in self.phase_rows if r["name"] != phase.name or r["first_epoch"] != start + 1]
            self.phase_rows.append(row)
            self.state["phase_rows"] = self.phase_rows
            if self.chief:
                write_json(self.path / layout.PHASES, self.phase_rows)
            print(f"phase {index + 1}/{len(phases)} {phase.name}: epochs {start + 1}-{end}, "
                  f"unfreeze {phase.unfreeze}, lr {phase.lr:g} ({phase.optimizer}, {phase.lr_schedule}), "
                  f"{report.trainable_params:,} trainable / {report.non_trainable_params:,} frozen params")
            if lora_line:  # LoRA
                print(lora_line)
            skip = int(self.state.get("step", 0)) if first < end else 0  # steps of epoch `first` already done
            if skip >= steps:
                raise UserError(str(last), f"taken after all {steps} steps of epoch {first + 1} but before its end "
                                "(a step checkpoint of an earlier tfft): it cannot be resumed exactly",
                                "start the run again")
            cache = self._feature_cache(phase, start, first, end) if first < end else None
            # Checked at the end (a digest of the frozen part): restoring an earlier phase's best
            # epoch may change what this phase's features were computed with.
            self.val_features = (cache if cache is not None and cache.val is not None and self.asm.teacher is None
                                 else None)
            self._compile(phase, steps, self.asm.distilled(cache.head, cached=True) if cache is not None
                          else self.asm.distilled(self.train_model))
            if (first > start or skip) and first < end:
                checkpoint.restore(last, self.fit_model.optimizer.variables, "optimizer", match_paths=False)
            if first < end and not self.state.get("early_stopped"):
                recorder = EpochRecorder(self.path if self.chief else None, phase.name, self.history,
                                         self.state, self.model, monitor, phase.early_stopping,
                                         self._write_history, cfg.training.checkpoint_steps,
                                         resume_step=skip, resume_from=last if skip else None,
                                         steps_per_epoch=steps)
                callbacks: list[Any] = [recorder]
                if self.chief:
                    callbacks.append(keras.callbacks.TensorBoard(str(self.path / layout.TENSORBOARD),
                                                                 write_graph=False, profile_batch=0))
                if phase.lr_schedule == "plateau":
                    callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=phase.step_factor,
                                                                       patience=phase.step_every, verbose=1))
                callbacks += self.user_callbacks  # after the recorder: they see the epoch already checkpointed
                val_data = (cache.val_dataset() if val else None) if cache is not None else val
                if skip:  # the rest of the interrupted epoch, from its next batch, as its own fit
                    self._fit(cache, start, first, first + 1, skip, steps, val_data, callbacks, verbose)
                    first += 1
                if first < end and not (recorder.nan or self.state.get("early_stopped")):
                    self._fit(cache, start, first, end, 0, steps, val_data, callbacks, verbose)
                if recorder.nan:
                    if (self.path / checkpoint.LAST).exists():
                        checkpoint.restore(self.path / checkpoint.LAST, self.model.variables)
                    raise TrainingDiverged(f"schedule.phases[{index}].lr",
                                    f"the loss became NaN/Inf in phase {phase.name!r} at epoch {self.state['epoch'] + 1}",
                                    f"lower the rate (now {phase.lr:g}); the last good checkpoint is kept in "
                                    f"{self.path / 'checkpoints'}")
            trained_bn = batchnorm.trained_batchnorms(self.model)
            self._recompute_batchnorm(trained_bn)  # before the checkpoint: a resumed run does not redo it
            self.state.update(phase=index + 1, phase_start=self.state["epoch"], step=0, phase_best=math.inf,
                              phase_wait=0, early_stopped=False,
                              bn_recomputed=sorted(set(self.state.get("bn_recomputed", [])) | set(trained_bn)))
            if self.chief:
                checkpoint.save(self.path, self.state, self.model.variables)

    def _recompute_batchnorm(self, names: Sequence[str]) -> None:
        """Set the moving statistics of the BatchNorm layers `names` (trained in a phase) to their
        values over the training split (`tfft.training.batchnorm`): the momentum's slow average
        leaves a model trained from scratch for a few epochs a constant in inference mode."""
        from tfft.training import batchnorm

        if not names:
            return
        count = batchnorm.recompute(self.model, names, self.asm.dataset("train", None))
        print(f"batchnorm: moving statistics of {plural(len(names), 'layer')} recomputed over {count} training images")

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
            train = self.asm.dataset("train", needed, skip=position % per_pass)
        steps -= skip
        if skip:  # the metric variables must exist before the first step, to take the epoch's totals
            custom_loop.build_compiled_state(self.fit_model, self.strategy, train)
        # The classifier too: with the cache it is built in scope but never fit.
        with distribute.training_under(self.strategy, self.fit_model, self.model):
            try:
                if custom_loop.wanted(self.strategy):  # MultiWorkerMirroredStrategy: Keras' fit cannot
                    custom_loop.fit(self.fit_model, self.strategy, train, epochs=end, initial_epoch=first,
                                    steps_per_epoch=steps, validation_data=val_data, callbacks=callbacks,
                                    verbose=verbose, class_weight=self.asm.class_weight())
                else:
                    self.fit_model.fit(train, epochs=end, initial_epoch=first, steps_per_epoch=steps,
                                       validation_data=val_data, callbacks=callbacks, verbose=verbose,
                                       shuffle=False, class_weight=self.asm.class_weight())
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
            self._recompute_batchnorm(self.state.get("bn_recomputed", []))  # the epoch's weights, statistics to match
        if getattr(self, "lora", False):  # LoRA: adapters folded into the kernels, a plain model saved
            from tfft.schedule import lora
            print(f"lora: adapters of {lora.merge(self.model)} layers merged into their kernels")
        if not self.chief:
            return {}
        with atomic_path(self.path / layout.MODEL, suffix=".keras") as tmp:
            _portable(self.model).save(tmp)
        metrics = self._evaluate()
        self._plots()
        write_json(self.path / layout.METRICS, metrics)
        write_report(self.path)
        write_html_report(self.path)
        return metrics

    def _evaluate(self) -> dict[str, Any]:
        if self.asm.task.name == "multi_label":
            return self._evaluate_multilabel()
        metrics = {}
        for split in self.cfg.evaluate.splits:
            if split in self.splits.splits and len(self.splits.splits[split]) > 0:
                from tfft import data

                out_dir = self.path if split == "val" or "val" not in self.splits.splits else self.path / "eval" / split
                cached = self.val_features if split == "val" else None
                if cached is not None and cached.val_still_valid():  # the frozen part is unchanged
                    model, dataset = cached.head, cached.val
                    print("val: scored on the cached backbone features")
                else:
                    model = self.model
                    dataset = data.make_dataset(self.splits, split, self.cfg.data, seed=self.cfg.seed, training=False)
                metrics[split] = evaluate_model(model, dataset, self.class_names, out_dir,
                                                top_k=self.cfg.evaluate.top_k)
                print(f"{split}: accuracy {metrics[split]['accuracy']:.4f}, loss {metrics[split]['loss']:.4f}, "
                      f"macro F1 {metrics[split]['macro_f1']:.4f}")
        return metrics

    def _evaluate_multilabel(self) -> dict[str, Any]:
        """Thresholds chosen on val (thresholds.json), then every evaluated split scored at them."""
        from tfft import data

        wanted = [s for s in self.cfg.evaluate.splits if s in self.splits.splits and len(self.splits.splits[s])]
        scored = {}
        for split in sorted(set(wanted) | ({"val"} if self.has_val else set())):
            dataset = data.make_dataset(self.splits, split, self.cfg.data, seed=self.cfg.seed, training=False)
            scored[split] = multilabel_eval.collect(self.model, dataset)
        thresholds = multilabel_eval.choose_thresholds(*scored.get("val", (None, None)), self.class_names, self.path)
        metrics = {}
        for split in wanted:
            out_dir = self.path if split == "val" or "val" not in self.splits.splits else self.path / "eval" / split
            metrics[split] = multilabel_eval.evaluate_multilabel(*scored[split], self.class_names, thresholds,
                                                                 out_dir, split=split)
            m = metrics[split]
            print(f"{split}: mAP {m['mAP'] if m['mAP'] is None else round(m['mAP'], 4)}, micro F1 {m['micro_f1']:.4f}, "
                  f"macro F1 {m['macro_f1']:.4f} at the tuned thresholds (at 0.5: {m['micro_f1_at_0.5']:.4f}, "
                  f"{m['macro_f1_at_0.5']:.4f}), loss {m['loss']:.4f}")
        return metrics

    def _plots(self) -> None:
        plot_curves(self.history, self.path / layout.CURVES, phases=self.phase_rows,
                    best=self.state.get("best_epoch"), saved=self.cfg.training.save)

    def execute(self) -> TrainResult:
        started = time.time()
        self._setup()
        with process_state.run_log(self.path / layout.RUN_LOG), \
                process_state.run_state(self.cfg.seed, self.cfg.training.deterministic, self.precision):
            self._assemble()
            self._run_phases()
            metrics = self._finish()
        print(f"trained in {time.time() - started:.0f} s")
        return TrainResult(self.path, metrics, self.history, self.phase_rows)

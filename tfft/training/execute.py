"""A run's phase loop over `model.fit`, following its `tfft.training.plan.Plan`.

For each phase still to run: apply its freezing, record it in phases.json, decide whether its
backbone's features are computed once (`feature_cache`), compile a fresh optimizer (or carry the
last one's state), fit its epochs (an interrupted epoch's remaining steps first, as their own
fit), recompute the BatchNorm statistics it trained and commit the checkpoint.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from tfft import layout
from tfft.atomic import write_json
from tfft.errors import TrainingDiverged, UserError
from tfft.training.plan import Plan
from tfft.training.session import Session


class PhaseLoop:
    """Runs a plan's phases on an assembled session.

    Args:
        session: the assembled run.
        plan: from `plan_run(session)`; its `progress` is updated as epochs finish.
        callbacks: the user's Keras callbacks, after tfft's own in every fit.
        feature_store: a process-wide `FeatureStore` (`tfft tune`'s trials), or None.

    Example:
    >>> loop = PhaseLoop(session, plan_run(session), [])  # doctest: +SKIP
    >>> loop.run()  # doctest: +SKIP
    """

    def __init__(self, session: Session, plan: Plan, callbacks: list[Any], feature_store: Optional[Any] = None):
        self.session = session
        self.plan = plan
        self.user_callbacks = callbacks
        self.feature_store = feature_store
        self.fit_model = session.asm.train_model  # what the current phase fits (see `feature_cache`)
        self.shared: Optional[Any] = None  # the feature_cache.SharedPass of the cached phases
        self.val_features: Optional[Any] = None  # the FeatureCache whose val features the final model shares

    @property
    def state(self) -> dict[str, Any]:
        return self.plan.progress.state

    def run(self) -> None:
        """Every phase not yet finished, in order."""
        for index, phase in enumerate(self.plan.phases):
            if index >= self.state["phase"]:
                self.run_phase(index, phase)

    def run_phase(self, index: int, phase: Any) -> None:
        """One phase: freezing, phases.json, feature cache, compile, fit, BatchNorm, checkpoint."""
        from tfft.schedule import lora
        from tfft.schedule.freezing import apply_freezing
        from tfft.training import batchnorm, checkpoint

        session, cfg, state = self.session, self.session.cfg, self.state
        start = state["phase_start"]
        end = start + phase.epochs
        first = state["epoch"]
        report = apply_freezing(session.model, session.resolved.spec, phase.unfreeze, cfg.schedule.bn)
        report, lora_line = lora.apply(session.model, phase, report, session.lora)  # LoRA: adapters only
        self.record_phase(index, phase, start, end, report)
        if lora_line:
            print(lora_line)
        steps = self.plan.steps
        skip = int(state.get("step", 0)) if first < end else 0  # steps of epoch `first` already done
        if skip >= steps:
            raise UserError(str(self.plan.last), f"taken after all {steps} steps of epoch {first + 1} but before its "
                            "end (a step checkpoint of an earlier tfft): it cannot be resumed exactly",
                            "start the run again")
        cache = self.feature_cache(phase, start, first, end) if first < end else None
        # Checked at the end (a digest of the frozen part): restoring an earlier phase's best
        # epoch may change what this phase's features were computed with.
        self.val_features = (cache if cache is not None and cache.val is not None and session.asm.teacher is None
                             else None)
        self.compile(phase, steps, session.asm.distilled(cache.head, cached=True) if cache is not None
                     else session.asm.distilled(session.asm.train_model))
        if (first > start or skip) and first < end:
            checkpoint.restore(self.plan.last, self.fit_model.optimizer.variables, "optimizer", match_paths=False)
        if first < end and not state.get("early_stopped"):
            self.fit_phase(index, phase, cache, start, first, end, skip)
        trained_bn = batchnorm.trained_batchnorms(session.model)
        session.recompute_batchnorm(trained_bn)  # before the checkpoint: a resumed run does not redo it
        state.update(phase=index + 1, phase_start=state["epoch"], step=0, phase_best=math.inf,
                     phase_wait=0, early_stopped=False,
                     bn_recomputed=sorted(set(state.get("bn_recomputed", [])) | set(trained_bn)))
        if session.chief:
            checkpoint.save(session.path, state, session.model.variables)

    def record_phase(self, index: int, phase: Any, start: int, end: int, report: Any) -> None:
        """The phase's row in phases.json (replacing a resumed run's row of it) and its line."""
        progress, session = self.plan.progress, self.session
        row = {"name": phase.name, "epochs": phase.epochs, "unfreeze": phase.unfreeze, "lr": phase.lr,
               "optimizer": phase.optimizer, "lr_schedule": phase.lr_schedule,
               "layer_decay": phase.layer_decay, "first_epoch": start + 1,
               "trainable_params": report.trainable_params,
               "non_trainable_params": report.non_trainable_params}
        progress.phase_rows = [r for r in progress.phase_rows
                               if r["name"] != phase.name or r["first_epoch"] != start + 1]
        progress.phase_rows.append(row)
        progress.state["phase_rows"] = progress.phase_rows
        if session.chief:
            write_json(session.path / layout.PHASES, progress.phase_rows)
        print(f"phase {index + 1}/{len(self.plan.phases)} {phase.name}: epochs {start + 1}-{end}, "
              f"unfreeze {phase.unfreeze}, lr {phase.lr:g} ({phase.optimizer}, {phase.lr_schedule}), "
              f"{report.trainable_params:,} trainable / {report.non_trainable_params:,} frozen params")

    def fit_phase(self, index: int, phase: Any, cache: Optional[Any], start: int, first: int, end: int,
                  skip: int) -> None:
        """Fit the phase's remaining epochs with tfft's callbacks and the user's; a NaN loss
        restores the last good checkpoint and raises `TrainingDiverged`."""
        import keras

        from tfft.training import checkpoint
        from tfft.training.callbacks import EpochRecorder

        session, plan, state = self.session, self.plan, self.state
        recorder = EpochRecorder(session.path if session.chief else None, phase.name, plan.progress.history,
                                 state, session.model, plan.monitor, phase.early_stopping,
                                 plan.progress.write_history, session.cfg.training.checkpoint_steps,
                                 resume_step=skip, resume_from=plan.last if skip else None,
                                 steps_per_epoch=plan.steps)
        callbacks: list[Any] = [recorder]
        if session.chief:
            callbacks.append(keras.callbacks.TensorBoard(str(session.path / layout.TENSORBOARD),
                                                         write_graph=False, profile_batch=0))
        if phase.lr_schedule == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=plan.monitor, factor=phase.step_factor,
                                                               patience=phase.step_every, verbose=1))
        callbacks += self.user_callbacks  # after the recorder: they see the epoch already checkpointed
        val_data = (cache.val_dataset() if plan.val else None) if cache is not None else plan.val
        last_phase = index == len(plan.phases) - 1
        if skip:  # the rest of the interrupted epoch, from its next batch, as its own fit
            self.fit(cache, start, first, first + 1, skip, plan.steps, val_data, callbacks, plan.verbose,
                     last_fit=last_phase and first + 1 >= end)
            first += 1
        if first < end and not (recorder.nan or state.get("early_stopped")):
            self.fit(cache, start, first, end, 0, plan.steps, val_data, callbacks, plan.verbose, last_fit=last_phase)
        if recorder.nan:
            if (session.path / checkpoint.LAST).exists():
                checkpoint.restore(session.path / checkpoint.LAST, session.model.variables)
            raise TrainingDiverged(f"schedule.phases[{index}].lr",
                                   f"the loss became NaN/Inf in phase {phase.name!r} at epoch {state['epoch'] + 1}",
                                   f"lower the rate (now {phase.lr:g}); the last good checkpoint is kept in "
                                   f"{session.path / 'checkpoints'}")

    def compile(self, phase: Any, steps_per_epoch: int, model: Any) -> None:
        """Compile `model` (the classifier, its augmenting wrapper or the cached-feature head) for a phase."""
        import keras

        from tfft.schedule.optimizers import carry_state, layer_decay_multipliers, make_optimizer

        session = self.session
        multipliers = layer_decay_multipliers(session.model, session.resolved.spec, phase.layer_decay)
        previous = getattr(self.fit_model, "optimizer", None)
        carry = session.cfg.schedule.carry_optimizer and previous is not None and previous.built
        offset = int(keras.ops.convert_to_numpy(previous.iterations)) if carry else 0
        with session.strategy.scope():
            optimizer = make_optimizer(phase, steps_per_epoch, multipliers, offset=offset)
        session.asm.compile(model, optimizer)
        if carry:
            with session.strategy.scope():
                count = carry_state(previous, optimizer)
            print(f"optimizer state carried over for {count} variables (from iteration {offset})")
        self.fit_model = model

    def feature_cache(self, phase: Any, start: int, first: int, end: int) -> Optional[Any]:
        """For a frozen-backbone phase, compute the backbone's features once (`performance.cache_features`).

        Returns the filled `FeatureCache` with its `head` model to fit, or None to fit the full model.
        """
        from tfft.training import feature_cache

        session = self.session
        asm, model, cfg = session.asm, session.model, session.cfg
        perf = cfg.performance
        augmenter = asm.augmenter
        teacher = asm.teacher
        if teacher is not None and perf.cache_features != "off" and feature_cache.backbone_frozen(model) and (
                augmenter is not None or asm.class_weight() is not None):
            why = ("the teacher must see each epoch's augmented images" if augmenter is not None
                   else "training.class_weight reads the targets, which in a cached distilled phase carry the "
                        "teacher's logits")
            print(f"feature cache: off for this distilled phase ({why})")
            return None
        decision = feature_cache.decide_for_model(model, perf, augmenter, session.num_train)
        print(f"feature cache: {decision.reason}")
        if not decision.use:
            return None
        feature_cache.log.info("feature cache: caching %s", feature_cache.describe_point(model))
        with session.strategy.scope():
            feature_model, head = feature_cache.split_model(model, logits=teacher is not None)
        from tfft.training.feature_store import open_store

        if teacher is not None:
            feature_cache.log.info("feature cache: the teacher's logits are cached beside the features (one pass)")

        disk = open_store(perf.feature_store, perf.feature_store_max_gb)
        cache = feature_cache.FeatureCache(feature_model, head, cfg.seed, cfg.data.batch_size, disk)
        val_count = len(session.splits.splits["val"]) if session.has_val else 0
        if self.plan.shared_cut is not None and (decision.flips or augmenter is None):
            # One pass to the lowest cut of the run's cached phases serves them all.
            outcomes = augmenter.flip_outcomes if decision.flips else [(False, False)]
            val = self.cache_data("val") if session.has_val else None
            with session.strategy.scope():
                self.shared = feature_cache.shared_pass(
                    model, self.plan.shared_cut, self.shared, self.cache_data("train"), session.num_train,
                    outcomes, val, val_count)
                cache.fill_derived(self.shared, feature_cache.bridge(model, self.plan.shared_cut))
            return cache
        if decision.flips:  # every flip of every image, one pass; each epoch picks one per image
            cache.fill_flips(asm.dataset("train", None), session.num_train, augmenter.flip_outcomes)
            if session.has_val:
                cache.fill_val(asm.dataset("val", None), val_count)
            return cache
        key = None
        if self.feature_store is not None:
            key = self.feature_store.key(feature_model, {
                "data": cfg.data.model_dump(mode="json"), "seed": cfg.seed, "precision": session.precision,
                "augment": cfg.augment.model_dump(mode="json") if augmenter is not None else None,
                "copies": decision.copies, "first_epoch": start if augmenter is not None else 0,
                "teacher": str(teacher.run_dir) if teacher is not None else None,
                "files": self.plan.progress.data_digest})
            if self.feature_store.restore(key, cache):
                print("feature cache: reused the features an earlier run in this process computed")
                return cache
        if augmenter is None:
            # One pass in file order; each epoch is gathered in its (seed, epoch) order.
            passes = [self.cache_data("train")]
        else:
            passes = [asm.dataset("train", range(start + j, start + j + 1), in_pipeline=True)
                      for j in range(decision.copies)]
        cache.fill_train(passes, session.num_train, first_epoch=start, shuffled=augmenter is not None)
        if session.has_val:
            cache.fill_val(self.cache_data("val"), val_count)
        if key is not None:
            self.feature_store.store(key, cache)
        return cache

    def cache_data(self, split: str) -> Any:
        """One unaugmented pass over `split` in file order for a feature cache; in a distilled run
        its targets carry the teacher's logits (`Teacher.with_targets`)."""
        asm = self.session.asm
        dataset = asm.dataset(split, None)
        return asm.teacher.with_targets(dataset) if asm.teacher is not None else dataset

    def fit(self, cache: Optional[Any], start: int, first: int, end: int, skip: int, steps: int, val_data: Any,
            callbacks: list[Any], verbose: int, last_fit: bool = False) -> None:
        """Fit epochs `first..end-1` of the phase that began at epoch `start`, the first one from its step
        `skip`, with Keras' fit or the custom loop.

        The phase reads one stream of data epochs `start, start+1, ...` (each a pass in its own
        (seed, epoch) order); fit epoch `k` takes its `steps` batches from position
        `(k - start) * steps`, so `training.steps_per_epoch` may be shorter or longer than a pass
        and a resumed run still reads exactly the batches an uninterrupted one reads. `last_fit`:
        no fit of the run follows this one (then a single pass starts no decoded store).
        """
        from tfft.data import steps_per_epoch
        from tfft.training import custom_loop, distribute

        session = self.session
        per_pass = steps_per_epoch(session.splits, "train", session.cfg.data.batch_size)
        position = (first - start) * steps + skip
        needed = range(start + position // per_pass, start + math.ceil((end - start) * steps / per_pass))
        if cache is not None:
            train = cache.train_dataset(needed, skip_batches=position % per_pass)
        elif custom_loop.is_multi_worker(session.strategy) and session.splits.origin.shards_by_file:
            # each worker streams its own shard files (file-level sharding), not every batch
            def worker_input(context: Any, skip: int = position % per_pass) -> Any:
                if context.num_input_pipelines > 1:
                    print(f"input: worker {context.input_pipeline_id} of {context.num_input_pipelines} streams "
                          f"its own files of {session.splits.source}", flush=True)
                return session.asm.dataset("train", needed, skip=skip, input_context=context)

            train = custom_loop.PerWorker(worker_input)
        else:
            # A single pass that is the run's last: a decoded store started for it would never be read.
            train = session.asm.dataset("train", needed, skip=position % per_pass,
                                        last_read=last_fit and len(needed) <= 1)
            if session.chief:  # the pipeline's costs, said once when it is the slower side (issue 34)
                from tfft.training import input_costs

                report = input_costs.report_for(train, session.num_train, session.cfg.data.batch_size, per_pass)
                callbacks = callbacks + ([report] if report is not None else [])
        steps -= skip
        if skip:  # the metric variables must exist before the first step, to take the epoch's totals
            custom_loop.build_compiled_state(self.fit_model, session.strategy, train)
        # The classifier too: with the cache it is built in scope but never fit.
        with distribute.training_under(session.strategy, self.fit_model, session.model):
            try:
                if custom_loop.wanted(session.strategy):  # MultiWorkerMirroredStrategy: Keras' fit cannot
                    custom_loop.fit(self.fit_model, session.strategy, train, epochs=end, initial_epoch=first,
                                    steps_per_epoch=steps, validation_data=val_data, callbacks=callbacks,
                                    verbose=verbose, class_weight=session.asm.class_weight())
                else:
                    self.fit_model.fit(train, epochs=end, initial_epoch=first, steps_per_epoch=steps,
                                       validation_data=val_data, callbacks=callbacks, verbose=verbose,
                                       shuffle=False, class_weight=session.asm.class_weight())
            except BaseException:
                if verbose:
                    print(flush=True)  # end a progress bar cut mid-line, so the error starts its own
                raise

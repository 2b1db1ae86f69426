"""Callbacks of the phase loop: history rows, checkpoints, best weights, early stopping."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from tfft.wording import plural
from tfft.schedule.optimizers import current_lr
from tfft.training import checkpoint


def _all_finite(model: keras.Model) -> bool:
    """Every floating-point variable of `model` (weights and BatchNorm statistics) is finite."""
    for variable in model.variables:
        value = keras.ops.convert_to_numpy(variable)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return False
    return True


class EpochRecorder(keras.callbacks.Callback):
    """History rows, resumable checkpoints (every epoch, and every N steps), best weights, early stopping.

    Args:
        run_dir: the run directory (None on non-chief workers: nothing is written).
        phase_name: written in the `phase` column.
        history: the run's rows so far (appended to in place).
        state: the resumable state dict (updated and saved in place).
        inference_model: whose variables are checkpointed.
        monitor: `val_loss`, or `loss` when there is no validation split.
        patience: early-stopping patience in epochs within this phase (None: off).
        on_rows: called with the rows after each epoch (writes history.csv).
        checkpoint_steps: also commit a checkpoint every this many steps inside an epoch.
        steps_per_epoch: the steps of a whole epoch (a resumed epoch's included): its last step
            commits no step checkpoint, the epoch-end checkpoint follows it.
        resume_step: the steps of epoch `state["epoch"]` already done by the run being resumed:
            that epoch's step count starts there and its metric totals are restored from the
            checkpoint, so its logs equal an uninterrupted run's.
    """

    def __init__(self, run_dir: Path | None, phase_name: str, history: list[dict[str, Any]],
                 state: dict[str, Any], inference_model: keras.Model, monitor: str,
                 patience: int | None, on_rows: Callable[[list[dict[str, Any]]], None],
                 checkpoint_steps: int | None = None, resume_step: int = 0,
                 resume_from: Path | None = None, steps_per_epoch: int | None = None):
        super().__init__()
        self.run_dir = run_dir
        self.phase_name = phase_name
        self.history = history
        self.state = state
        self.inference_model = inference_model
        self.monitor = monitor
        self.patience = patience
        self.on_rows = on_rows
        self.checkpoint_steps = checkpoint_steps
        self.steps_per_epoch = steps_per_epoch
        self.resume_epoch = int(state.get("epoch", 0)) if resume_step else None
        self.resume_step = int(resume_step)
        self.resume_from = resume_from
        self.nan = False
        self.saved_step = self.epoch_offset = 0

    def _commit(self, step: int) -> None:
        """Commit the checkpoint: model, optimizer (and, inside an epoch, the metric totals), progress."""
        self.state["step"] = step
        self.state["history"] = self.history
        if self.run_dir is not None:
            checkpoint.save(self.run_dir, self.state, self.inference_model.variables,
                            self.model.optimizer.variables, self.model.metrics_variables if step else ())
        self.saved_step = step

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.saved_step = self.epoch_offset = 0
        if epoch == self.resume_epoch:
            self.saved_step = self.epoch_offset = self.resume_step
            # After fit's reset_metrics: the epoch's totals so far. On several replicas the totals are
            # per-replica variables that one saved sum cannot be split back into; those epochs log
            # the metrics of their resumed part only.
            replicas = getattr(self.model.distribute_strategy, "num_replicas_in_sync", 1)
            if self.resume_from is not None and replicas == 1:
                checkpoint.restore(self.resume_from, self.model.metrics_variables, "metrics", match_paths=False)
            self.resume_epoch = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # `batch` is the last step of this call (several with steps_per_execution), counted from
        # the start of this fit's epoch; a resumed epoch's fit starts `resume_step` steps in.
        step = self.epoch_offset + batch + 1
        if self.steps_per_epoch and step >= self.steps_per_epoch:
            # A checkpoint of all the epoch's steps would resume into a fit of no steps, which Keras
            # takes as "until the data ends"; a kill before the epoch-end commit redoes this step.
            return
        if self.checkpoint_steps and step - self.saved_step >= self.checkpoint_steps:
            if not math.isfinite(float((logs or {}).get("loss", 0.0))) or not _all_finite(self.inference_model):
                return  # never replace the last good checkpoint with NaN weights
            self._commit(step)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "phase": self.phase_name, "lr": current_lr(self.model.optimizer)}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        row.setdefault("val_loss", float("nan"))
        value = row.get(self.monitor, float("nan"))
        # A finite batch loss can hide non-finite weights (BatchNorm statistics with `bn: train`).
        if not math.isfinite(row.get("loss", float("nan"))) or not _all_finite(self.inference_model):
            self.nan = True
            self.model.stop_training = True
            return  # keep the last good checkpoint
        self.history.append(row)
        self.state["epoch"] = epoch + 1
        improved = math.isfinite(value) and value < self.state.get("best", math.inf)
        if improved:
            self.state["best"] = value
            self.state["best_epoch"] = epoch + 1
        phase_best = self.state.setdefault("phase_best", math.inf)
        if math.isfinite(value) and value < phase_best:
            self.state["phase_best"], self.state["phase_wait"] = value, 0
        else:
            self.state["phase_wait"] = self.state.get("phase_wait", 0) + 1
        if self.run_dir is not None and improved:
            checkpoint.save_variables(self.run_dir / checkpoint.BEST, self.inference_model.variables)
        self._commit(0)
        if self.run_dir is not None:
            self.on_rows(self.history)
        if self.patience is not None and self.state["phase_wait"] >= self.patience:
            print(f"early stopping: {self.monitor} has not improved for {plural(self.patience, 'epoch')}")
            self.state["early_stopped"] = True
            self.model.stop_training = True

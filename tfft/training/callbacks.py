"""Callbacks of the phase loop: history rows, checkpoints, best weights, early stopping."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import keras

from tfft.schedule.optimizers import current_lr
from tfft.training import checkpoint


class EpochRecorder(keras.callbacks.Callback):
    """At each epoch end: a history row, the resumable checkpoint, best weights, early stopping.

    Args:
        run_dir: the run directory (None on non-chief workers: nothing is written).
        phase_name: written in the `phase` column.
        history: the run's rows so far (appended to in place).
        state: the resumable state dict (updated and saved in place).
        inference_model: whose variables are checkpointed.
        monitor: `val_loss`, or `loss` when there is no validation split.
        patience: early-stopping patience in epochs within this phase (None: off).
        on_rows: called with the rows after each epoch (writes history.csv).
    """

    def __init__(self, run_dir: Path | None, phase_name: str, history: list[dict[str, Any]],
                 state: dict[str, Any], inference_model: keras.Model, monitor: str,
                 patience: int | None, on_rows: Callable[[list[dict[str, Any]]], None]):
        super().__init__()
        self.run_dir = run_dir
        self.phase_name = phase_name
        self.history = history
        self.state = state
        self.inference_model = inference_model
        self.monitor = monitor
        self.patience = patience
        self.on_rows = on_rows
        self.nan = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "phase": self.phase_name, "lr": current_lr(self.model.optimizer)}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        row.setdefault("val_loss", float("nan"))
        value = row.get(self.monitor, float("nan"))
        if not math.isfinite(row.get("loss", float("nan"))):
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
        if self.run_dir is not None:
            variables = self.inference_model.variables
            if improved:
                checkpoint.save_variables(self.run_dir / checkpoint.BEST, variables)
            checkpoint.save_variables(self.run_dir / checkpoint.WEIGHTS, variables)
            checkpoint.save_variables(self.run_dir / checkpoint.OPTIMIZER, self.model.optimizer.variables)
            self.state["history"] = self.history
            checkpoint.save_state(self.run_dir, self.state)
            self.on_rows(self.history)
        if self.patience is not None and self.state["phase_wait"] >= self.patience:
            print(f"early stopping: {self.monitor} has not improved for {self.patience} epoch(s)")
            self.state["early_stopped"] = True
            self.model.stop_training = True

"""A run's plan, made before the first fit: where it starts, its phases, steps and cache cut.

`plan_run(session)` reads where the run stands (a fresh run's starting state, or a resumed
run's checkpoint: its state, history and weights, checked against the data it started with),
the steps of an epoch, the metric that picks the best epoch, and the lowest cut of the run's
cached phases (`feature_cache.lowest_cut`: one pass to it serves every cached phase). The phase
loop (`tfft.training.execute`) follows the plan; `Progress` is what it changes.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from tfft import layout
from tfft.atomic import write_csv, write_json
from tfft.data.sources import lists_digest, split_lists
from tfft.training import process_state

HISTORY_COLUMNS = ("epoch", "phase", "loss", "val_loss", "lr")


@dataclasses.dataclass
class Progress:
    """Where a run stands: what `checkpoints/last.npz` commits with the weights.

    Args:
        path: the run directory history.csv is written to.
        state: epoch, step, phase, phase_start, best... (`tfft.training.checkpoint`).
        history: one row per finished epoch (history.csv).
        phase_rows: one row per phase begun (phases.json).
        data_digest: the digest of the split lists the run started with.
    """

    path: Path
    state: dict[str, Any]
    history: list[dict[str, Any]]
    phase_rows: list[dict[str, Any]]
    data_digest: str

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        """history.csv: the fixed columns first, then every other key in the order rows bring it."""
        columns = list(HISTORY_COLUMNS)
        for row in rows:
            columns += [k for k in row if k not in columns]
        write_csv(self.path / layout.HISTORY, rows, columns)


@dataclasses.dataclass
class Plan:
    """What the phase loop follows.

    Args:
        phases: the resolved phases (`tfft.schedule.phases`).
        steps: training steps per epoch.
        val: the val split's dataset (None without one).
        monitor: `val_loss`, or `loss` without a val split.
        verbose: Keras' fit verbosity.
        shared_cut: the lowest cut of the cached phases still to run (None: no feature cache).
        last: the checkpoint a resumed run continues from.
        progress: where the run starts.
    """

    phases: Sequence[Any]
    steps: int
    val: Any
    monitor: str
    verbose: int
    shared_cut: Optional[str]
    last: Path
    progress: Progress


def verbosity(setting: str) -> int:
    """Keras' fit verbosity for `training.verbose`: quiet 0, line 2, bar 1, auto by the terminal.

    Example:
    >>> verbosity("quiet"), verbosity("line"), verbosity("bar")
    (0, 2, 1)
    """
    if setting == "quiet":
        return 0
    if setting == "line":
        return 2
    if setting == "bar":
        return 1
    return 1 if process_state.interactive() else 2


def start_progress(session: Any, lists: dict[str, Any], digest: str) -> Progress:
    """A fresh run's starting point, or a resumed run's: its state, history and weights from the
    checkpoint, after checking that its data is the data it started with."""
    from tfft.training import checkpoint

    progress = Progress(session.path, {}, [], [], digest)
    from tfft.schedule import lora  # LoRA: the adapters exist before a checkpoint is restored

    with session.strategy.scope():
        session.lora = lora.prepare_run(session.model, session.resolved.phases)
    if session.resume:
        last = session.source / checkpoint.LAST
        progress.state = state = checkpoint.load_state(session.source)
        checkpoint.check_same_data(session.source, state, lists, digest)
        progress.history = list(state.get("history", []))
        progress.phase_rows = list(state.get("phase_rows", []))
        checkpoint.restore(last, session.model.variables)
        if session.chief:  # the kill may have come between an epoch's commit and its history.csv
            progress.write_history(progress.history)
        step = state.get("step", 0)
        print(f"resuming {session.source} at epoch {state['epoch'] + 1}" + (f", step {step + 1}" if step else "")
              + f", phase {state['phase'] + 1}")
    else:
        progress.state = {"epoch": 0, "step": 0, "phase": 0, "phase_start": 0, "best": math.inf,
                          "data_digest": digest}
        if session.chief:  # what `checkpoint.check_same_data` compares a resumed run's data with
            write_json(session.path / layout.SPLIT_LISTS, lists)
    return progress


def cache_cut(model: Any, spec: Any, phases: Sequence[Any], bn: str) -> Optional[str]:
    """The lowest cut point of `phases` (each one's freezing applied to `model` in turn; the loop
    sets each phase's freezing again): one feature pass to it serves all of them."""
    from tfft.schedule.freezing import apply_freezing
    from tfft.training import feature_cache

    points = []
    for phase in phases:
        apply_freezing(model, spec, phase.unfreeze, bn)
        points.append(feature_cache.cache_point(model))
    return feature_cache.lowest_cut(model, points)


def plan_run(session: Any) -> Plan:
    """The plan of an assembled `tfft.training.session.Session`: its progress (fresh or resumed),
    steps per epoch, monitored metric, verbosity and the feature cache's shared cut.

    Example:
    >>> plan = plan_run(session)  # doctest: +SKIP
    >>> plan.steps, plan.monitor  # doctest: +SKIP
    (3, 'val_loss')
    """
    from tfft.data import steps_per_epoch
    from tfft.training import checkpoint

    cfg = session.cfg
    lists = split_lists(session.splits)
    progress = start_progress(session, lists, lists_digest(lists))
    steps = cfg.training.steps_per_epoch or steps_per_epoch(session.splits, "train", cfg.data.batch_size)
    val = session.asm.dataset("val", None) if session.has_val else None
    shared_cut = None
    if cfg.performance.cache_features != "off":
        shared_cut = cache_cut(session.model, session.resolved.spec,
                               session.resolved.phases[progress.state["phase"]:], cfg.schedule.bn)
    return Plan(phases=session.resolved.phases, steps=steps, val=val, monitor="val_loss" if session.has_val else "loss",
                verbose=verbosity(cfg.training.verbose), shared_cut=shared_cut,
                last=session.source / checkpoint.LAST, progress=progress)

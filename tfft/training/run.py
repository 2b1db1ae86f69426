"""`tfft.train`: one run from a config to a complete run directory.

`train` resolves the config and the run directory, then runs the lifecycle, each part a module:
set-up (`session.start_session`: folders, config.yaml, environment.json; `Session.assemble`: data
and model), plan (`plan.plan_run`: where the run starts, steps, the feature cache's cut), execute
(`execute.PhaseLoop`: per phase freezing, compile, `fit` with checkpoints after every epoch) and
finish (`finish.finish_run`: the best or last weights into `model.keras`, evaluation, plots, the
report). `train` turns a Ctrl-C, a full disk or an out-of-memory error into one line that says
how to continue.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Optional, Union

from tfft import layout
from tfft.config import Config, load_config
from tfft.errors import TrainingInterrupted, UserError
from tfft.data.decoded_cache import release as release_decoded_cache
from tfft.runs import directory as rundir
from tfft.runs.resume import check_resumable
from tfft.training import process_state
from tfft.training.assembly import ResolvedRun, resolve
from tfft.training.execute import PhaseLoop
from tfft.training.finish import finish_run
from tfft.training.plan import plan_run
from tfft.training.preflight import check_config
from tfft.training.session import start_session

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
    else:  # a multi-worker non-chief: it writes to a temporary folder (see session.start_session), reads nothing
        path = Path(run_dir) if run_dir else Path(cfg.training.runs_dir) / cfg.name
    if resume:
        check_resumable(load_config(path / layout.CONFIG), cfg)
    command = f"tfft train {path / layout.CONFIG} --run-dir {path} --resume"
    made = rundir.folders_to_make(path) if distribute.is_chief_task() and not resume else None
    try:
        return _run(resolved, strategy, path, resume, list(callbacks or []), feature_store)
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


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _run(resolved: ResolvedRun, strategy: Any, path: Path, resume: bool, callbacks: list[Any],
         feature_store: Optional[Any] = None) -> TrainResult:
    """The run's lifecycle: set-up, then under the run's log and process state: assemble, plan,
    execute (the phase loop), finish (model.keras, evaluation, report)."""
    started = time.time()
    session = start_session(resolved, strategy, path, resume)
    cfg = session.cfg
    with process_state.run_log(session.path / layout.RUN_LOG), \
            process_state.run_state(cfg.seed, cfg.training.deterministic, session.precision):
        try:
            session.assemble()
            plan = plan_run(session)
            loop = PhaseLoop(session, plan, callbacks, feature_store)
            loop.run()
            metrics = finish_run(session, plan.progress, loop.val_features)
        finally:  # the decoded images live for one run: a later run in this process decodes afresh
            release_decoded_cache()
    print(f"trained in {time.time() - started:.0f} s")
    return TrainResult(session.path, metrics, plan.progress.history, plan.progress.phase_rows)

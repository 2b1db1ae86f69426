"""`tfft tune`: hyperparameter search over a config with Optuna, on one machine or many.

A study is a config, a search space (`tfft.studies.space`), an objective (the val metric of
each trial's run, `metrics.json`) and an Optuna storage that holds every trial. Each process
that runs `tune` with the same storage and study name works on the same study:

* **N is the study's total.** A trial counts as finished when it COMPLETEs, is PRUNED, or FAILs
  because training diverged (NaN/Inf loss: a real outcome of those parameters). Trials that
  stopped on a user's mistake, a fault, Ctrl-C or a killed process (found by Optuna's heartbeat)
  do not count, so the study runs a replacement. A process starts a trial only while the
  finished plus running trials are fewer than N; when two processes start the last slot at
  once, the trial with the higher number sees it is surplus, is closed as FAIL with the user
  attribute `tfft.surplus` before it samples anything (it never appears in trials.csv), and the
  process waits. Every process returns once N trials have finished, so all of them write the
  same `trials.csv`. Running the command again with a larger N continues the study.
* **Sampling** is Optuna's TPE (with `constant_liar`, so parallel trials spread out), seeded per
  trial by `(config seed, trial number)`: a study's trials do not depend on which process ran
  them, and two processes never draw the same start-up points. Parameters equal to a completed
  trial's are not trained again: its value is reused (`tfft.duplicate_of`).
* **Pruning** (Optuna's median pruner by default) reads a per-epoch val metric through a
  `train(callbacks=...)` callback and stops a hopeless trial at the end of an epoch: the one the
  Task logs for the objective (`Task.epoch_metric`: `val_accuracy` for macro_f1, `val_auc` for a
  multi-label mAP). The objective defaults to the Task's (`accuracy`; `mAP` for multi-label).
* **Trials run in this process**, one after another, each a complete `tfft.train` run under
  `DIR/trials/trial-NNNN/` (its console output in `train.log` there); between trials the Keras
  session is cleared and the global dtype policy restored. A `FeatureStore` shared by the
  trials keeps the frozen backbone's features, so a head-only search computes them once.

Outputs in DIR: `trials.csv`, `best_config.yaml` (the best completed trial's complete config),
`tune.png`, and `study.db` when the storage is the default sqlite file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from tfft.config import Config, load_config
from tfft.errors import TrainingDiverged, TrainingInterrupted, UserError
from tfft.wording import plural
from tfft.studies.space import Param, apply_params, check_space, load_space
from tfft.studies.storage import HEARTBEAT_S, masked, open_storage
from tfft.studies.tune_plot import plot_study
from tfft.atomic import check_output, write_csv, write_text
from tfft.reporting.html import write_html_report

SURPLUS = "tfft.surplus"
DIVERGED = "tfft.diverged"
DUPLICATE_OF = "tfft.duplicate_of"
RUN_DIR = "tfft.run_dir"
TRIALS_CSV = "trials.csv"
BEST_CONFIG = "best_config.yaml"
TUNE_PNG = "tune.png"
STUDY_FILES = ("study.db", TRIALS_CSV, BEST_CONFIG, "trials")  # any of them: the folder of an earlier study
PLOT_EVERY_S = 120  # tune.png is redrawn at most this often while trials run, and at the end


@dataclasses.dataclass
class TuneResult:
    """What `tfft.tune` returns: where the study is and its best trial."""

    run_dir: Path
    study_name: str
    storage: str
    metric: str
    direction: str
    best_trial: Optional[int]
    best_value: Optional[float]
    best_params: dict[str, Any]
    best_config: Optional[Path]
    trials: list[dict[str, Any]]

    def __repr__(self) -> str:
        return (f"TuneResult(run_dir={str(self.run_dir)!r}, trials={len(self.trials)}, "
                f"best_trial={self.best_trial}, best_{self.metric}={self.best_value})")


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError("optuna", "tfft tune needs Optuna, which is not installed",
                        'pip install "tfft[tune]"') from None
    return optuna


def _check_resolvable(params: list[Param], cfg: Config) -> Any:
    """Past the schema: resolve (backbone, phases against its blocks) the base config and each
    dimension's extremes, as every run does before reading data, so no trial fails on them.
    Returns the base config's resolved run (its Task names the default objective)."""
    from tfft.training.assembly import resolve

    resolved = resolve(cfg)
    for param in params:
        for value in param.probes():
            try:
                resolve(apply_params(cfg, {param.key: value}))
            except UserError as exc:
                raise UserError(param.key, f"the search space's value {value!r} is refused ({exc.where}): "
                                f"{exc.message}", exc.hint) from None
    return resolved


def objective_of(metric: str) -> tuple[str, str]:
    """(the metrics.json key, `minimize` | `maximize`) of `--metric`: `val_loss` is minimised.

    Example:
    >>> objective_of("val_loss"), objective_of("accuracy")
    (('loss', 'minimize'), ('accuracy', 'maximize'))
    """
    name = str(metric).strip()
    name = name[len("val_"):] if name.startswith("val_") else name
    if not name:
        raise UserError("--metric", f"expected a metric name such as accuracy or val_loss, got {metric!r}")
    return name, ("minimize" if name == "loss" else "maximize")


def _counts(trial: Any, optuna: Any) -> bool:
    """A finished trial that counts towards N."""
    state = trial.state
    return state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) or (
        state == optuna.trial.TrialState.FAIL and DIVERGED in trial.user_attrs)


def _running(trial: Any, optuna: Any) -> bool:
    return trial.state == optuna.trial.TrialState.RUNNING and SURPLUS not in trial.user_attrs


def _study_terms(attrs: dict) -> dict | None:
    """The metric and space a study was started with, or None for a study no one has claimed yet
    (studies started by earlier versions kept them as two attributes)."""
    if "tfft.study" in attrs:
        return attrs["tfft.study"]
    if "tfft.metric" in attrs and "tfft.space" in attrs:
        return {"metric": attrs["tfft.metric"], "space": attrs["tfft.space"]}
    return None


def _open_study(optuna: Any, storage: Any, name: str, direction: str, metric: str, params: list[Param],
                pruner: Any) -> Any:
    """Open (or create) study `name`, refusing to continue it with another metric or space.

    The terms are one user attribute written in one transaction, so a process that opens the study
    while another is creating it reads both terms or neither. Two processes that both find it
    unclaimed may race to write it: the loser's insert fails on the attribute's unique key, and it
    reads the winner's terms instead."""
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, pruner=pruner,
                                load_if_exists=True)
    space = {p.key: p.to_dict() for p in params}
    terms = _study_terms(study.user_attrs)
    if terms is None:
        try:
            study.set_user_attr("tfft.study", {"metric": metric, "space": space})
        except optuna.exceptions.StorageInternalError:
            pass  # another process claimed it between our read and our write
        terms = _study_terms(study.user_attrs)
    if study.direction.name.lower() != direction or terms["metric"] != metric:
        raise UserError("--metric", f"study {name!r} optimises {terms['metric']!r} "
                        f"({study.direction.name.lower()}), not {metric!r}",
                        f"continue it with --metric {terms['metric']}, or start a new one with --study NAME")
    if yaml.safe_dump(terms["space"]) != yaml.safe_dump(space):
        raise UserError("--space", f"differs from the space study {name!r} was started with: "
                        f"{terms['space']}",
                        "continue it with that space, or start a new study with --study NAME")
    return study


def _pruner(optuna: Any, pruner: Any) -> Any:
    if pruner is None or pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner()
    if isinstance(pruner, str):
        raise UserError("--pruner", f"expected median or none, got {pruner!r}")
    return pruner


def _make_reporter(trial: Any, monitored: str, optuna: Any) -> Any:
    """A Keras callback that reports each epoch's `val_<monitored>` to the trial and prunes on its
    word (`monitored`: the Task's per-epoch stand-in for the objective, same direction)."""
    import keras

    class TrialReporter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            value = logs.get(f"val_{monitored}")
            self.epochs = epoch + 1
            if value is None or not math.isfinite(float(value)):
                return
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")

    return TrialReporter()


@contextlib.contextmanager
def _console_to(path: Optional[Path]):
    """Send a trial's console output to `path` (None: leave it on the console)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle, contextlib.redirect_stdout(handle):
        yield


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class _Study:
    """One process's part in a study (an object only to keep `tune` readable)."""

    def __init__(self, optuna: Any, study: Any, cfg: Config, params: list[Param], total: int, out: Path,
                 metric: str, direction: str, keep: Optional[int], sampler: Any, verbose: bool, poll_s: float,
                 monitored: str):
        from tfft.training.feature_cache import FeatureStore

        self.optuna = optuna
        self.study = study
        self.cfg = cfg
        self.params = params
        self.total = total
        self.out = out
        self.metric = metric
        self.monitored = monitored
        self.direction = direction
        self.keep = keep
        self.sampler = sampler
        self.verbose = verbose
        self.poll_s = poll_s
        self.store = FeatureStore()
        self.ran = 0
        self.surplus = False
        self.plotted = time.monotonic()

    # -- trial bookkeeping -------------------------------------------------------------------
    def _trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False)

    def finished(self) -> int:
        return sum(_counts(t, self.optuna) for t in self._trials())

    def _surplus(self, number: int) -> bool:
        """True when the trials numbered below `number` (finished or running) already fill N."""
        taken = sum(1 for t in self._trials() if t.number < number
                    and (_counts(t, self.optuna) or _running(t, self.optuna)))
        return taken >= self.total

    def _duplicate(self, trial: Any) -> Optional[Any]:
        for other in self._trials():
            if other.number != trial.number and other.params == trial.params and other.state in (
                    self.optuna.trial.TrialState.COMPLETE, self.optuna.trial.TrialState.PRUNED):
                return other
        return None

    def _seeded_sampler(self, number: int) -> Any:
        seed = (int(self.cfg.seed) * 1_000_003 + int(number)) % 2**32
        return self.optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    # -- one trial ---------------------------------------------------------------------------
    def objective(self, trial: Any) -> float:
        from tfft.training.run import train

        if self._surplus(trial.number):
            trial.set_user_attr(SURPLUS, True)
            self.surplus = True
            raise _Skip()
        if self.sampler is None:
            trial.study.sampler = self._seeded_sampler(trial.number)
        values = {p.key: p.to_config(p.suggest(trial)) for p in self.params}
        same = self._duplicate(trial)
        if same is not None:
            trial.set_user_attr(DUPLICATE_OF, same.number)
            if same.state == self.optuna.trial.TrialState.PRUNED:
                raise self.optuna.TrialPruned(f"same parameters as trial {same.number}, which was pruned")
            return float(same.value)
        trial_cfg = apply_params(self.cfg, values)
        run_dir = self.out / "trials" / f"trial-{trial.number:04d}"
        if run_dir.exists():  # left by an earlier study of the same name in this folder
            shutil.rmtree(run_dir)
        trial.set_user_attr(RUN_DIR, str(run_dir))
        reporter = _make_reporter(trial, self.monitored, self.optuna)
        self.ran += 1
        try:
            with _trial_scope(None if self.verbose else run_dir / "train.log"):
                result = train(trial_cfg, run_dir=str(run_dir), callbacks=[reporter], feature_store=self.store)
        except TrainingDiverged as exc:
            trial.set_user_attr(DIVERGED, exc.message)
            raise _Skip() from None
        val = result.metrics.get("val")
        if not val:
            raise UserError("data.val_split", "tfft tune needs a validation split to score trials",
                            "set data.val_split (e.g. 0.2) or add a val/ folder")
        value = val.get(self.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            names = sorted(k for k, v in val.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            raise UserError("--metric", f"{self.metric!r} is not a number in metrics.json's val section",
                            f"choose one of {', '.join(names)}")
        if not math.isfinite(float(value)):
            trial.set_user_attr(DIVERGED, f"val {self.metric} is {value}")
            raise _Skip()
        return float(value)

    def after_trial(self, study: Any, trial: Any) -> None:
        """Optuna's callback after each of this process's trials: a progress line, the outputs."""
        if SURPLUS in trial.user_attrs:
            return
        TrialState = self.optuna.trial.TrialState
        trials = self._trials()
        done = sum(_counts(t, self.optuna) for t in trials)
        best = _best(trials, self.optuna, self.direction)
        head = f"trial {trial.number} [{done}/{self.total}]: "
        if trial.state == TrialState.COMPLETE:
            head += f"{self.metric} {trial.value:.4f}"
            if DUPLICATE_OF in trial.user_attrs:
                head += f" (same parameters as trial {trial.user_attrs[DUPLICATE_OF]})"
        elif trial.state == TrialState.PRUNED:
            last = trial.last_step
            head += f"pruned after epoch {last + 1}" if last is not None else "pruned"
            if trial.value is not None:
                head += f" ({self.metric} {trial.value:.4f})"
        else:
            head += f"failed: {trial.user_attrs.get(DIVERGED, 'see the error above')}"
        if best is not None:
            head += f" | best {best.value:.4f} (trial {best.number})"
        params = " ".join(f"{k}={_format(v)}" for k, v in trial.params.items())
        seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
        print(f"{head} | {params} | {seconds:.0f} s", flush=True)
        self.write_outputs(plot=time.monotonic() - self.plotted > PLOT_EVERY_S)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        waiting = False
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.optuna.storages.fail_stale_trials(self.study)
            trials = self._trials()
            done = sum(_counts(t, self.optuna) for t in trials)
            running = sum(_running(t, self.optuna) for t in trials)
            if done >= self.total:
                return
            if done + running >= self.total:
                if not waiting:
                    print(f"waiting for {plural(running, 'trial')} running in other processes "
                          f"({done}/{self.total} finished)", flush=True)
                    waiting = True
                time.sleep(self.poll_s)
                continue
            waiting = False
            self.surplus = False
            self.study.optimize(self.objective, n_trials=1, catch=(_Skip,), callbacks=[self.after_trial])
            if self.surplus:  # another process took the last slot first: wait for it
                time.sleep(self.poll_s)

    # -- outputs -----------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        TrialState = self.optuna.trial.TrialState
        rows = []
        for t in self._trials():
            if SURPLUS in t.user_attrs or t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
                continue
            row = {"number": t.number, "value": "" if t.value is None else t.value, "state": t.state.name}
            row.update({p.key: t.params.get(p.key, "") for p in self.params})
            rows.append(row)
        return rows

    def write_outputs(self, plot: bool = True) -> Optional[Path]:
        """trials.csv and best_config.yaml (after every trial), tune.png (when `plot`), --keep."""
        trials = self._trials()
        write_csv(self.out / TRIALS_CSV, self.rows(), ["number", "value", "state"] + [p.key for p in self.params])
        best = _best(trials, self.optuna, self.direction)
        path = None
        if best is not None:
            cfg = apply_params(self.cfg, {p.key: p.to_config(best.params[p.key]) for p in self.params})
            path = self.out / BEST_CONFIG
            write_text(path, f"# tfft tune: trial {best.number} of study {self.study.study_name!r}, "
                             f"val {self.metric} {best.value:.6g}\n" + cfg.to_yaml())
        if plot:
            plot_study(trials, self.params, self.metric, self.direction, self.out / TUNE_PNG, self.optuna)
            self.plotted = time.monotonic()
        if self.keep is not None:
            self._prune_run_dirs(trials)
        return path

    def _prune_run_dirs(self, trials: list[Any]) -> None:
        """Delete the run directories of finished trials outside the best `keep`."""
        TrialState = self.optuna.trial.TrialState
        complete = [t for t in trials if t.state == TrialState.COMPLETE and DUPLICATE_OF not in t.user_attrs]
        complete.sort(key=lambda t: t.value, reverse=self.direction == "maximize")
        kept = {t.number for t in complete[:self.keep]}
        for t in trials:
            if t.state.is_finished() and t.number not in kept and RUN_DIR in t.user_attrs:
                path = Path(t.user_attrs[RUN_DIR])
                if path.parent == self.out / "trials" and path.exists():
                    shutil.rmtree(path, ignore_errors=True)


class _Skip(Exception):
    """Ends a trial as FAIL and goes on (a surplus slot, or training that diverged)."""


def _best(trials: list[Any], optuna: Any, direction: str) -> Optional[Any]:
    """The best COMPLETE trial (the lowest number among equals)."""
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    return min(complete, key=lambda t: (sign * t.value, t.number))


@contextlib.contextmanager
def _trial_scope(log: Optional[Path]):
    """Around one trial: its console output to `log` (None: the console), TensorFlow's retracing
    warnings (many models in one process) silenced; afterwards the Keras session cleared and the
    global dtype policy and log level restored."""
    import keras
    import tensorflow as tf

    policy = keras.mixed_precision.global_policy()
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        with _console_to(log):
            yield
    finally:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy(policy)
        logger.setLevel(level)


def tune(
    config: Union[Config, dict, str, os.PathLike, None],
    space: Union[str, os.PathLike, dict],
    trials: int,
    storage: Optional[str] = None,
    study: Optional[str] = None,
    run_dir: Optional[Union[str, os.PathLike]] = None,
    metric: Optional[str] = None,
    keep: Optional[int] = None,
    pruner: Any = "median",
    sampler: Any = None,
    verbose: bool = False,
    poll_seconds: float = 2.0,
    heartbeat: Optional[int] = None,
) -> TuneResult:
    """Search `space` around `config` until the study holds `trials` finished trials.

    Args:
        config: the base config (a `Config`, dict, YAML path or text); every trial is this
            config with the space's keys set.
        space: SPACE.yaml (a path, YAML text or a dict): dotted keys to `uniform`,
            `log_uniform`, `int` or `choice` (see `tfft.studies.space`).
        trials: N, the study's total of finished trials over every process that shares it.
        storage: an Optuna storage URL (`sqlite:///...`, `postgresql://...`, `mysql://...`);
            default `sqlite:///DIR/study.db`. tfft prints it with its password masked.
        study: the study's name in the storage (default: the config's `name`).
        run_dir: DIR, where the outputs go (default `runs/NAME-tune`, not numbered, so that
            running again continues the study).
        metric: a key of metrics.json's `val` section (`accuracy`, `loss`, `macro_f1`; `mAP`,
            `micro_f1` for multi-label; a `val_` prefix is allowed). `loss` is minimised, the
            others maximised. None: the Task's default (`accuracy`; `mAP` for multi-label).
        keep: keep only the run directories of the best `keep` completed trials.
        pruner: `median` (Optuna's MedianPruner), `none`, or an `optuna.pruners` object.
        sampler: None (TPE seeded per trial by the config's seed and the trial number) or an
            `optuna.samplers` object.
        verbose: show each trial's training output instead of writing it to its `train.log`.
        poll_seconds: how often a process waiting for other processes' trials looks again.
        heartbeat: seconds between a running trial's heartbeats in the storage; the trial of a
            process that stopped beating (killed, its machine lost) is failed 2 x this later, and
            a new trial replaces it. None: `HEARTBEAT_S` (30).

    Returns:
        A `TuneResult`: `run_dir`, `best_trial`, `best_value`, `best_params`, `best_config`
        (the path of best_config.yaml), `trials` (the rows of trials.csv), `storage` (the URL as
        given, for `optuna.load_study`; its repr leaves it out).

    Raises:
        UserError: a bad space (before any trial), a trial's config refused, a missing Optuna.

    Example:
    >>> result = tfft.tune("configs/quickstart.yaml",
    ...                    {"schedule.lr": {"log_uniform": [1e-4, 1e-2]},
    ...                     "model.dropout": {"uniform": [0.0, 0.5]}}, trials=20)  # doctest: +SKIP
    >>> result.best_value, result.best_config  # doctest: +SKIP
    """
    optuna = _require_optuna()
    cfg = load_config(config)
    params = load_space(space)
    check_space(params, cfg)
    resolved = _check_resolvable(params, cfg)
    heartbeat = _checked_counts(trials, keep, heartbeat)
    metric_name, direction = objective_of(resolved.task.default_metric if metric is None else metric)
    monitored = resolved.task.epoch_metric(metric_name)
    out = _study_folder(cfg, run_dir)
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    name = study or cfg.name
    with _optuna_quiet(optuna):  # tfft prints one line per trial itself
        opened = _open_study(optuna, open_storage(optuna, url, heartbeat), name, direction, metric_name, params,
                             _pruner(optuna, pruner))
        if sampler is not None:
            opened.sampler = sampler
        runner = _Study(optuna, opened, cfg, params, trials, out, metric_name, direction, keep, sampler,
                        verbose, poll_seconds, monitored)
        _announce(runner, resolved, name, url)
        best_config = _run_to_the_end(runner)
    return _summary(runner, name, url, best_config)


def _checked_counts(trials: Any, keep: Any, heartbeat: Any) -> int:
    """Check `tune`'s counts as a user typed them; returns the heartbeat in seconds."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise UserError("--trials", f"expected a positive number of trials, got {trials!r}", "e.g. --trials 20")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
        raise UserError("--keep", f"expected a number of run directories >= 0, got {keep!r}")
    heartbeat = HEARTBEAT_S if heartbeat is None else heartbeat
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 1:
        raise UserError("--heartbeat", f"expected a whole number of seconds >= 1, got {heartbeat!r}",
                        f"e.g. --heartbeat {HEARTBEAT_S}")
    return heartbeat


def _study_folder(cfg: Config, run_dir: Optional[Union[str, os.PathLike]]) -> Path:
    """DIR, made: new or empty, or an earlier study's folder (to continue it)."""
    out = Path(run_dir) if run_dir is not None else Path(cfg.training.runs_dir) / f"{cfg.name}-tune"
    if not any((out / name).exists() for name in STUDY_FILES):  # not an earlier study's folder, to continue
        out = check_output(out, option="--run-dir", hint="choose a new or empty --run-dir, or an earlier study's "
                           "folder to continue it")
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def _optuna_quiet(optuna: Any):
    """Optuna's own logging at ERROR inside, restored after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _announce(runner: _Study, resolved: Any, name: str, url: str) -> None:
    """The study's first lines: where it is, how far, what it optimises over which space, its cost."""
    from tfft.studies.cost import study_cost

    trials, params = runner.total, runner.params
    print(f"tune: study {name!r} in {masked(url)}: {runner.finished()}/{trials} trials finished, "
          f"val {runner.metric} ({'minimised' if runner.direction == 'minimize' else 'maximised'}; pruned on "
          f"val_{runner.monitored} per epoch); space: "
          + "; ".join(p.describe() for p in params), flush=True)
    cost = study_cost(resolved, max(0, trials - runner.finished()), "trial", [p.key for p in params])
    print(f"tune: expected cost: {cost} (pruned trials stop early)", flush=True)


def _run_to_the_end(runner: _Study) -> Optional[Path]:
    """Run trials until the study holds N; write the outputs (on Ctrl-C too) and report.html."""
    try:
        runner.run()
    except TrainingInterrupted:
        runner.write_outputs()
        raise TrainingInterrupted(str(runner.out), "the same tfft tune command (the interrupted trial is "
                                                   "replaced by a new one)") from None
    best_config = runner.write_outputs()
    write_html_report(runner.out)
    return best_config


def _summary(runner: _Study, name: str, url: str, best_config: Optional[Path]) -> TuneResult:
    """Print the study's last lines and return its `TuneResult`."""
    best = _best(runner._trials(), runner.optuna, runner.direction)  # noqa: SLF001 - this module's runner
    rows = runner.rows()
    print(f"tune: {runner.finished()}/{runner.total} trials finished, {runner.ran} trained by this process")
    if best is not None:
        print(f"best: trial {best.number}, val {runner.metric} {best.value:.4f}: "
              + " ".join(f"{k}={_format(v)}" for k, v in best.params.items()))
    return TuneResult(runner.out, name, url, runner.metric, runner.direction, None if best is None else best.number,
                      None if best is None else float(best.value),
                      {} if best is None else {p.key: p.to_config(best.params[p.key]) for p in runner.params},
                      best_config, rows)

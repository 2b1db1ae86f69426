"""`tfft.cv`: stratified, grouped K-fold cross-validation of one config.

The source's train+val images are pooled (a test split stays untouched) and split into K folds,
stratified by class and seeded by the config's `seed`; multi-label data is stratified per label
(iterative stratification, `tfft.data.stratify.iterative_kfold`). Images with the same or nearly the same
content (exact byte copies, resized or re-encoded copies: `tfft.studies.duplicates`) form one
group, and a group never spans two folds, so no fold is validated on a copy of its training data.

Each fold is an ordinary `tfft.train` run in `DIR/fold-k/`: its config is the given one with
`data.fold_file: DIR/folds.csv` and `data.fold: k`, which the data layer reads to make fold k the
validation split (so `tfft train DIR/fold-k/config.yaml` repeats the fold). Frozen phases share
their backbone features across folds through the persistent feature store
(`performance.feature_store`), so K folds of a head-only schedule cost little more than one run.

`DIR/` holds `config.yaml`, `folds.csv` (`path,label,fold,group`), `fold-1/` ... `fold-K/`,
`cv_summary.json`, `oof_predictions.csv` (every train+val image once, predicted by the fold that
did not train on it; its arrays beside it in `oof_predictions.npz`, `tfft.studies.oof`), `label_issues.csv` (ranked from those predictions) and `cv.png`.

What depends on the task is the task's (`tfft.task`): the summary's metrics (`Task.headline` and
the loss), the pooled out-of-fold table (`Task.metrics_table`, each image decided at the
thresholds of the fold that made it when the task has thresholds) and `label_issues.csv`
(`Task.write_label_issues`: confident learning, or per-label out-of-fold disagreement). Multi-label
data: `label` and `predicted` cells hold label sets joined by spaces.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from tfft import layout
from tfft.atomic import check_output, write_csv, write_json, write_text
from tfft.config import Config, load_config
from tfft.errors import TrainingInterrupted, UserError
from tfft.reporting.html import write_html_report
from tfft.studies.oof import label_cell as _label_cell
from tfft.studies.oof import read_predictions
from tfft.studies.oof import write_predictions as _write_predictions
from tfft.task import AUTO, data_labels, task_for
from tfft.wording import plural

FOLDS_FILE = "folds.csv"
SUMMARY_FILE = "cv_summary.json"
OOF_FILE = "oof_predictions.csv"
LABEL_ISSUES_FILE = "label_issues.csv"
PLOT_FILE = "cv.png"
FOLD_PREDICTIONS = "val_predictions.csv"  # in each fold-k/: that fold's share of the OOF file
def summary_metrics(task: str) -> tuple[str, ...]:
    """The metrics.json keys a cv summary reports for `task` (a registered task's name).

    Example:
    >>> summary_metrics("single_label")
    ('accuracy', 'macro_f1', 'loss')
    """
    return task_for(task).summary_metrics()


@dataclasses.dataclass
class CVResult:
    """What `tfft.cv` returns: where the study is and its summary (`cv_summary.json`)."""

    run_dir: Path
    summary: dict[str, Any]
    fold_dirs: list[Path]
    ensemble_dir: Optional[Path] = None

    def __repr__(self) -> str:
        name, first = next(iter(self.summary["metrics"].items()))
        return (f"CVResult(run_dir={str(self.run_dir)!r}, folds={self.summary['folds']}, "
                f"{name}={first['mean']:.4f}±{first['std']:.4f})")


# -- folds -------------------------------------------------------------------------------------


def assign_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold (1..K) for every example: stratified by label, each group within one fold.

    Groups are placed largest first (ties in a seeded random order), each into the fold where it
    brings the per-class counts closest to their targets (`class total / K`), ties to the fold
    with fewest examples. Without duplicates every class is split as evenly as possible (fold
    sizes per class differ by at most one).

    Args:
        labels: int [N] class indices.
        groups: int [N] group ids (near-duplicate clusters; all distinct when there are none).
        folds: K >= 2.
        seed: the order in which equal groups are placed.

    Returns:
        int64 [N] folds, 1..K.

    Example:
    >>> assign_folds(np.array([0, 0, 0, 0, 1, 1]), np.arange(6), 2, seed=0).tolist()
    [1, 2, 1, 2, 1, 2]
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    unique, group_index = np.unique(groups, return_inverse=True)
    # Each group's class counts, sparse: (group, class) cells sorted by group, `starts` per group
    # (not a groups x classes matrix: that is 800 MB at 100k images and 1000 classes).
    cells, cell_counts = np.unique(group_index * max(num_classes, 1) + labels, return_counts=True)
    cell_group, cell_class = cells // max(num_classes, 1), cells % max(num_classes, 1)
    starts = np.searchsorted(cell_group, np.arange(len(unique) + 1))
    totals = np.bincount(labels, minlength=num_classes).astype(np.float64)
    target = totals / folds
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xC5])
    shuffled = rng.permutation(len(unique))
    # Largest groups first; among equal sizes, the rarest class first, then the seeded order.
    share = cell_counts / np.maximum(totals, 1)[cell_class]
    rarity = np.maximum.reduceat(share, starts[:-1]) if len(cells) else np.zeros(0)
    sizes = np.bincount(group_index, minlength=len(unique)).astype(np.float64)
    order = shuffled[np.lexsort((-rarity[shuffled], -sizes[shuffled]))]
    per_fold = np.zeros((folds, num_classes))
    chosen = np.zeros(len(unique), dtype=np.int64)
    scale = np.maximum(target, 1e-9)
    row = np.zeros(num_classes)
    for g in order:
        row[:] = 0.0
        row[cell_class[starts[g]:starts[g + 1]]] = cell_counts[starts[g]:starts[g + 1]]
        after = per_fold + row
        cost = (((after - target) / scale) ** 2).sum(axis=1) - (((per_fold - target) / scale) ** 2).sum(axis=1)
        best = np.lexsort((np.arange(folds), per_fold.sum(axis=1), np.round(cost, 9)))[0]
        chosen[g] = best
        per_fold[best] += row
    return chosen[group_index] + 1


@dataclasses.dataclass
class FoldPlan:
    """The pooled train+val examples and their folds (what `DIR/folds.csv` holds)."""

    keys: list[str]
    labels: np.ndarray
    groups: np.ndarray
    folds: np.ndarray
    class_names: list[str]
    duplicate_pairs: dict[str, int]
    has_test: bool
    task: str = "single_label"  # a registered task; its `multi_hot`: `labels` is int [N, C]

    @property
    def num_groups(self) -> int:
        return int(len(np.unique(self.groups)))


def _duplicate_groups(pool: Any, keys: list[str], source: Optional[str] = None) -> tuple[np.ndarray, dict[str, int]]:
    if pool.kind != "files":  # generated images: no files to compare
        return np.arange(len(keys)), {}
    from tfft.studies import duplicates

    pairs = duplicates.find_duplicates(keys, source=source)  # hashes kept in the source's scan index
    kinds: dict[str, int] = {}
    for pair in pairs:
        kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
    return np.asarray(duplicates.groups(keys, pairs), dtype=np.int64), kinds


def plan_folds(cfg: Config, folds: int) -> FoldPlan:
    """Pool the source's train+val images, find near-duplicate groups and assign K folds.

    Single-label folds come from `assign_folds`; multi-label folds from iterative stratification
    per label (`tfft.data.stratify.iterative_kfold`, near-duplicate groups dealt out whole).

    Raises:
        UserError: `folds` < 2, or a class (a label) with fewer train+val images than folds.
    """
    from tfft import data
    from tfft.data.sources import example_keys, pooled
    from tfft.data.stratify import iterative_kfold

    check_folds(folds)
    splits = data.load_splits(cfg.data, cfg.seed, task=data_labels(cfg.task))
    multi = splits.multi_label  # the data's label format: multi-hot rows are stratified per label
    pool = pooled(splits)
    keys = example_keys(pool)
    labels = np.asarray(pool.labels, dtype=np.int64)
    counts = labels.sum(axis=0) if multi else np.bincount(labels, minlength=len(splits.class_names))
    what = "label" if multi else "class"
    for name, n in zip(splits.class_names, counts):
        if n < folds:
            raise UserError("--folds", f"{folds} folds, but {what} {name!r} has only {plural(int(n), 'train+val image')}",
                            f"use --folds {max(2, int(n))} or fewer, or add images to {name!r}")
    print(f"cv: {plural(len(keys), 'train+val image')}, {plural(len(splits.class_names), what)}; "
          "looking for near-duplicates")
    groups, kinds = _duplicate_groups(pool, keys, cfg.data.source)
    if multi:
        fold_of = iterative_kfold(labels, folds, cfg.seed, groups=groups) + 1
    else:
        fold_of = assign_folds(labels, groups, folds, cfg.seed)
    plan = FoldPlan(keys, labels, groups, fold_of, list(splits.class_names), kinds,
                    "test" in splits.splits and len(splits.splits["test"]) > 0,
                    splits.task if cfg.task == AUTO else cfg.task)
    holders = (lambda c: labels[:, c] > 0) if multi else (lambda c: labels == c)
    short = [name for c, name in enumerate(plan.class_names)
             if len(set(fold_of[holders(c)].tolist())) < folds]
    found = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) or "none"
    print(f"cv: near-duplicate pairs: {found}; {plan.num_groups} groups kept whole, {folds} folds of "
          + "/".join(str(int((fold_of == k).sum())) for k in range(1, folds + 1)) + " images")
    if short:
        print(f"warning: {plural(len(short), 'class').split(' ', 1)[1]} {short} {'is' if len(short) == 1 else 'are'} in fewer than {folds} folds (their near-duplicate groups are "
              "large); those folds validate without them")
    return plan


def check_folds(folds: Any) -> None:
    """Refuse a `--folds` that is not an integer of at least 2."""
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 2:
        raise UserError("--folds", f"expected an integer of at least 2, got {folds!r}",
                        "cross-validation needs 2 or more folds; 5 is usual")


def _write_plan(path: Path, plan: FoldPlan) -> None:
    rows = [{"path": k, "label": _label_cell(y, plan.class_names), "fold": int(f), "group": int(g)}
            for k, y, f, g in zip(plan.keys, plan.labels, plan.folds, plan.groups)]
    write_csv(path, rows, ("path", "label", "fold", "group"))


def _read_plan(path: Path) -> dict[str, Any]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {"keys": [r["path"] for r in rows], "labels": [r["label"] for r in rows],
            "folds": np.asarray([int(r["fold"]) for r in rows]),
            "groups": np.asarray([int(r["group"]) for r in rows])}


# -- the study ---------------------------------------------------------------------------------


def _choose_dir(cfg: Config, run_dir: Optional[str], resume: bool) -> Path:
    root = Path(cfg.training.runs_dir)
    if run_dir is None:
        candidates = sorted(root.glob(f"{cfg.name}-cv*"), key=lambda p: p.stat().st_mtime)
        if resume:
            unfinished = [p for p in candidates if (p / FOLDS_FILE).exists() and not (p / SUMMARY_FILE).exists()]
            if not unfinished:
                raise UserError(str(root / f"{cfg.name}-cv"), "no unfinished cross-validation to resume",
                                "pass --run-dir DIR of the study, or drop --resume")
            return unfinished[-1]
        path, number = root / f"{cfg.name}-cv", 1
        while path.exists() and any(path.iterdir()):
            number += 1
            path = root / f"{cfg.name}-cv-{number}"
        return path
    path = Path(run_dir)
    if resume:
        if not (path / FOLDS_FILE).exists():
            raise UserError(str(path), f"nothing to resume here (no {FOLDS_FILE})", "drop --resume to start a new cv")
        return path
    if (path / SUMMARY_FILE).exists():
        raise UserError(str(path), "already holds a finished cross-validation", "choose another --run-dir")
    if (path / FOLDS_FILE).exists():
        raise UserError(str(path), "holds an unfinished cross-validation",
                        "pass --resume to finish it, or choose another --run-dir")
    return check_output(path, option="--run-dir", hint="choose a new or empty --run-dir")


def fold_config(cfg: Config, folds_file: Path, fold: int) -> Config:
    """The config of fold `fold`: `cfg` with `data.fold_file`, `data.fold` and `name` set."""
    raw = cfg.to_dict()
    raw["name"] = f"{cfg.name}-fold{fold}"
    raw["data"]["fold_file"] = str(folds_file.resolve())
    raw["data"]["fold"] = int(fold)
    return load_config(raw)


def cv(config: Union[Config, dict, str, None] = None, folds: int = 5, run_dir: Optional[str] = None,
       resume: bool = False, ensemble: bool = False) -> CVResult:
    """K-fold cross-validation: K ordinary runs, one summary, out-of-fold predictions.

    Args:
        config: a `Config`, dict or YAML path/text (see `tfft.load_config`).
        folds: K >= 2; every class needs at least K train+val images.
        run_dir: the study's folder (default `runs/NAME-cv`, numbered when taken).
        resume: finish the unfinished study in `run_dir` (or the newest unfinished
            `runs/NAME-cv*`): finished folds are kept, an interrupted fold resumes from its
            checkpoint, the rest run.
        ensemble: also average the K fold models into `DIR/ensemble/` (`tfft.ensemble`), scored on
            the test split; without one it is refused before any fold trains.

    Returns:
        A `CVResult` with `run_dir`, `summary` (the content of `cv_summary.json`), `fold_dirs`.

    Example:
    >>> result = cv("configs/quickstart.yaml", folds=5)  # doctest: +SKIP
    >>> result.summary["metrics"]["accuracy"]["mean"]  # doctest: +SKIP
    0.93
    """
    from tfft.studies.cost import study_cost
    from tfft.training.assembly import resolve

    resolved = resolve(config)  # every config mistake surfaces here, before any image is read
    cfg = resolved.config
    check_folds(folds)
    if cfg.data.fold_file is not None:
        raise UserError("data.fold_file", "is set: this config is already one fold of a cross-validation",
                        "run cv on the original config, without data.fold_file and data.fold")
    if ensemble:
        _ensemble_available()
        _check_ensemble_has_test(cfg)
    print(f"cv: expected cost: {study_cost(resolved, folds, 'fold')}", flush=True)
    path = _choose_dir(cfg, run_dir, resume)
    folds_file = path / FOLDS_FILE
    command = f"tfft cv {path / layout.CONFIG} --folds {folds} --run-dir {path} --resume"
    if resume:
        from tfft.runs.resume import check_resumable

        check_resumable(load_config(path / layout.CONFIG), cfg)
        saved = _read_plan(folds_file)
        if int(saved["folds"].max()) != folds:
            raise UserError("--folds", f"the cross-validation in {path} has {int(saved['folds'].max())} folds, "
                            f"got --folds {folds}", f"resume with --folds {int(saved['folds'].max())}")
        print(f"cv: resuming {path}")
    else:
        plan = plan_folds(cfg, folds)
        path.mkdir(parents=True, exist_ok=True)
        write_text(path / layout.CONFIG, cfg.to_yaml())
        write_json(path / "cv_plan.json", {"folds": folds, "groups": plan.num_groups, "task": plan.task,
                                           "duplicate_pairs": plan.duplicate_pairs, "has_test": plan.has_test})
        _write_plan(folds_file, plan)  # last: its presence marks a study that can be resumed
    started = time.time()
    fold_dirs, seconds = [], []
    try:
        for k in range(1, folds + 1):
            fold_dirs.append(path / f"fold-{k}")
            seconds.append(_run_fold(cfg, folds_file, k, folds, fold_dirs[-1]))
            if seconds[-1] is not None and k < folds and all(s is None for s in seconds[:-1]):
                print(f"cv: fold {k} took {seconds[-1]:.0f} s; {plural(folds - k, 'more fold')}, roughly "
                      f"{(folds - k) * seconds[-1]:.0f} s (less where they read the features this one stored)",
                      flush=True)
    except KeyboardInterrupt:
        raise TrainingInterrupted(str(path), command) from None
    except TrainingInterrupted:
        raise TrainingInterrupted(str(path), command) from None
    summary = _summarize(cfg, path, fold_dirs, seconds, time.time() - started)
    ensemble_dir = None
    if ensemble:
        ensemble_dir, summary["ensemble"] = _ensemble(path, fold_dirs, summary_metrics(summary["task"]))
        write_json(path / SUMMARY_FILE, summary)
    write_html_report(path)
    return CVResult(path, summary, fold_dirs, ensemble_dir)


def _run_fold(cfg: Config, folds_file: Path, k: int, folds: int, fold_dir: Path) -> Optional[float]:
    """Train fold k (or finish it) and write its share of the OOF predictions; the seconds it took."""
    from tfft.training.run import train

    if layout.is_finished(fold_dir) and (fold_dir / FOLD_PREDICTIONS).exists():
        print(f"cv: fold {k}/{folds} already finished ({fold_dir})")
        return None
    started = time.time()
    fold_cfg = fold_config(cfg, folds_file, k)
    if not layout.is_finished(fold_dir):
        import keras

        again = layout.has_checkpoint(fold_dir)
        print(f"cv: fold {k}/{folds}" + (" (resuming)" if again else ""), flush=True)
        # Each fold starts as in a fresh process: the previous folds' graphs freed, layer names (which
        # a checkpoint's variable paths hold) counted from scratch, so a fold resumes in any process.
        keras.backend.clear_session()
        train(fold_cfg, run_dir=str(fold_dir), resume=again)
    _predict_fold(fold_cfg, fold_dir, k)
    return time.time() - started


def _predict_fold(fold_cfg: Config, fold_dir: Path, k: int) -> None:
    """fold-k/val_predictions.csv: the fold's model.keras on its held-out images.

    When the backbone stayed frozen, the features of those images are in the feature store (the
    fold's training computed or read them), so only the head runs; the store is read, never written.
    """
    from tfft import data
    from tfft.backbones import load_saved_model
    from tfft.data.sources import example_keys
    from tfft.training import feature_cache, feature_store

    splits = data.load_splits(fold_cfg.data, fold_cfg.seed, task=data_labels(fold_cfg.task))
    model = load_saved_model(fold_dir / layout.MODEL, str(fold_dir / layout.MODEL),
                             "re-run `tfft cv`; the fold's model.keras must hold only built-in Keras layers")
    dataset = data.make_dataset(splits, "val", fold_cfg.data, seed=fold_cfg.seed, training=False)
    store = feature_store.open_store(fold_cfg.performance.feature_store, fold_cfg.performance.feature_store_max_gb)
    predict = model.predict_on_batch
    if store is not None and feature_cache.feature_size(model):
        features, head = feature_cache.split_model(model)
        stored = feature_store.StoredFeatures(store, features, features.predict_on_batch)
        predict = lambda images: head.predict_on_batch(stored(images))  # noqa: E731
    probs = np.concatenate([np.asarray(predict(images), np.float64) for images, _ in dataset])
    labels = np.asarray(splits["val"].labels)
    thresholds = None
    if task_for(fold_cfg.task).thresholded:
        from tfft.runs.thresholds import read_run_thresholds

        thresholds = read_run_thresholds(fold_dir, splits.class_names)
    _write_predictions(fold_dir / FOLD_PREDICTIONS, example_keys(splits["val"]), labels,
                       np.full(len(labels), k), probs, splits.class_names, thresholds)


# -- the summary -------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof 1) and the values of one metric over the folds."""
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    std = float(np.std(arr, ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(np.mean(arr)), "std": std, "per_fold": [float(v) for v in arr]}


def _summarize(cfg: Config, path: Path, fold_dirs: list[Path], seconds: list[Optional[float]],
               total: float) -> dict[str, Any]:
    import json

    plan = json.loads((path / "cv_plan.json").read_text(encoding="utf-8"))
    task = task_for(plan.get("task", "single_label"))
    names = task.summary_metrics() + tuple(task.also_summarised)
    per_fold = [json.loads((d / layout.METRICS).read_text(encoding="utf-8")) for d in fold_dirs]
    class_names = (fold_dirs[0] / layout.LABELS).read_text(encoding="utf-8").splitlines()
    val = [m["val"] for m in per_fold]
    summary: dict[str, Any] = {
        "folds": len(fold_dirs),
        "seed": cfg.seed,
        "task": task.name,
        "images": int(sum(m["num_examples"] for m in val)),
        "groups": plan["groups"],
        "duplicate_pairs": plan["duplicate_pairs"],
        "metrics": {name: _stats([m[name] for m in val]) for name in names},
        "fold_images": [int(m["num_examples"]) for m in val],
    }
    for key in task.per_class_summarised:
        summary[f"per_class_{key}"] = {c: _stats([m["per_class"][c][key] for m in val]) for c in class_names}
    if all("test" in m for m in per_fold):
        summary["test"] = {name: _stats([m["test"][name] for m in per_fold]) for name in names}
    # The out-of-fold file, in folds.csv order: every train+val image once.
    order = {key: i for i, key in enumerate(_read_plan(path / FOLDS_FILE)["keys"])}
    parts = [read_predictions(d / FOLD_PREDICTIONS, multi_label=task.multi_hot) for d in fold_dirs]
    keys = [key for part in parts for key in part["keys"]]
    if sorted(order) != sorted(keys):
        raise AssertionError(f"the folds predicted {len(keys)} images, folds.csv lists {len(order)}")
    rank = np.argsort([order[key] for key in keys], kind="stable")
    labels = np.concatenate([p["labels"] for p in parts])[rank]
    folds = np.concatenate([p["folds"] for p in parts])[rank]
    probs = np.concatenate([p["probs"] for p in parts])[rank]
    keys = [keys[i] for i in rank]
    cuts = None
    if task.thresholded:  # each image decided at the thresholds of the fold that predicted it
        from tfft.runs.thresholds import read_run_thresholds

        fold_cuts = np.stack([read_run_thresholds(d, class_names) for d in fold_dirs])
        cuts = fold_cuts[folds - 1]
        summary["thresholds"] = {d.name: dict(zip(class_names, map(float, t))) for d, t in zip(fold_dirs, fold_cuts)}
    _write_predictions(path / OOF_FILE, keys, labels, folds, probs, class_names, cuts)
    oof = task.metrics_table(labels, probs, class_names, thresholds=cuts,
                             top_k=min(cfg.evaluate.top_k, len(class_names)))
    summary["oof"] = {name: oof[name] for name in names}
    summary["seconds"] = {"total": round(total, 2),
                          "per_fold": [None if s is None else round(s, 2) for s in seconds]}
    summary["fold_dirs"] = [d.name for d in fold_dirs]
    task.write_label_issues(path / LABEL_ISSUES_FILE, keys, class_names, labels, probs, cuts)
    write_json(path / SUMMARY_FILE, summary)
    _plot(summary, path / PLOT_FILE)
    print(format_summary(summary))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The console table: one row a fold, then mean ± std, the pooled OOF row and the groups.

    Example:
    >>> print(format_summary(result.summary))  # doctest: +SKIP
    fold  images  accuracy  macro_f1    loss
       1     208    0.9327    0.9326  0.1875
    ...
    """
    metrics = summary["metrics"]
    names = list(summary_metrics(summary.get("task", "single_label")))
    lines = [f"{'fold':>4}  {'images':>6}  " + "  ".join(f"{m:>9}" for m in names)]
    for k in range(summary["folds"]):
        lines.append(f"{k + 1:>4}  {summary['fold_images'][k]:>6}  "
                     + "  ".join(f"{metrics[m]['per_fold'][k]:>9.4f}" for m in names))
    lines.append(f"{'mean':>4}  {summary['images']:>6}  "
                 + "  ".join(f"{metrics[m]['mean']:>9.4f}" for m in names))
    lines.append(f"{'std':>4}  {'':>6}  " + "  ".join(f"{metrics[m]['std']:>9.4f}" for m in names))
    lines.append(f"{'oof':>4}  {summary['images']:>6}  "
                 + "  ".join(f"{summary['oof'][m]:>9.4f}" for m in names))
    if "test" in summary:
        lines.append("test (mean over folds): " + ", ".join(
            f"{m} {summary['test'][m]['mean']:.4f}±{summary['test'][m]['std']:.4f}" for m in names))
    pairs = ", ".join(f"{n} {kind}" for kind, n in summary["duplicate_pairs"].items()) or "none"
    lines.append(f"{summary['groups']} groups (near-duplicate pairs: {pairs}); std is over folds (ddof 1)")
    return "\n".join(lines)


def _plot(summary: dict[str, Any], out: Path) -> Any:
    """cv.png: each fold's validation scores as points over mean +- std bands, on axes from 0
    (accuracy-like scores 0 to 1), so small differences between folds look as small as they are.
    Returns the (saved, closed) figure."""
    from tfft.reporting.plots import pyplot, save_figure
    from tfft.wording import plural

    plt = pyplot()
    k = summary["folds"]
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 0.6 * k + 6), 3.6))
    x = np.arange(1, k + 1)
    headline = task_for(summary.get("task", "single_label")).headline
    shown = (headline[0], headline[-1])
    panels = ((axes[0], shown, ("C0", "C1"), (-0.08, 0.08)), (axes[1], ("loss",), ("C2",), (0.0,)))
    for ax, names, colours, offsets in panels:
        for name, colour, offset in zip(names, colours, offsets):
            stats = summary["metrics"][name]
            mean, std = stats["mean"], stats["std"]
            ax.axhspan(mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
            ax.axhline(mean, linestyle="--", linewidth=1, color=colour)
            ax.plot(x + offset, stats["per_fold"], "o", color=colour, clip_on=False,
                    label=f"{name}: {mean:.3f} ± {std:.3f}")
        ax.set_xticks(x)
        ax.set_xlim(0.5, k + 0.5)
        ax.set_xlabel("fold")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0.0, 1.0)
    axes[0].set_title(f"validation {shown[0]} and macro F1 (axis 0 to 1)")
    axes[0].legend(loc="lower right", fontsize=8)
    loss = summary["metrics"]["loss"]
    seen = [v for v in loss["per_fold"] + [loss["mean"] + loss["std"]] if v is not None and np.isfinite(v)]
    top = max(seen + [1e-6])
    axes[1].set_ylim(0.0, 1.15 * top)
    axes[1].set_title("validation loss (axis from 0)")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{k}-fold cross-validation, {plural(summary['images'], 'image')}, "
                 f"{plural(summary['groups'], 'group')}: "
                 "points: folds; dashed line and band: mean ± std", y=1.03, fontsize=10)
    save_figure(fig, out)
    return fig


# -- the fold ensemble -------------------------------------------------------------------------


def _ensemble_available() -> None:
    import importlib.util

    if importlib.util.find_spec("tfft.studies.ensemble") is None:
        raise UserError("--ensemble", "this tfft has no `tfft ensemble` yet", "drop --ensemble")


def _check_ensemble_has_test(cfg: Config) -> None:
    """Refuse `--ensemble` before any fold trains when the data has no test split: the folds' models
    together saw every train+val image, so only test images can score their average."""
    from tfft import data

    splits = data.load_splits(cfg.data, cfg.seed, task=cfg.task)
    if len(splits.splits.get("test", ())) == 0:
        raise UserError("--ensemble", f"{cfg.data.source} has no test split, and the fold models together "
                        "trained on every train+val image, so nothing could score their ensemble",
                        "set data.test_split (e.g. 0.1, carved from train) or add a test/ folder; or drop "
                        "--ensemble and run `tfft ensemble DIR/fold-*` later, knowing it is unscored")


def _ensemble(path: Path, fold_dirs: list[Path], names: tuple[str, ...]) -> tuple[Path, dict[str, Any]]:
    """DIR/ensemble/: the K fold models averaged, measured on the test split (the only images no
    fold trained on: the folds' validation images are each in K-1 members' training data). A
    multi-label ensemble's thresholds are then the mean of the folds' (see `tfft.ensemble`)."""
    from tfft.studies import ensemble

    out = path / "ensemble"
    result = ensemble.ensemble([str(d) for d in fold_dirs], out=str(out), split="test", overwrite=True)
    found = {"run_dir": out.name, "evaluated_on": result.evaluated_on}
    if result.thresholds is not None:
        found["thresholds"] = result.thresholds
    if result.metrics:
        found["test"] = {name: result.metrics[name] for name in names}
        print("ensemble of the folds on test: " + ", ".join(f"{m} {result.metrics[m]:.4f}" for m in names))
    else:
        print(f"ensemble of the folds: written to {out}, not evaluated ({result.evaluated_on})")
    return out, found

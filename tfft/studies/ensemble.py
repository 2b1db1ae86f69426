"""`tfft ensemble`: one Keras model that averages the probabilities of finished runs.

The ensemble is a plain functional `keras.Model` of built-in layers: its input is the largest
member input (elementwise max of the heights and widths); each member is a nested model behind
its own resize when its size differs: a `keras.layers.Resizing` (bilinear) below 2x, and from 2x
on the antialiased bilinear resize training uses, written as fixed `Dense` matrices along height
and width between `Permute`s (exactly `tf.image.resize(antialias=True)`, in ops TFLite runs
natively: the antialiased kernel itself needs TF Select ops); a member whose labels.txt lists the same classes in another order gets a fixed 0/1
`Dense` that reorders its outputs; `keras.layers.Average` gives the output. It is written as a
run directory (`model.keras`, `labels.txt`, `config.yaml`, `metrics.json`, `confusion_matrix.png`,
`ensemble.json`) that `tfft evaluate`, `predict` and `export` accept, and it loads with
`keras.models.load_model` in a Python that never imports tfft.

`config.yaml` is the config of the member with the largest input, with `data.image_size` set to
the ensemble's input and `name: ensemble`: it says what the data is and how images are sized (what
evaluate, predict and export read); the members themselves are listed in `ensemble.json`.

Multi-label members (runs with `thresholds.json`) give a multi-label ensemble: the mean of their
sigmoid probabilities, and a `thresholds.json` of its own so that evaluate, predict and export
decide its labels as they do a run's. The averaged scores are not any member's (averaging pulls
them towards the middle where members disagree), so the thresholds are chosen on the ensemble's
own probabilities of the members' common `val` images (the data that chose each member's
thresholds), leaving out any image that is scored: when `--data` or `--split test` is scored,
only the val images outside it choose. When none is left (the members share no validation image,
as cross-validation folds do), every label's threshold is the mean of the members' thresholds.
Scoring the members' own val images (the default) can only be in-sample: the thresholds, the
ensemble's and the members', were chosen on those very images, so the figures are optimistic.
`ensemble.json` (`thresholds`, `thresholds_in_sample`), the metrics (`thresholds_chosen_on`,
`thresholds_in_sample`) and the CLI say which.

Example:
>>> import tfft
>>> result = tfft.ensemble(["runs/cv/fold-1", "runs/cv/fold-2"], out="runs/cv-ensemble")  # doctest: +SKIP
>>> result.metrics["accuracy"], [m["accuracy"] for m in result.members]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from tfft.data import streams
from tfft.errors import UserError
from tfft.runs.directory import Run, data_task, labelled_files, load_model, open_run, task_of
from tfft.runs.thresholds import read_run_thresholds
from tfft.task import Task
from tfft import atomic, layout
from tfft.reporting.evaluate import evaluate_split, write_thresholds
from tfft.reporting.html import write_html_report

ENSEMBLE_FILE = "ensemble.json"


@dataclass
class EnsembleResult:
    """What `ensemble` wrote.

    Attributes:
        run_dir: the ensemble's run directory.
        metrics: the ensemble's metrics on the common evaluation data (empty when there was none).
        members: one dict per member: `run_dir`, `backbone`, `image_size` and, when evaluated,
            `accuracy`, `loss`, `macro_f1` on the same images (fed as the ensemble feeds it).
        split: the split the metrics are for.
        num_examples: images evaluated.
        evaluated_on: which images (or why there were none).
        thresholds: a multi-label ensemble's `thresholds.json` (None for single-label).
        thresholds_from: how they were chosen (`tuned on ...` or `mean of the members'`).
        thresholds_in_sample: the thresholds were chosen on (some of) the images the metrics are
            for, so the metrics are optimistic (None when not multi-label or not evaluated).
        score: the member metric a table of members shows first (the task's first headline key:
            `accuracy`, or `mAP` for multi-label).
    """

    run_dir: Path
    metrics: dict[str, Any]
    members: list[dict[str, Any]] = field(default_factory=list)
    split: str = "val"
    num_examples: int = 0
    evaluated_on: str = ""
    thresholds: Optional[dict[str, float]] = None
    thresholds_from: str = ""
    thresholds_in_sample: Optional[bool] = None
    score: str = "accuracy"


def _check_members(run_dirs: Sequence[Union[str, os.PathLike]]) -> list[Run]:
    run_dirs = [Path(p).expanduser() for p in run_dirs]
    if len(run_dirs) < 2:
        raise UserError("RUN_DIR", f"an ensemble needs at least 2 run directories, got {len(run_dirs)}",
                        "pass two or more finished runs, e.g. tfft ensemble runs/a runs/b --out runs/ab")
    seen: dict[str, Path] = {}
    for path in run_dirs:
        key = os.path.realpath(path)
        if key in seen:
            raise UserError(str(path), "this run directory is given twice",
                            "list each member once (weights are equal)")
        seen[key] = path
    runs = []
    for path in run_dirs:
        run = open_run(path)
        if not layout.is_finished(run.run_dir):
            raise UserError(str(path), f"the run is not finished ({' or '.join(layout.FINISHED)} is missing)",
                            f"finish it with `tfft train {path}/config.yaml --run-dir {path} --resume`")
        runs.append(run)
    first = runs[0]
    for run in runs[1:]:
        if sorted(run.class_names) != sorted(first.class_names):
            raise UserError(str(run.run_dir), f"its labels {run.class_names} differ from "
                            f"{first.class_names} of {first.run_dir}",
                            "ensemble runs trained on the same classes")
        kind, first_kind = task_of(run).name, task_of(first).name
        if kind != first_kind:
            raise UserError(str(run.run_dir), f"is a {kind.replace('_', '-')} run, {first.run_dir} a "
                            f"{first_kind.replace('_', '-')} one",
                            "ensemble runs of one task (softmax and sigmoid outputs do not average)")
    return runs


def _input_size(runs: Sequence[Run]) -> tuple[int, int]:
    return (max(int(r.image_size[0]) for r in runs), max(int(r.image_size[1]) for r in runs))


ANTIALIAS_RATIO = 2.0
"""Branches that shrink the input by this factor or more resize with antialiasing."""


def _needs_antialias(source: Sequence[int], target: Sequence[int]) -> bool:
    """Antialias only a large downscale: below 2x, plain bilinear (half-pixel centres) stays close
    to training's antialiased resize, and it is what TFLite runs natively (the antialiased kernel,
    ScaleAndTranslate, needs TF Select ops)."""
    return max(source[0] / target[0], source[1] / target[1]) >= ANTIALIAS_RATIO


def _antialiased_resize(x: Any, size: tuple[int, int], target: tuple[int, int], prefix: str) -> Any:
    """`tf.image.resize(x, target, "bilinear", antialias=True)` as built-in layers TFLite runs
    natively: the resize is linear and separable, so each axis is a fixed matrix (a `Dense` without
    bias, found by resizing the identity) applied between `Permute`s."""
    import keras
    import tensorflow as tf

    def matrix(n: int, m: int) -> np.ndarray:  # [n, m]: a length-n axis resized to m, as a Dense kernel
        eye = np.eye(n, dtype=np.float32)[:, :, None]
        return tf.image.resize(eye, (m, n), method="bilinear", antialias=True).numpy()[:, :, 0].T

    # (axis length, target, the Permute that brings the axis last and back, its name)
    for n, m, perm, axis in ((size[1], target[1], (1, 3, 2), "w"), (size[0], target[0], (3, 2, 1), "h")):
        if n == m:
            continue
        dense = keras.layers.Dense(m, use_bias=False, trainable=False, name=f"{prefix}_{axis}")
        x = keras.layers.Permute(perm, name=f"{prefix}_{axis}_in")(x)
        x = dense(x)
        x = keras.layers.Permute(perm, name=f"{prefix}_{axis}_out")(x)
        dense.set_weights([matrix(n, m)])
    return x


def build_ensemble_model(models: Sequence[Any], class_orders: Sequence[Sequence[str]],
                         image_size: Sequence[int], class_names: Sequence[str],
                         name: str = "tfft_ensemble") -> tuple[Any, Any]:
    """The averaging model over loaded member models.

    Args:
        models: member `keras.Model`s (raw 0-255 RGB in, probabilities out).
        class_orders: each member's class names in its output order.
        image_size: the ensemble's input (height, width), at least every member's.
        class_names: the ensemble's output order.
        name: the model's name.

    Returns:
        (ensemble, with_members): the ensemble, and a model over the same layers whose outputs are
        `[ensemble, member_1, ..., member_n]` (used to evaluate everything in one pass).
    """
    import keras

    height, width = int(image_size[0]), int(image_size[1])
    inputs = keras.Input(shape=(height, width, 3), dtype="float32", name="image")
    outputs = []
    for index, (model, order) in enumerate(zip(models, class_orders), start=1):
        model.name = f"member_{index}"  # nested models need unique names
        member_h, member_w = (int(d) for d in model.input_shape[1:3])
        x = inputs
        if _needs_antialias((height, width), (member_h, member_w)):
            x = _antialiased_resize(x, (height, width), (member_h, member_w), f"member_{index}_resize")
        elif (member_h, member_w) != (height, width):
            x = keras.layers.Resizing(member_h, member_w, interpolation="bilinear",
                                      name=f"member_{index}_resize")(x)
        y = model(x)
        if list(order) != list(class_names):
            permutation = np.zeros((len(order), len(class_names)), dtype=np.float32)
            for source, label in enumerate(order):
                permutation[source, list(class_names).index(label)] = 1.0
            reorder = keras.layers.Dense(len(class_names), use_bias=False, trainable=False,
                                         name=f"member_{index}_reorder")
            y = reorder(y)
            reorder.set_weights([permutation])
        outputs.append(y)
    averaged = keras.layers.Average(name="probabilities")(outputs)
    ensemble = keras.Model(inputs, averaged, name=name)
    with_members = keras.Model(inputs, [averaged] + outputs, name=f"{name}_with_members")
    return ensemble, with_members


def _ensemble_config(runs: Sequence[Run], image_size: tuple[int, int], task: str) -> Any:
    base = max(runs, key=lambda r: int(r.image_size[0]) * int(r.image_size[1]))
    data = base.config.data.model_copy(update={"image_size": tuple(image_size)})
    return base.config.model_copy(update={"name": "ensemble", "data": data, "task": task})


def _labelled_files(run: Run, split: str, data: Optional[str] = None) -> tuple[list[str], list[Any]]:
    """A split's files and each one's label: a class name, or (multi-hot labels) a frozenset of names."""
    paths, y = labelled_files(run, split, data)
    if np.ndim(y) == 2:
        return list(paths), [frozenset(run.class_names[c] for c in np.flatnonzero(row)) for row in y]
    return list(paths), [run.class_names[int(v)] for v in y]


def _encode(labels: Sequence[Any], class_names: list[str], multi_hot: bool) -> np.ndarray:
    if multi_hot:
        from tfft.data.multilabel import multi_hot as encode

        return encode([sorted(names) for names in labels], class_names)
    index = {name: i for i, name in enumerate(class_names)}
    return np.asarray([index[name] for name in labels], dtype=np.int64)


def _generated(source: str) -> bool:
    from tfft.data.sources import source_of

    return not source_of(source).has_files


def _evaluation_data(runs: Sequence[Run], config: Any, class_names: list[str], data: Optional[str],
                     split: str, task: Task, exclude: Any = None, member: Optional[Run] = None
                     ) -> tuple[Optional[Any], int, str, Any]:
    """A dataset of (images at the ensemble's size, or at `member`'s size decoded as it decodes,
    labels in `class_names` order: indices, or multi-hot rows for such a task) on the data every
    member can be judged on, its size, a description and which images they are (a frozenset of
    real paths, or `(source, split)` for generated data); (None, 0, why, None) when there is none.
    `exclude` (such an identity) leaves those images out."""
    from tfft import data as tfft_data
    from tfft.data.files import decoded_files

    target = member if member is not None else Run(run_dir=runs[0].run_dir, config=config, class_names=class_names)
    size, fast_decode, batch = tuple(target.image_size), target.fast_decode, int(config.data.batch_size)
    source = str(data if data is not None else config.data.source)
    if _generated(source):
        if data is None:
            ignore = {"image_size", "batch_size"}
            reference = config.data.model_dump(exclude=ignore)
            if any(r.config.data.model_dump(exclude=ignore) != reference or r.config.seed != config.seed
                   for r in runs):
                return None, 0, f"the members' data sections differ ({source} is generated, no common files)", None
        data_cfg = config.data.model_copy(update={"source": source, "image_size": size})
        splits = tfft_data.load_splits(data_cfg, config.seed, task=data_task(task))
        if split not in splits.splits or len(splits.splits[split]) == 0:
            return None, 0, f"{source} has no {split!r} split", None
        if exclude == (source, split):
            return None, 0, f"{source} [{split}] is the data scored", None
        if list(splits.class_names) != list(class_names):
            raise UserError(source, f"classes {list(splits.class_names)} differ from the ensemble's "
                            f"{class_names}", "evaluate on data with the same classes")
        dataset = tfft_data.make_dataset(splits, split, data_cfg, seed=config.seed, training=False)
        return dataset, len(splits.splits[split]), f"{source} [{split}]", (source, split)
    if data is not None:
        paths, named_labels = _labelled_files(Run(run_dir=runs[0].run_dir, config=config, class_names=class_names),
                                              split, data)
        labels = _encode(named_labels, class_names, task.multi_hot)
        description = f"{data} [{split}]"
    else:
        common: Optional[dict[str, Any]] = None
        first_paths: list[str] = []
        for run in runs:
            member_paths, member_labels = _labelled_files(run, split)
            named = {os.path.realpath(p): name for p, name in zip(member_paths, member_labels)}
            if common is None:
                common, first_paths = named, list(member_paths)
            else:
                common = {p: name for p, name in common.items() if named.get(p) == name}
        assert common is not None
        left_out = exclude if isinstance(exclude, frozenset) else frozenset()
        paths = [p for p in first_paths if os.path.realpath(p) in common and os.path.realpath(p) not in left_out]
        if not paths:
            return None, 0, f"the members' {split!r} splits share no image" + (" outside the data scored"
                                                                               if left_out else ""), None
        labels = _encode([common[os.path.realpath(p)] for p in paths], class_names, task.multi_hot)
        description = f"the {len(paths)} {split!r} images common to all {len(runs)} members" + (
            " outside the data scored" if left_out & set(common) else "")
    dataset = decoded_files(list(paths), size, np.asarray(labels), fast_decode=fast_decode).map(
        lambda image, i, y: (image, y))
    identity = frozenset(os.path.realpath(p) for p in paths)
    return dataset.batch(batch).prefetch(streams.PREFETCH), len(paths), description, identity


def _predict(with_members: Any, dataset: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels and `[ensemble, member_1, ...]` probabilities of a dataset, in one pass."""
    outputs: list[list[np.ndarray]] = []
    ys = []
    for images, labels in dataset:
        values = with_members.predict_on_batch(images)
        outputs = outputs or [[] for _ in values]
        for store, value in zip(outputs, values):
            store.append(np.asarray(value, np.float32))
        ys.append(np.asarray(labels))
    return np.concatenate(ys).astype(np.int64), [np.concatenate(chunks) for chunks in outputs]


def ensemble(run_dirs: Sequence[Union[str, os.PathLike]], out: Union[str, os.PathLike], *,
             data: Optional[str] = None, split: str = "val", overwrite: bool = False,
             evaluate: bool = True) -> EnsembleResult:
    """Average finished runs into one model, written as a run directory.

    Args:
        run_dirs: two or more finished run directories trained on the same classes (backbones and
            input sizes may differ).
        out: the ensemble's run directory.
        data: evaluate on this data spec instead of the members' common `split` images.
        split: the split to evaluate (default `val`: the images in every member's val split).
        overwrite: replace `out` when it already holds files.
        evaluate: measure the ensemble and each member on the common data (metrics.json).

    Returns:
        An `EnsembleResult` (run_dir, metrics, members).

    Raises:
        UserError: fewer than two runs, a run given twice, a missing or unfinished run, labels
            that differ, or an `out` that is not empty (without `overwrite`).

    Example:
    >>> import tfft
    >>> result = tfft.ensemble(["runs/a", "runs/b"], out="runs/ab")  # doctest: +SKIP
    >>> tfft.predict(result.run_dir, ["cat.jpg"])  # doctest: +SKIP
    """
    runs = _check_members(run_dirs)
    out_dir = Path(out).expanduser()
    member_dirs = {os.path.realpath(r.run_dir) for r in runs}
    if os.path.realpath(out_dir) in member_dirs:
        raise UserError(f"--out {out}", "is one of the members", "write the ensemble to a new folder")
    out_dir = atomic.check_output(out_dir, overwrite=overwrite, runs=[r.run_dir for r in runs])
    class_names = list(runs[0].class_names)
    image_size = _input_size(runs)
    task = task_of(runs[0])
    config = _ensemble_config(runs, image_size, task.name)
    models = [load_model(run) for run in runs]
    model, with_members = build_ensemble_model(models, [r.class_names for r in runs], image_size, class_names)
    members = [{"run_dir": str(r.run_dir), "backbone": r.config.model.backbone,
                "image_size": list(r.image_size), "labels": list(r.class_names)} for r in runs]
    description, count = "not evaluated", 0
    y, probs, evaluated = None, None, None
    if evaluate:
        dataset, count, description, evaluated = _evaluation_data(runs, config, class_names, data, split, task)
        if dataset is not None:
            y, probs = _predict(with_members, dataset)
            count = len(y)
            _score_members_at_their_size(runs, models, probs, config, class_names, data, split, task)
            _score_members(task, runs, members, class_names, y, probs, int(config.evaluate.top_k))
    thresholds, thresholds_from, in_sample, details = None, "", None, {}
    if task.thresholded:
        thresholds, thresholds_from, in_sample, details = _ensemble_thresholds(
            task, runs, config, class_names, with_members, y, probs, evaluated if y is not None else None,
            scores_own_val=data is None and split == "val")
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out_dir / layout.MODEL) as tmp:
        model.save(tmp)
    atomic.write_text(out_dir / layout.LABELS, "\n".join(class_names) + "\n")
    atomic.write_text(out_dir / layout.CONFIG, config.to_yaml())
    document = {"members": members, "input_size": list(image_size), "combine": "mean of probabilities",
                "evaluated_on": description, "num_examples": count}
    extra = None
    if task.thresholded:
        document["thresholds"] = thresholds_from
        document["thresholds_in_sample"] = in_sample
        extra = {"thresholds_chosen_on": thresholds_from, "thresholds_in_sample": in_sample}
        write_thresholds(out_dir, class_names, thresholds, details)
    atomic.write_json(out_dir / ENSEMBLE_FILE, document)
    metrics: dict[str, Any] = {}
    if y is not None and probs is not None:  # metrics.json last: its presence marks the run directory finished
        metrics = evaluate_split(task, y, probs[0], class_names, out_dir, split=split, thresholds=thresholds,
                                 top_k=int(config.evaluate.top_k), merge=False, extra=extra)
    else:
        atomic.write_json(out_dir / layout.METRICS, {})
    write_html_report(out_dir)
    return EnsembleResult(run_dir=out_dir, metrics=metrics, members=members, split=split, num_examples=count,
                          evaluated_on=description,
                          thresholds=None if thresholds is None else dict(zip(class_names, map(float, thresholds))),
                          thresholds_from=thresholds_from, thresholds_in_sample=in_sample,
                          score=task.summary_metrics()[0])


def _score_members(task: Task, runs: Sequence[Run], members: list[dict[str, Any]], class_names: list[str],
                   y: np.ndarray, probs: list[np.ndarray], top_k: int) -> None:
    """Each member's summary metrics on the ensemble's images, at its own thresholds (if any)."""
    for run, member, member_probs in zip(runs, members, probs[1:]):
        cuts = None
        if task.thresholded:
            own = dict(zip(run.class_names, read_run_thresholds(run.run_dir, run.class_names)))
            cuts = [own[name] for name in class_names]
        m = task.metrics_table(y, member_probs, class_names, thresholds=cuts, top_k=top_k)
        member.update({key: m[key] for key in task.summary_metrics()})


def _score_members_at_their_size(runs: Sequence[Run], models: Sequence[Any], probs: list[np.ndarray], config: Any,
                                 class_names: list[str], data: Optional[str], split: str, task: Task) -> None:
    """Replace `probs[i]` of each member whose size (or decoding) is not the ensemble's by its
    probabilities on the images decoded once at its own size, as its own evaluation decodes them:
    through the ensemble's input it would see them resized twice (decoded to the ensemble's size,
    then to its own), which moves its score away from its metrics.json."""
    reference = Run(run_dir=runs[0].run_dir, config=config, class_names=class_names)
    for index, (run, model) in enumerate(zip(runs, models), start=1):
        if tuple(run.image_size) == tuple(reference.image_size) and run.fast_decode == reference.fast_decode:
            continue
        dataset, _, _, _ = _evaluation_data(runs, config, class_names, data, split, task, member=run)
        if dataset is None:
            continue
        order = [list(run.class_names).index(name) for name in class_names]
        own = [np.asarray(model.predict_on_batch(images), np.float32) for images, _ in dataset]
        if own and sum(len(chunk) for chunk in own) == len(probs[index]):
            probs[index] = np.concatenate(own)[:, order]


def _ensemble_thresholds(task: Task, runs: Sequence[Run], config: Any, class_names: list[str], with_members: Any,
                           y: Optional[np.ndarray], probs: Optional[list[np.ndarray]], evaluated: Any,
                           scores_own_val: bool) -> tuple[np.ndarray, str, Optional[bool], dict[str, Any]]:
    """The ensemble's thresholds (labels.txt order), how they were chosen, whether that was on the
    images scored (None when nothing is scored) and `Task.choose_thresholds`' details.

    Chosen (`Task.choose_thresholds`) on the ensemble's probabilities of the members' common val
    images: those scored when they are what is scored (`scores_own_val`: in-sample, said so), else
    the ones outside the scored data (`evaluated`). With none, the mean of the members'
    thresholds, in-sample when some scored image is in a member's val split (it chose that
    member's thresholds)."""
    scored = y is not None and probs is not None and len(y) > 0
    if scores_own_val and scored:
        cuts, details = task.choose_thresholds(y, probs[0])
        return (cuts, "tuned on the images scored, the members' common val images: the figures are in-sample "
                "(optimistic)", True, details)
    why = "no validation images"
    if not scores_own_val:
        dataset, _, description, _ = _evaluation_data(runs, config, class_names, None, "val", task,
                                                      exclude=evaluated)
        why = description
        if dataset is not None:
            y_val, p_val = _predict(with_members, dataset)
            cuts, details = task.choose_thresholds(y_val, p_val[0])
            return cuts, f"tuned on {description}", (False if scored else None), details
    member = []
    for run in runs:
        cuts = dict(zip(run.class_names, read_run_thresholds(run.run_dir, run.class_names)))
        member.append([cuts[name] for name in class_names])
    in_sample = _overlaps_members_val(runs, evaluated) if scored else None
    note = "; chosen on some of the images scored: in-sample" if in_sample else ""
    how = f"mean of the members' thresholds ({why}{note})"
    return np.mean(np.asarray(member, np.float64), axis=0), how, in_sample, {"method": how}


def _overlaps_members_val(runs: Sequence[Run], evaluated: Any) -> bool:
    """Whether an image scored is in some member's val split (where its thresholds were chosen)."""
    for run in runs:
        if isinstance(evaluated, tuple):  # generated data: the same source and split
            if evaluated == (str(run.config.data.source), "val"):
                return True
            continue
        try:
            paths, _ = _labelled_files(run, "val")
        except UserError:  # a member without a val split chose nothing on these images
            continue
        if evaluated & {os.path.realpath(p) for p in paths}:
            return True
    return False


__all__ = ["ENSEMBLE_FILE", "EnsembleResult", "build_ensemble_model", "ensemble"]

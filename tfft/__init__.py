"""tfft: fine-tune pretrained keras.applications image models from a YAML file.

The public API (TensorFlow is imported only when a function needs it):

>>> import tfft
>>> cfg = tfft.load_config({"data": {"source": "builtin:shapes", "image_size": [64, 64]},
...                         "model": {"backbone": "mobilenet_v3_small", "weights": None}})
>>> model = tfft.build_model(cfg)            # doctest: +SKIP
>>> result = tfft.train(cfg)                 # doctest: +SKIP
"""

# long file: the public API, one thin function per command (each a docstring with Args and an
# Example, each calling its module): the one page a user reads as the API, and all the CLI calls.

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any, Optional, Union

from tfft import data
from tfft.config import Config, load_config
from tfft.errors import UserError

from tfft.version import __version__

__all__ = [
    "Config",
    "UserError",
    "__version__",
    "backbones",
    "build_data",
    "build_model",
    "check_config",
    "check_data",
    "cv",
    "data",
    "data_issues",
    "ensemble",
    "evaluate",
    "export",
    "export_all",
    "export_formats",
    "find_lr",
    "format_data_check",
    "format_metrics",
    "format_predictions",
    "heatmaps",
    "interpret",
    "load_config",
    "predict",
    "preview_augmentation",
    "prune",
    "train",
    "tune",
    "write_html_report",
]

_LAZY_MODULES = ("backbones", "augment", "models", "schedule")


def build_data(config: Union[Config, dict, str, None] = None, split: str = "train", *, epoch: int = 0) -> Any:
    """Batches of (images float32 0..255, labels int32) of one split, as training reads them.

    With `augment.placement: pipeline` training batches are augmented; epoch `epoch`'s order and
    augmentation depend only on `(seed, epoch)` (`tfft.training.assembly.build_dataset`).

    Args:
        config: a `Config`, dict, YAML path or text.
        split: train | val | test.
        epoch: which epoch's order and augmentation.

    Example:
    >>> import tfft
    >>> cfg = tfft.load_config({"data": {"image_size": [64, 64], "builtin_per_class": 20}})
    >>> images, labels = next(iter(tfft.build_data(cfg, "val")))
    >>> images.dtype.name, labels.dtype.name
    ('float32', 'int32')
    """
    from tfft.training.assembly import build_dataset

    return build_dataset(config, split, epoch=epoch)


def data_issues(config: Union[Config, dict, str, None] = None, folds: int = 5, top: int = 24,
                out: Optional[str] = None, *, quick: bool = True, resume: bool = False, overwrite: bool = False,
                embedding_threshold: Optional[float] = None) -> Any:
    """Likely label errors and near-duplicate images in a config's data (`tfft data issues`).

    Args:
        config: a `Config`, dict or YAML path/text.
        folds: K of the cross-validation that gives the out-of-fold probabilities (>= 2).
        top: how many suspects label_issues.png shows; the CSV lists every image.
        out: the output folder (default `runs/NAME-issues`).
        quick: train only the head on frozen features, without augmentation (default).
        resume: finish an interrupted run of the same command.
        overwrite: write into an `out` that holds other files.
        embedding_threshold: the largest cosine distance of two images' features that counts as
            a near-duplicate (None: the default of `tfft.studies.duplicates`).

    Returns:
        An `IssuesResult` (`ranking`, `duplicates`, `out`).

    Example:
    >>> result = tfft.data_issues("configs/pets.yaml", folds=5)  # doctest: +SKIP
    """
    from tfft.studies.issues import issues

    extra = {} if embedding_threshold is None else {"embedding_threshold": embedding_threshold}
    return issues(config, folds=folds, top=top, out=out, quick=quick, resume=resume, overwrite=overwrite, **extra)


def _deprecated_alias(function: Any, old: str) -> Any:
    """`function` under its old name `old`, which warns (DeprecationWarning) when called."""

    @functools.wraps(function)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(f"{old} is deprecated; use tfft.{function.__name__}", DeprecationWarning, stacklevel=2)
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old.rpartition(".")[2]
    return alias


# The contract's old names: the data layer sits below training and the studies, so it cannot
# define them itself; they keep working, with a deprecation warning (issue 28).
data.build = _deprecated_alias(build_data, "tfft.data.build")
data.issues = _deprecated_alias(data_issues, "tfft.data.issues")


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"tfft.{name}")
    raise AttributeError(f"module 'tfft' has no attribute {name!r}")


def build_model(config: Union[Config, dict, str, None] = None, num_classes: Optional[int] = None) -> Any:
    """Build the classifier a config describes: a plain functional `keras.Model`.

    Input: raw RGB images, 0-255 float32, `data.image_size`; the backbone's preprocessing is
    inside; output: class probabilities. Compile and fit it yourself, or use `tfft.train`.

    Args:
        config: a `Config`, dict, YAML path or text.
        num_classes: the number of classes; when None, read from `data.source`.

    Example:
    >>> import tfft
    >>> model = tfft.build_model({"model": {"backbone": "mobilenet_v3_small", "weights": None},
    ...                           "data": {"image_size": [32, 32]}}, num_classes=3)
    >>> model.output_shape
    (None, 3)
    """
    cfg = load_config(config)
    if num_classes is None:
        num_classes = len(data.load_splits(cfg.data, cfg.seed).class_names)
    from tfft.models.build import build_classifier

    return build_classifier(cfg.model, num_classes, cfg.data.image_size)


def train(config: Union[Config, dict, str, None] = None, run_dir: Optional[str] = None,
          resume: bool = False, overwrite: bool = False, callbacks: Optional[list] = None, *,
          feature_store: Optional[Any] = None) -> Any:
    """Train as the config says; returns a `TrainResult` (`run_dir`, `metrics`, `history`).

    Args:
        config: a `Config`, dict, YAML path or text.
        run_dir: where to write the run (default `runs/NAME`, numbered when taken).
        resume: continue an unfinished run from its last checkpoint.
        overwrite: replace a finished run in `run_dir`.
        callbacks: extra `keras.callbacks.Callback`s added to every phase's `fit`; an exception
            one raises ends the run and propagates unchanged.
        feature_store: a `tfft.training.feature_cache.FeatureStore` shared by several runs in one
            process: a frozen-backbone phase whose features are in it reuses them.

    Example:
    >>> import tfft
    >>> result = tfft.train("configs/quickstart.yaml")  # doctest: +SKIP
    >>> result.metrics["val"]["accuracy"]  # doctest: +SKIP
    """
    from tfft.training.run import train as _train

    return _train(config, run_dir=run_dir, resume=resume, overwrite=overwrite, callbacks=callbacks,
                  feature_store=feature_store)


def tune(config: Union[Config, dict, str, None], space: Union[str, dict], trials: int,
         storage: Optional[str] = None, study: Optional[str] = None, run_dir: Optional[str] = None,
         metric: Optional[str] = None, keep: Optional[int] = None, pruner: Any = "median", sampler: Any = None,
         verbose: bool = False, heartbeat: Optional[int] = None) -> Any:
    """Hyperparameter search with Optuna until the study has `trials` finished trials (`tfft tune`).

    Args:
        config: the base config (a `Config`, dict, YAML path or text).
        space: SPACE.yaml (path, text or dict): dotted keys to uniform / log_uniform / int / choice.
        trials: N, the study's total of finished trials over every process sharing the storage.
        storage: an Optuna storage URL (default `sqlite:///DIR/study.db`).
        study: the study's name (default: the config's name).
        run_dir: DIR for trials.csv, best_config.yaml, tune.png and trials/ (default `runs/NAME-tune`).
        metric: the val metric to optimise (`loss` minimised, others maximised); None: `accuracy`,
            or `mAP` for multi-label data.
        keep: keep only the best `keep` trials' run directories.
        pruner: `median`, `none` or an `optuna.pruners` object.
        sampler: None (TPE seeded by the config's seed) or an `optuna.samplers` object.
        verbose: show each trial's training output.
        heartbeat: seconds between a running trial's heartbeats in the storage (None: the default).

    Returns:
        A `TuneResult` (`run_dir`, `best_trial`, `best_value`, `best_params`, `best_config`, `trials`).

    Example:
    >>> result = tfft.tune("configs/quickstart.yaml", "space.yaml", trials=20)  # doctest: +SKIP
    >>> result.best_config  # doctest: +SKIP
    """
    from tfft.studies.tune import tune as _tune

    return _tune(config, space, trials, storage=storage, study=study, run_dir=run_dir, metric=metric,
                 keep=keep, pruner=pruner, sampler=sampler, verbose=verbose, heartbeat=heartbeat)


def evaluate(run_dir: str, data: Optional[str] = None, split: str = "val", *, batch_size: Optional[int] = None,
             top_k: Optional[int] = None) -> dict:
    """Evaluate a run's model.keras on a split; writes `RUN_DIR/eval/<split>/`.

    Args:
        run_dir: a run directory written by `tfft.train`.
        data: another data source to evaluate on (replaces `data.source`).
        split: `val`, `test` or `train`.
        batch_size: default the run's `data.batch_size`.
        top_k: k of top-k accuracy (default the run's `evaluate.top_k`).

    Example:
    >>> tfft.evaluate("runs/quickstart", split="val")["accuracy"]  # doctest: +SKIP
    """
    from tfft.evaluation import evaluate_run

    return evaluate_run(run_dir, data=data, split=split, batch_size=batch_size, top_k=top_k)


def predict(run_dir: str, paths: list, top_k: int = 3, tta: bool = False, batch_size: int = 32) -> list:
    """Top-k labels and probabilities for image files, folders or globs.

    Args:
        run_dir: a run directory written by `tfft.train`.
        paths: image files, folders (recursive) or globs.
        top_k: labels per image.
        tta: average with the horizontally flipped image.
        batch_size: images per batch.

    Example:
    >>> tfft.predict("runs/quickstart", ["photo.jpg"], top_k=2)  # doctest: +SKIP
    """
    from tfft.evaluation.predict import predict as _predict

    return _predict(run_dir, list(paths), top_k=top_k, tta=tta, batch_size=batch_size)


def format_metrics(metrics: dict, title: Optional[str] = None) -> str:
    """One split's metrics (from `evaluate`, an ensemble, metrics.json) as the terminal table
    `tfft evaluate` prints: per class for a single-label run, per label for a multi-label one.

    Args:
        metrics: one split's entry (its `task` key names the task whose table it is; none:
            single-label).
        title: the table's first line.

    Example:
    >>> print(tfft.format_metrics(tfft.evaluate("runs/quickstart")))  # doctest: +SKIP
    """
    from tfft.task import task_of_metrics

    return task_of_metrics(metrics).format_table(metrics, title=title)


def format_predictions(rows: list, fmt: str = "csv") -> str:
    """`predict`'s rows as CSV (`path,label_1,prob_1,...,error`) or a JSON list.

    Example:
    >>> print(tfft.format_predictions(tfft.predict("runs/quickstart", ["photo.jpg"])))  # doctest: +SKIP
    """
    from tfft.evaluation.predict import format_rows

    return format_rows(rows, fmt)


def ensemble(run_dirs: list, out: str, data: Optional[str] = None, split: str = "val",
             overwrite: bool = False) -> Any:
    """Average finished runs into one model, written as a run directory; an `EnsembleResult`.

    The model (plain Keras, built-in layers) takes the largest member input and resizes it for
    each member inside; `evaluate`, `predict` and `export` accept its run directory.

    Args:
        run_dirs: two or more finished runs trained on the same classes.
        out: the ensemble's run directory.
        data: evaluate on this data spec instead of the members' common `split` images.
        split: the split evaluated into metrics.json.
        overwrite: replace `out` when it already holds files.

    Example:
    >>> result = tfft.ensemble(["runs/cv/fold-1", "runs/cv/fold-2"], out="runs/ens")  # doctest: +SKIP
    >>> result.metrics["accuracy"], [m["accuracy"] for m in result.members]  # doctest: +SKIP
    """
    from tfft.studies.ensemble import ensemble as _ensemble

    return _ensemble(list(run_dirs), out, data=data, split=split, overwrite=overwrite)


def export(run_dir: str, format: str = "savedmodel", quantize: str = "none", out: Optional[str] = None,
           overwrite: bool = False, threads: Optional[int] = None) -> Any:
    """Export a run's model (savedmodel, tflite, onnx, openvino), checked in its own runtime.

    An `out` that exists, holds files or holds the run is refused unless `overwrite` (which
    replaces only the export's own files). See `tfft.evaluation.export.export`.

    Example:
    >>> tfft.export("runs/quickstart", format="tflite", quantize="int8")  # doctest: +SKIP
    """
    from tfft.evaluation.export import export as _export

    return _export(run_dir, format=format, quantize=quantize, out=out, overwrite=overwrite, threads=threads)


def export_all(run_dir: str, out: Optional[str] = None, quantize: Optional[str] = None, overwrite: bool = False,
               threads: Optional[int] = None) -> Any:
    """Export a run to every installed format and quantization into one folder (default
    RUN_DIR/export), each checked in its own runtime; `.table()` is the deployment table.

    Example:
    >>> print(tfft.export_all("runs/quickstart", out="deploy").table())  # doctest: +SKIP
    """
    from tfft.evaluation.export import export_all as _export_all

    return _export_all(run_dir, out=out, quantize=quantize, overwrite=overwrite, threads=threads)


def export_formats() -> list[str]:
    """The export formats `tfft.export` takes: the exporter registry's names, in order.

    Example:
    >>> tfft.export_formats()[:2]
    ['savedmodel', 'tflite']
    """
    from tfft.evaluation.exporters import EXPORTERS

    return EXPORTERS.names()


def cv(config: Union[Config, dict, str, None] = None, folds: int = 5, run_dir: Optional[str] = None,
       resume: bool = False, ensemble: bool = False) -> Any:
    """Stratified, grouped K-fold cross-validation; returns a `CVResult` (`run_dir`, `summary`).

    Multi-label data is stratified per label (iterative stratification) and summarised by mAP,
    micro and macro F1.

    Every fold is a `tfft.train` run in `DIR/fold-k/`; `DIR` also gets `cv_summary.json`,
    `oof_predictions.csv`, `label_issues.csv` and `cv.png` (see `tfft.studies.cv`).

    Args:
        config: a `Config`, dict, YAML path or text.
        folds: K >= 2.
        run_dir: the study's folder (default `runs/NAME-cv`).
        resume: finish an interrupted study, keeping its finished folds.
        ensemble: also write `DIR/ensemble/`, the fold models averaged.

    Example:
    >>> import tfft
    >>> result = tfft.cv("configs/quickstart.yaml", folds=5)  # doctest: +SKIP
    >>> result.summary["metrics"]["accuracy"]["mean"]  # doctest: +SKIP
    """
    from tfft.studies.cv import cv as _cv

    return _cv(config, folds=folds, run_dir=run_dir, resume=resume, ensemble=ensemble)


def prune(run_dir: str, sparsity: float, epochs: int = 2, out: Optional[str] = None, *,
          lr: Optional[float] = None, bn: str = "train", overwrite: bool = False, frequency: Optional[int] = None,
          min_steps: Optional[int] = None) -> Any:
    """Gradual magnitude pruning of a finished run while fine-tuning (`tfft prune`); a `PruneResult`.

    Every Conv2D and Dense kernel (not depthwise kernels, biases or BatchNorm) reaches `sparsity`
    on a cubic schedule; the result is a run directory whose model.keras holds exact zeros, with
    `pruning.json`, that `evaluate`, `predict` and `export` accept (see `tfft.compression.prune`).

    Args:
        run_dir: a finished single-label run.
        sparsity: the fraction of each prunable kernel set to zero, in (0, 1).
        epochs: fine-tuning epochs.
        out: the new run directory (default `RUN_DIR-pruned-<S in %>`).
        lr: the fine-tuning rate (default: the smallest of the run's phases).
        bn: `train` (BatchNorm statistics follow the pruned kernels) or `frozen`.
        overwrite: replace `out` when it holds files.
        frequency: recompute the masks every this many steps (None: about 16 updates over the ramp).
        min_steps: the fewest optimizer steps of the schedule (None: `tfft.compression.prune.MIN_STEPS`).

    Example:
    >>> result = tfft.prune("runs/quickstart", sparsity=0.75)  # doctest: +SKIP
    >>> result.sparsity, result.gzip_bytes  # doctest: +SKIP
    """
    from tfft.compression import prune as _prune

    extra = {} if min_steps is None else {"min_steps": min_steps}
    return _prune(run_dir, sparsity, epochs=epochs, out=out, lr=lr, bn=bn, overwrite=overwrite, frequency=frequency,
                  **extra)


def heatmaps(model: Any, images: Any, class_index: Any = None, method: str = "gradcam",
             upsampling: str = "aligned", layer: Optional[str] = None, member: Optional[int] = None) -> Any:
    """Class-activation heatmaps of any tfft model.keras: where it looks when it scores a class.

    Args:
        model: a tfft `keras.Model` (from `tfft.build_model`, a run's model.keras or an ensemble's).
        images: raw 0-255 RGB [N, H, W, 3] at the model's input size.
        class_index: one class for all images, one per image, or None for each predicted class.
        method: `gradcam` (default: it localises best in benchmarks/RESULTS.md), `gradcam++` or
            `scorecam`.
        upsampling: `aligned` (feature cells at their receptive fields' centres) or `bilinear`.
        layer: the layer whose output is the feature map (None: the backbone's last spatial one;
            ViT-like token outputs are laid out on their patch grid).
        member: an ensemble's member K (1-based); None: the members' mean.

    Returns:
        float32 [N, H, W] in [0, 1] (see `tfft.models.heatmaps.heatmaps`).

    Example:
    >>> import numpy as np, tfft
    >>> model = tfft.build_model({"model": {"backbone": "mobilenet_v3_small", "weights": None},
    ...                           "data": {"image_size": [32, 32]}}, num_classes=2)
    >>> tfft.heatmaps(model, np.zeros((1, 32, 32, 3)), class_index=1).shape
    (1, 32, 32)
    """
    from tfft.models.heatmaps import heatmaps as _heatmaps

    return _heatmaps(model, images, class_index=class_index, method=method, upsampling=upsampling, layer=layer,
                     member=member)


def interpret(run_dir: str, split: str = "val", data: Optional[str] = None, top: int = 16,
              out: Optional[str] = None, member: Optional[int] = None, method: str = "gradcam", *,
              batch_size: Optional[int] = None) -> Any:
    """Top losses, most confused classes and per-class galleries with Grad-CAM (`tfft interpret`).

    Args:
        run_dir: a run directory written by `tfft.train` or `tfft.ensemble`.
        split: `val`, `test` or `train`.
        data: another data source to interpret on (replaces `data.source`).
        top: N top losses.
        out: the output folder (default `RUN_DIR/interpret/<split>/`).
        member: an ensemble's member K (1-based) to explain; None: the members' mean.
        method: the heatmaps' `gradcam`, `gradcam++` or `scorecam` (see `tfft.heatmaps`).
        batch_size: images per batch (default: the run's `data.batch_size`).

    Returns:
        An `InterpretResult` (`images`, `heatmaps`, `labels`, `predicted`, `losses`, `files`...).

    Example:
    >>> result = tfft.interpret("runs/quickstart", top=8)  # doctest: +SKIP
    >>> result.heatmaps.shape  # doctest: +SKIP
    (8, 224, 224)
    """
    from tfft.evaluation.interpret import interpret as _interpret

    return _interpret(run_dir, split=split, data=data, top=top, out=out, batch_size=batch_size, member=member,
                      method=method)



def write_html_report(run_dir: str) -> Any:
    """Write (or rewrite) `DIR/report.html`: one self-contained page of a run, cv, tune or
    ensemble folder (no network), with what the folder holds (metrics, plots, interpret/).

    `tfft train`, `cv`, `tune` and `ensemble` write it themselves; call this after adding to a
    folder (`tfft.interpret`, `tfft.evaluate`) to show the new files.

    Args:
        run_dir: a folder written by `tfft train`, `cv`, `tune`, `ensemble` or `data issues`.

    Returns:
        The path of report.html.

    Example:
    >>> tfft.write_html_report("runs/quickstart")  # doctest: +SKIP
    PosixPath('runs/quickstart/report.html')
    """
    from tfft.reporting.html import write_html_report as _write_html_report

    return _write_html_report(run_dir)


def check_config(config: Union[Config, dict, str, None] = None) -> Config:
    """Check what a config points at, in a second and without TensorFlow: the check `tfft train`
    (and every command that takes a CONFIG) runs before anything starts.

    `load_config` checks keys and values; this also checks that `data.source` exists (a folder
    or a `csv:` manifest), that a `keras:` backbone file exists and the backbone takes
    `data.image_size`, and that a `model.weights` file and a `distill.teacher` run exist.

    Args:
        config: a `Config` (checked as it is), dict, YAML path or text.

    Returns:
        The validated `Config`.

    Raises:
        UserError: naming the key, what was found and what to do.

    Example:
    >>> tfft.check_config({"data": {"source": "builtin:shapes"}}).data.source
    'builtin:shapes'
    >>> tfft.check_config({"data": {"source": "no/such/folder"}})
    Traceback (most recent call last):
    tfft.errors.UserError: ...
    """
    from tfft.training.preflight import check_config as _check_config

    cfg = config if isinstance(config, Config) else load_config(config)
    _check_config(cfg)
    return cfg


def check_data(path: str, *, duplicates: bool = True, near_duplicates: bool = False) -> dict:
    """Inspect an image folder or `csv:` manifest as `tfft data check` does, and give train's verdict.

    Args:
        path: a folder of class subfolders (optionally under train/ val/ test/), or `csv:MANIFEST`.
        duplicates: hash file contents to find exact duplicates.
        near_duplicates: also group near-duplicate images by perceptual hash (no model): the
            report adds `near_duplicate_groups`.

    Returns:
        The report (the contract's JSON of `tfft data check --json`): `classes` ({name: readable
        images}), `empty_classes`, `bad_files`, `total_images`, `odd_formats`, `duplicates`,
        `sizes`, ..., and train's verdict: `errors` (what `tfft train` refuses) and `warnings`
        (see `tfft.data.check.check_folder`). `tfft.format_data_check` words it.

    Example:
    >>> import os
    >>> import numpy as np
    >>> from PIL import Image
    >>> for name in ("cat", "dog"):
    ...     os.makedirs(f"pets/{name}", exist_ok=True)
    ...     Image.fromarray(np.full((16, 16, 3), 80, np.uint8)).save(f"pets/{name}/0.png")
    >>> report = tfft.check_data("pets")
    >>> report["classes"], report["bad_files"], report["errors"]
    ({'cat': 1, 'dog': 1}, [], [])
    """
    from tfft.data.check import check_folder

    return check_folder(path, duplicates=duplicates, near_duplicates=near_duplicates)


def format_data_check(report: dict, max_listed: int = 20) -> str:
    """A `check_data` report as the text `tfft data check` prints (counts per class and split,
    unreadable files, odd formats, duplicates, sizes, warnings).

    Args:
        report: what `tfft.check_data` returned.
        max_listed: the most files listed under each heading.

    Example:
    >>> print(tfft.format_data_check(tfft.check_data("pets")))  # doctest: +SKIP
    pets: 2 readable images in 2 classes
    ...
    """
    from tfft.data.check import format_report

    return format_report(report, max_listed=max_listed)


def preview_augmentation(config: Union[Config, dict, str, None] = None, out: Optional[str] = None, *,
                         per_class: int = 8, seed: Optional[int] = None, overwrite: bool = False) -> Any:
    """Write a PNG grid of training images augmented as `tfft train` would (`tfft augment preview`):
    one row per class, its first training image, then `per_class` augmented copies.

    Args:
        config: a `Config`, dict, YAML path or text.
        out: the PNG (default `augment_preview.png`); an existing folder gets
            `augment_preview.png` inside; an existing file is refused without `overwrite`.
        per_class: augmented copies per row.
        seed: the augmentation seed (default: the config's seed).
        overwrite: replace an existing `out`.

    Returns:
        `(path, description)`: the PNG written and the augmentation in one line.

    Example:
    >>> path, text = tfft.preview_augmentation({"data": {"image_size": [32, 32], "builtin_per_class": 4},
    ...                                         "augment": {"rotation_range": 20}}, "grid.png", per_class=2)
    >>> path.name, text
    ('grid.png', 'augment: rotation +-20deg...')
    """
    from tfft.training.preview import preview_augmentation as _preview

    return _preview(config, out, per_class=per_class, seed=seed, overwrite=overwrite)


def find_lr(config: Union[Config, dict, str, None] = None, phase: Union[int, str, None] = None,
            start_lr: float = 1e-7, end_lr: float = 10.0, steps: Optional[int] = None,
            run_dir: Optional[str] = None) -> Any:
    """The learning-rate range test of one phase (`tfft lr-find`): train a throwaway copy of the
    run's model one batch per rate, the rate growing from `start_lr` to `end_lr`, and suggest one.

    Everything but the rate is what `tfft train` would use for the phase; writes `lr_find.png` and
    `lr_find.json` (see `tfft.training.lr_find`).

    Args:
        config: a `Config`, dict, YAML path or text.
        phase: the phase's name or index (from 0, negative from the end); None: the first.
        start_lr: the first rate.
        end_lr: the last rate.
        steps: batches, one rate each (None: 4 passes over the training data, within 30..100).
        run_dir: where to write (default `runs/NAME-lr-find`); files there are replaced.

    Returns:
        An `LRFindResult` (`suggestion`, `rule`, `lrs`, `losses`, `smoothed`, `plot_path`).

    Example:
    >>> result = tfft.find_lr({"data": {"image_size": [32, 32], "builtin_per_class": 8},
    ...                        "model": {"backbone": "mobilenet_v3_small", "weights": None}},
    ...                       steps=30)  # doctest: +SKIP
    >>> result.suggestion > 0, result.plot_path.name  # doctest: +SKIP
    (True, 'lr_find.png')
    """
    from tfft.training.lr_find import find_lr as _find_lr

    return _find_lr(config, phase=phase, start_lr=start_lr, end_lr=end_lr, steps=steps, run_dir=run_dir)

"""`tfft data issues`: likely label errors and near-duplicate images of a dataset.

1. A quick cross-validation (`tfft.studies.cv.cv`) of the config's model with the backbone frozen
   and only the head trained, no augmentation (so every fold reads the frozen features from the
   persistent feature store: minutes, not hours), gives out-of-fold probabilities for every
   train+val image.
2. `tfft.task.label_issues.rank` ranks them for label errors (confident learning, then
   self-confidence): `label_issues.csv`, and `label_issues.png`, a gallery of the top suspects with
   their given and suggested labels, for a person to look at.
3. `tfft.studies.duplicates.find_duplicates` over every split's images (exact bytes, perceptual
   hash, and the cosine distance of the backbone's pooled features): `duplicates.csv`
   (`path_a,path_b,split_a,split_b,distance,kind`), within and across splits.

Example:
>>> import tfft
>>> result = tfft.data_issues("configs/pets.yaml", folds=5, top=24, out="runs/pets-issues")  # doctest: +SKIP
>>> result.ranking[0].index, len(result.duplicates)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from tfft import atomic, layout
from tfft.config import Config
from tfft.data.sources import source_of
from tfft.errors import UserError
from tfft.task import task_for
from tfft.studies import duplicates as _duplicates
from tfft.task import label_issues as _label_issues

LABEL_ISSUES_FILE = "label_issues.csv"
DUPLICATES_FILE = "duplicates.csv"
GALLERY_FILE = "label_issues.png"
DUPLICATE_COLUMNS = ("path_a", "path_b", "split_a", "split_b", "distance", "kind")
QUICK_EPOCHS = 5


@dataclass
class IssuesResult:
    """What `issues` found and wrote.

    Attributes:
        out: the folder holding label_issues.csv, duplicates.csv and label_issues.png.
        paths: the train+val images, in the order `ranking` indexes.
        class_names: labels.txt order.
        ranking: every train+val image, most likely label error first (`LabelIssue`s).
        duplicates: the near-duplicate pairs over all splits.
        split_of: each image's split, by path.
        cv_dir: the quick cross-validation's run directory.
    """

    out: Path
    paths: list[str]
    class_names: list[str]
    ranking: list[Any]
    duplicates: list[Any] = field(default_factory=list)
    split_of: dict[str, str] = field(default_factory=dict)
    cv_dir: Optional[Path] = None


def quick_config(cfg: Config, epochs: int = QUICK_EPOCHS) -> Config:
    """The config with a frozen backbone, a head-only schedule and no augmentation: every fold then
    trains on features computed once (the persistent feature store). Deterministic preprocessing
    (rescale, featurewise and samplewise standardization, ...) is kept."""
    schedule = cfg.schedule.model_copy(update={"preset": "feature_extraction", "phases": None,
                                               "epochs": int(epochs)})
    keep = ("rescale", "featurewise_center", "featurewise_std_normalization", "samplewise_center",
            "samplewise_std_normalization", "zca_whitening", "preprocessing_function")
    augment = type(cfg.augment)(horizontal_flip=False, **{key: getattr(cfg.augment, key) for key in keep})
    return cfg.model_copy(update={"schedule": schedule, "augment": augment})


def out_of_fold(cfg: Config, folds: int, cv_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Out-of-fold probabilities of a cross-validation of `cfg` (the one step that trains).

    Returns:
        `tfft.studies.cv.read_predictions`'s dict: `keys`, `labels`, `folds`, `probs`, `class_names`.
    """
    from tfft.studies import cv as _cv

    _cv.cv(cfg, folds=folds, run_dir=str(cv_dir), resume=resume)
    return _cv.read_predictions(cv_dir / "oof_predictions.csv")


def _all_images(cfg: Config) -> tuple[list[str], list[str]]:
    """Every image file of every split, and its split name ([] for generated sources)."""
    from tfft import data

    splits = data.load_splits(cfg.data, cfg.seed)
    paths, names = [], []
    for name, split in splits.splits.items():
        if split.kind != "files" or split.paths is None:
            return [], []
        for p in split.paths:
            paths.append(os.path.abspath(str(p)))
            names.append(name)
    return paths, names


def embeddings(cfg: Config, model_path: Path, paths: list[str]) -> np.ndarray:
    """The backbone's pooled features of `paths` (NaN rows for files that do not decode), taken from
    a run's model.keras; rows the feature store already holds are read, not computed."""
    from tfft.backbones import load_saved_model
    from tfft.data.files import decoded_files
    from tfft.models.build import BACKBONE_LAYER_NAME
    from tfft.training.feature_cache import split_model
    from tfft.training.feature_store import StoredFeatures, open_store

    model = load_saved_model(model_path, str(model_path),
                             "give a run whose model.keras holds only built-in Keras layers")
    model.get_layer(BACKBONE_LAYER_NAME).trainable = False  # the pooled features, whatever trained last
    feature_model, _ = split_model(model)
    store = open_store(cfg.performance.feature_store, cfg.performance.feature_store_max_gb)
    compute = feature_model.predict_on_batch
    features = StoredFeatures(store, feature_model, compute) if store is not None else compute
    out = np.full((len(paths), int(feature_model.output_shape[-1])), np.nan, dtype=np.float32)
    dataset = decoded_files(paths, tuple(cfg.data.image_size), fast_decode=cfg.data.fast_decode != "off").batch(
        int(cfg.data.batch_size))
    for images, index in dataset:
        out[np.asarray(index)] = np.asarray(features(images))
    if store is not None:
        features.flush()
    return out


def write_duplicates_csv(path: Union[str, os.PathLike], pairs: list[Any], split_of: dict[str, str]) -> None:
    """duplicates.csv: `path_a,path_b,split_a,split_b,distance,kind`, closest first within each kind."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DUPLICATE_COLUMNS)
    for pair in pairs:
        writer.writerow([pair.path_a, pair.path_b, split_of.get(pair.path_a, ""), split_of.get(pair.path_b, ""),
                         f"{pair.distance:.6f}", pair.kind])
    atomic.write_text(path, buffer.getvalue())


def issues(config: Union[Config, dict, str, None] = None, folds: int = 5, top: int = 24,
           out: Optional[Union[str, os.PathLike]] = None, *, quick: bool = True, resume: bool = False,
           overwrite: bool = False, embedding_threshold: float = _duplicates.EMBEDDING_THRESHOLD) -> IssuesResult:
    """Find likely label errors and near-duplicate images in a config's data.

    Args:
        config: a `Config`, dict or YAML path/text.
        folds: K of the cross-validation that gives the out-of-fold probabilities (>= 2).
        top: how many suspects the gallery (label_issues.png) shows; the CSV lists every image.
        out: the output folder (default `runs/NAME-issues`).
        quick: train only the head on frozen features, without augmentation (default); False
            cross-validates the config exactly as given.
        resume: finish an interrupted run of the same command.
        overwrite: write into an `out` that holds other files (they stay; tfft's own are replaced).
        embedding_threshold: the largest cosine distance of two images' backbone features that
            counts as a near-duplicate.

    Returns:
        An `IssuesResult`.

    Raises:
        UserError: a bad config, `folds` < 2 or more folds than images in a class, `top` < 1, or an
            `out` that holds files (without `resume` or `overwrite`).

    Example:
    >>> result = issues("configs/pets.yaml", folds=5, out="runs/pets-issues")  # doctest: +SKIP
    >>> [(r.index, r.given, r.suggested) for r in result.ranking[:3]]  # doctest: +SKIP
    """
    from tfft.studies.cv import check_folds

    cfg = _checked_config(config, top, quick)
    out_dir, cv_dir = _output_folders(cfg, out, resume, overwrite)
    check_folds(folds)
    print(f"issues: expected cost: a {folds}-fold cross-validation{' of the head on frozen features' if quick else ''} "
          "(its cost below), then one backbone pass over every image for near-duplicates (the features the "
          "folds stored are read, not recomputed)", flush=True)
    oof = out_of_fold(cfg, folds, cv_dir, resume=resume)
    paths, class_names = list(oof["keys"]), list(oof["class_names"])
    ranking = _label_issues.rank(oof["labels"], oof["probs"])
    _label_issues.write_csv(out_dir / LABEL_ISSUES_FILE, paths, class_names, ranking)
    flagged = sum(r.is_issue for r in ranking)
    print(f"issues: {flagged} of {len(paths)} labels flagged by confident learning; wrote {out_dir / LABEL_ISSUES_FILE}")
    pairs, split_of = _near_duplicates(cfg, cv_dir / "fold-1" / layout.MODEL, out_dir, embedding_threshold)
    _suspects_gallery(cfg, oof, ranking[:top], top, out_dir)
    return IssuesResult(out_dir, paths, class_names, ranking, pairs, split_of, cv_dir)


def _checked_config(config: Union[Config, dict, str, None], top: int, quick: bool) -> Config:
    """The resolved config (its quick form with `quick`), after checking the task and `top`."""
    from tfft.training.assembly import resolve

    cfg = resolve(config).config
    task_for(cfg.task).refuse("issues", "task", subject=str(cfg.data.source))
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise UserError("--top", f"expected an integer of at least 1, got {top!r}", "e.g. --top 24")
    if quick:
        cfg = resolve(quick_config(cfg)).config
    return cfg


def _output_folders(cfg: Config, out: Optional[Union[str, os.PathLike]], resume: bool,
                    overwrite: bool) -> tuple[Path, Path]:
    """OUT (checked, unless resuming) and OUT/cv, where the cross-validation runs."""
    out_dir = Path(out).expanduser() if out is not None else Path(cfg.training.runs_dir) / f"{cfg.name}-issues"
    cv_dir = out_dir / "cv"
    if not resume and cv_dir.exists() and any(cv_dir.iterdir()):
        raise UserError(f"--out {out_dir}", "already holds a run of `tfft data issues`",
                        "pass --resume to finish it, or choose another --out")
    if not resume:
        out_dir = atomic.check_output(out_dir, overwrite=overwrite)
    return out_dir, cv_dir


def _near_duplicates(cfg: Config, model_path: Path, out_dir: Path,
                     embedding_threshold: float) -> tuple[list[Any], dict[str, str]]:
    """Near-duplicate pairs among every image of every split (by `model_path`'s backbone features),
    written to duplicates.csv; returns them and each image's split."""
    files, split_names = _all_images(cfg)
    pairs: list[Any] = []
    split_of = dict(zip(files, split_names))
    if files:
        print(f"issues: looking for near-duplicates among {len(files)} images (bytes, perceptual hash, "
              "backbone features)")
        emb = embeddings(cfg, model_path, files)
        pairs = _duplicates.find_duplicates(files, emb, embedding_threshold=embedding_threshold)
    write_duplicates_csv(out_dir / DUPLICATES_FILE, pairs, split_of)
    across = sum(split_of.get(p.path_a) != split_of.get(p.path_b) for p in pairs)
    print(f"issues: {len(pairs)} near-duplicate pairs ({across} across splits); wrote {out_dir / DUPLICATES_FILE}")
    return pairs, split_of


def _suspects_gallery(cfg: Config, oof: dict[str, Any], shown: list[Any], top: int, out_dir: Path) -> None:
    """label_issues.png: the `shown` suspects, given and suggested label (sources with files only)."""
    from tfft.data.decode import fast_decode_on
    from tfft.reporting.plots import plot_gallery

    if shown and source_of(cfg.data.source).has_files:
        paths, class_names = list(oof["keys"]), list(oof["class_names"])
        probs = np.asarray(oof["probs"])
        plot_gallery([paths[r.index] for r in shown], [r.given for r in shown], [r.suggested for r in shown],
                     probs[[r.index for r in shown]], class_names, out_dir / GALLERY_FILE,
                     max_images=top, title=f"top {len(shown)} suspected label errors (given -> suggested)",
                     image_size=cfg.data.image_size, fast_decode=fast_decode_on(cfg.data))


__all__ = ["IssuesResult", "issues", "quick_config", "out_of_fold", "embeddings", "write_duplicates_csv",
           "LABEL_ISSUES_FILE", "DUPLICATES_FILE", "GALLERY_FILE"]

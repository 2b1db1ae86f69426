"""The figures a split's evaluation draws, by the names a `Task` lists in `Task.figures`.

`FIGURES` maps a name to a `Figure`: a function of one `SplitFigures` (what was scored) and
whether it is a detail figure (drawn by `tfft evaluate`, not at the end of training). A new task
names existing figures, or registers its own (`FIGURES.register("name", Figure(draw))`).

Example:
>>> "pr_curves" in FIGURES and "worst" in FIGURES
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tfft.registry import Registry
from tfft.reporting import label_plots
from tfft.reporting.plots import plot_confusion_matrix, plot_gallery
from tfft.task import SingleLabel
from tfft.wording import plural


@dataclass
class SplitFigures:
    """What a split's figures are drawn from.

    Attributes:
        labels: the labels as the pipeline yields them ([N] ints, or [N, C] multi-hot).
        probs: [N, C] probabilities.
        class_names: labels.txt order.
        metrics: the split's `Task.metrics_table`.
        out_dir: where the PNGs go; `suffix` is appended to their names (e.g. `_test`).
        thresholds: the task's thresholds (None for a task without them).
        images: index list -> their images (arrays) or file paths, for galleries (None: no gallery).
        gallery: keyword arguments of `plot_gallery` for file paths (image_size, fast_decode).
    """

    labels: np.ndarray
    probs: np.ndarray
    class_names: Sequence[str]
    metrics: dict[str, Any]
    out_dir: Path
    split: str = "val"
    suffix: str = ""
    thresholds: Any = None
    images: Optional[Callable[[Sequence[int]], list]] = None
    gallery: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.split}, {plural(len(self.labels), 'image')}"

    def path(self, stem: str) -> Path:
        return self.out_dir / f"{stem}{self.suffix}.png"


@dataclass(frozen=True)
class Figure:
    """A figure of a split: `draw(figures)`; `detail`: drawn by `tfft evaluate` only."""

    draw: Callable[[SplitFigures], Any]
    detail: bool = False


FIGURES: Registry[Figure] = Registry("figure", where="Task.figures")


def worst_examples(y: np.ndarray, probs: np.ndarray, limit: int = 16) -> tuple[np.ndarray, str]:
    """Indices of the most confident mistakes (or, without mistakes, the least confident hits)."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    if len(wrong):
        order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")]
        return order[:limit], "most confident mistakes"
    order = np.argsort(probs[np.arange(len(y)), y], kind="stable")
    return order[:limit], "no mistakes: least confident correct predictions"


def _confusion(f: SplitFigures) -> Any:
    return plot_confusion_matrix(f.metrics["confusion_matrix"], f.metrics["class_names"], f.path("confusion_matrix"),
                                 title=f"confusion matrix ({f.split}, {plural(f.metrics['num_examples'], 'image')})")


def _confusion_normalized(f: SplitFigures) -> Any:
    return plot_confusion_matrix(f.metrics["confusion_matrix"], f.class_names, f.path("confusion_matrix_normalized"),
                                 normalize=True)


def _worst(f: SplitFigures) -> Any:
    if f.images is None:
        return None
    y = SingleLabel.class_indices(f.labels)
    worst, caption = worst_examples(y, f.probs)
    return plot_gallery(f.images(worst.tolist()), y[worst], f.probs[worst].argmax(axis=1), f.probs[worst],
                        f.class_names, f.path("worst"), title=f"{f.split}: {caption}", **f.gallery)


def _pr_curves(f: SplitFigures) -> Any:
    return label_plots.plot_pr_curves(f.labels, f.probs, f.class_names, f.path("pr_curves"), thresholds=f.thresholds,
                                      title=f"precision-recall per label ({f.title})")


def _cooccurrence(f: SplitFigures) -> Any:
    return label_plots.plot_label_cooccurrence(f.labels, f.class_names, f.path("label_cooccurrence"),
                                               title=f"label co-occurrence ({f.title})")


def _label_confusion(f: SplitFigures) -> Any:
    return label_plots.plot_label_confusion(f.labels, f.probs, f.class_names, f.thresholds, f.path("confusion_matrix"),
                                            title=f"per-label decisions at the thresholds ({f.title})")


FIGURES.register("confusion_matrix", Figure(_confusion))
FIGURES.register("confusion_matrix_normalized", Figure(_confusion_normalized, detail=True))
FIGURES.register("worst", Figure(_worst, detail=True))
FIGURES.register("pr_curves", Figure(_pr_curves))
FIGURES.register("label_cooccurrence", Figure(_cooccurrence))
FIGURES.register("label_confusion", Figure(_label_confusion))


def draw(names: Sequence[str], figures: SplitFigures, detail: bool = False) -> None:
    """Draw the figures `names` (a task's `figures`) of one split; detail figures only with `detail`."""
    for name in names:
        figure = FIGURES.get(name)
        if detail or not figure.detail:
            figure.draw(figures)

"""What a study will cost, said before it starts: runs x (each phase's epochs and what they run on).

`tfft cv`, `tfft tune` and `tfft data issues` train many runs of one config. `study_cost` says how
many, how many epochs each phase has and whether the feature cache can serve it (the backbone's
features computed once, then head-only epochs), read from the resolved config alone, before any
image is read. It is an expectation, not a promise: `performance.cache_features: auto` still
declines a cache over 4 GiB, and a fine-tuning phase is cached only where one tensor cuts the
backbone (`tfft.training.feature_cache.cache_point`); the run's own `feature cache:` lines say
what happened. No time is guessed here: the studies print the first run's seconds instead.

Example:
>>> from tfft.training.assembly import resolve
>>> study_cost(resolve("configs/quickstart.yaml"), 5, "fold")  # doctest: +SKIP
'5 folds x (2 head epochs on cached features + 3 finetune epochs (top:1) on cached activations of the frozen bottom, where the backbone allows a cut)'
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence


def _cache_blocked(cfg: Any, image_size: Sequence[int]) -> Optional[str]:
    """Why no phase of this config can train on cached features (None when some can)."""
    from tfft.augment.augmenter import build_augmenter

    perf = cfg.performance
    if perf.cache_features == "off":
        return "performance.cache_features: off"
    with warnings.catch_warnings():  # build_augmenter's own warnings come again when the run builds it
        warnings.simplefilter("ignore")
        augmenter = build_augmenter(cfg.augment, tuple(int(d) for d in image_size), 2)
    if augmenter is None:
        return None
    if cfg.distill.teacher:
        return "the teacher must see each epoch's augmented images"
    if perf.cache_augmented_copies or len(augmenter.flip_outcomes) > 1:
        return None
    return "augmentation draws new images every epoch"


def phase_cost(run: Any) -> str:
    """Each phase's epochs and what they run on, joined by ` + `.

    Args:
        run: a `tfft.training.assembly.ResolvedRun` (its config and resolved phases).

    Returns:
        e.g. `2 head epochs on cached features + 3 finetune epochs (top:1) on the full model`.
    """
    blocked = _cache_blocked(run.config, run.image_size)
    parts = []
    for phase in run.phases:
        epochs = f"{'up to ' if phase.early_stopping else ''}{phase.epochs} {phase.name} epoch" \
                 + ("s" if phase.epochs != 1 else "")
        if phase.unfreeze == "none":
            where = "on cached features" if blocked is None else f"on the full model ({blocked})"
        elif phase.unfreeze == "all":
            where = "on the full model"
        else:
            where = f"({phase.unfreeze}) " + ("on cached activations of the frozen bottom, where the backbone "
                                              "allows a cut" if blocked is None else "on the full model")
        parts.append(f"{epochs} {where}")
    return " + ".join(parts)


def study_cost(run: Any, count: int, unit: str, varied: Sequence[str] = ()) -> str:
    """`COUNT UNITs x (phase_cost)`, plus a note when the search space changes the schedule.

    Args:
        run: the resolved base config (`ResolvedRun`).
        count: how many runs the study will train (folds, trials).
        unit: `fold` or `trial`.
        varied: search-space keys; any under `schedule.` or `performance.` makes runs differ.

    Returns:
        One line for the console.
    """
    noun = unit if count == 1 else f"{unit}s"
    line = f"{count} {noun} x ({phase_cost(run)})"
    changed = [key for key in varied if key.startswith(("schedule.", "performance.", "augment."))]
    if changed:
        line += f"; the search space changes {', '.join(changed)}, so trials differ from this"
    return line


__all__ = ["phase_cost", "study_cost"]

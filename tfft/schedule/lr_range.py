"""The learning-rate range test's arithmetic: rates, smoothing, the suggestion and its plot.

The test itself (a throwaway model trained one batch per rate, `tfft lr-find`) is
`tfft.training.lr_find`; this module is what it computes, with no model and no data.
Leslie Smith (2015), as fastai's `lr_find`: the loss of every batch is smoothed with a
bias-corrected exponential moving average (beta 0.98), and the test stops early once the smoothed
loss exceeds 4x the best so far (or the loss is NaN/Inf).

The suggested rate is the one where the smoothed loss falls fastest: the most negative slope of
the smoothed loss against log10(rate) (a central difference over +-1/4 decade), ignoring the first 10% (at most 10) and last 5% (at most
5) of the recorded points, where the moving average is still warming up or already diverging,
and everything after the lowest smoothed loss.
When the loss never falls (no negative slope), it is the rate of the lowest smoothed loss divided
by 10 instead. Either way it lies within [start_lr, end_lr]. With layer-wise rates
(`layer_decay` < 1) the rates shown are the head's; each backbone block gets its factor of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np

from tfft.atomic import atomic_path
from tfft.errors import UserError, did_you_mean
from tfft.schedule.phases import Phase

SMOOTHING = 0.98
DIVERGENCE_FACTOR = 4.0
MIN_STEPS = 5
DEFAULT_MAX_STEPS = 100  # fastai's num_it: a curve to read, in well under a training run
DEFAULT_MIN_STEPS = 30  # a small data set still gets a curve (its batches repeat)
DEFAULT_EPOCHS = 4  # the default covers this many passes over the training data, within the bounds above


def default_steps(steps_per_epoch: int) -> int:
    """The range test's default length: `DEFAULT_EPOCHS` passes over the data, clipped to
    [`DEFAULT_MIN_STEPS`, `DEFAULT_MAX_STEPS`].

    Example:
    >>> default_steps(25), default_steps(2), default_steps(500)  # pets-mini (800 images / 32), tiny, large
    (100, 30, 100)
    """
    return int(min(DEFAULT_MAX_STEPS, max(DEFAULT_MIN_STEPS, DEFAULT_EPOCHS * int(steps_per_epoch))))


def exponential_rates(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """The rates of the range test: `steps` values growing geometrically from start to end.

    Args:
        start_lr: the first rate.
        end_lr: the last rate.
        steps: how many rates.

    Example:
    >>> [float(f"{r:.0e}") for r in exponential_rates(1e-4, 1.0, 5)]
    [0.0001, 0.001, 0.01, 0.1, 1.0]
    """
    return np.geomspace(start_lr, end_lr, steps)


def smooth(losses: Sequence[float], beta: float = SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average (fastai's smoothing of the range test).

    Args:
        losses: the raw losses in order.
        beta: the weight of the past; 0 returns the losses unchanged.

    Example:
    >>> smooth([1.0, 1.0, 1.0]).round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    out, average = [], 0.0
    for i, loss in enumerate(losses, start=1):
        average = beta * average + (1.0 - beta) * float(loss)
        out.append(average / (1.0 - beta ** i))
    return np.asarray(out, dtype="float64")


def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> tuple[float, str]:
    """The suggested rate: the steepest descent of the smoothed loss, or min-loss rate / 10.

    The slope is taken against log10(rate) as a central difference over +-1/4 decade, over the points left after dropping the first 10%
    (at most 10) and the last 5% (at most 5), before the lowest smoothed loss among them. If no
    slope there is negative, or fewer than 3 points remain, the rate of the lowest smoothed loss divided by 10 is returned instead
    (clipped to the tested range).

    Args:
        lrs: the tested rates, increasing.
        smoothed: the smoothed loss at each rate.

    Returns:
        `(rate, rule)` with rule `steepest` or `min/10`.

    Example:
    >>> lrs = exponential_rates(1e-5, 1.0, 51)
    >>> loss = 2.0 - np.tanh(np.log10(lrs) + 2.5)  # falls fastest at 10**-2.5
    >>> rate, rule = suggest_lr(lrs, loss)
    >>> rule, round(float(np.log10(rate)), 1)
    ('steepest', -2.5)
    """
    lrs = np.asarray(lrs, dtype="float64")
    smoothed = np.asarray(smoothed, dtype="float64")
    if len(lrs) == 0:
        raise ValueError("no points to suggest a rate from")
    n = len(lrs)
    skip_start = min(10, n // 10)
    skip_end = min(5, n // 20)
    window = slice(skip_start, n - skip_end)
    x, y = np.log10(lrs[window]), smoothed[window]
    if len(x) >= 3:
        # Central differences over +-1/4 decade (at least one point), so batch noise on a flat
        # stretch does not pass for a descent.
        per_decade = (len(x) - 1) / max(x[-1] - x[0], 1e-12)
        h = max(1, int(round(0.25 * per_decade)))
        ahead = np.minimum(np.arange(len(x)) + h, len(x) - 1)
        behind = np.maximum(np.arange(len(x)) - h, 0)
        slopes = (y[ahead] - y[behind]) / (x[ahead] - x[behind])
        # Only the descent: points before the lowest smoothed loss (after it is divergence noise).
        descent = slopes[: int(np.argmin(y))]
        if descent.size and descent.min() < 0:
            return float(lrs[window][int(np.argmin(descent))]), "steepest"
    rate = float(lrs[int(np.argmin(smoothed))]) / 10.0
    return float(np.clip(rate, lrs[0], lrs[-1])), "min/10"


def select_phase(phases: Sequence[Phase], phase: Union[int, str, None]) -> tuple[int, Phase]:
    """The phase to test: by name, by index into `schedule.phases` (from 0), or the default.

    The default is the first phase (the head phase of a two-phase schedule: with a frozen
    backbone it trains on cached features, so the test takes seconds, not a training run).

    Args:
        phases: the resolved phases.
        phase: a phase name, an index (an int or a string of digits, negative from the end),
            or None for the first phase.

    Returns:
        `(index, phase)`.

    Raises:
        UserError: the name or index matches no phase.

    Example:
    >>> from tfft.config import ScheduleConfig
    >>> from tfft.schedule.phases import resolve_phases
    >>> phases = resolve_phases(ScheduleConfig(preset="two_phase"), 5)
    >>> [select_phase(phases, p)[1].name for p in (None, "head", 1, "-1")]
    ['head', 'head', 'finetune', 'finetune']
    """
    names = [p.name for p in phases]
    if phase is None:
        return 0, phases[0]
    text = str(phase).strip()
    if text in names:
        index = names.index(text)
        return index, phases[index]
    try:
        index = int(text)
    except ValueError:
        hint = did_you_mean(text, names) or f"phases: {', '.join(names)} (or an index 0..{len(names) - 1})"
        raise UserError("--phase", f"no phase named {text!r}", hint) from None
    if not -len(phases) <= index < len(phases):
        raise UserError("--phase", f"index {index} is out of range (the schedule has {len(phases)} phase(s))",
                        f"use 0..{len(phases) - 1} or a name: {', '.join(names)}")
    index %= len(phases)
    return index, phases[index]


def check_range(start_lr: float, end_lr: float, steps: Optional[int]) -> None:
    """Refuse a rate range that is not increasing and positive, or fewer than `MIN_STEPS` steps
    (None: the default, `default_steps`)."""
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise UserError("--start-lr", f"expected a rate > 0, got {start_lr!r}", "e.g. 1e-7")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise UserError("--end-lr", f"expected a rate above --start-lr ({start_lr:g}), got {end_lr!r}", "e.g. 10")
    if steps is not None and int(steps) < MIN_STEPS:
        raise UserError("--steps", f"expected at least {MIN_STEPS} steps, got {steps}",
                        f"e.g. {DEFAULT_MAX_STEPS}, or leave it out (the default follows the data)")


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                 suggestion: float, path: Union[str, Path], title: str = "") -> Path:
    """Draw loss against rate (log x-axis), raw and smoothed, the suggestion marked; PNG, atomic.

    Args:
        lrs: the tested rates.
        losses: the raw loss per rate.
        smoothed: the smoothed loss per rate.
        suggestion: the rate to mark.
        path: where to write the PNG.
        title: the plot title.

    Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "lr.png"
    >>> lrs = exponential_rates(1e-4, 1.0, 20)
    >>> plot_lr_find(lrs, np.ones(20), np.ones(20), 1e-2, out).stat().st_size > 1000
    True
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    lrs = np.asarray(lrs, dtype="float64")
    smoothed = np.asarray(smoothed, dtype="float64")
    figure = Figure(figsize=(7, 4.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(lrs, losses, color="0.75", linewidth=1, label="loss per batch")
    axes.plot(lrs, smoothed, color="C0", linewidth=2, label="smoothed loss")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss")
    # Clip raw spikes of the divergent tail so the interesting part of the curve stays readable.
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        span = max(high - low, 1e-3)
        axes.set_ylim(low - 0.1 * span, high + 0.15 * span)
    marked = float(np.interp(math.log10(suggestion), np.log10(lrs), smoothed)) if len(lrs) > 1 else smoothed[0]
    axes.axvline(suggestion, color="C3", linestyle="--", linewidth=1)
    axes.plot([suggestion], [marked], "o", color="C3", label=f"suggested lr {suggestion:.2e}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left")
    axes.set_title(title or "learning-rate range test")
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    return path

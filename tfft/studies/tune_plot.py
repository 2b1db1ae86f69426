"""tune.png: a study's objective by trial (the best so far as a line), and each parameter against it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tfft.studies.space import Param


def plot_study(trials: list[Any], params: list[Param], metric: str, direction: str, path: Path, optuna: Any) -> None:
    """Draw tune.png: the objective by trial (best so far as a line), and each parameter against it."""
    from tfft.reporting.plots import pyplot, save_figure

    TrialState = optuna.trial.TrialState
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.value is not None]
    if not done:
        return
    plt = pyplot()
    panels = 1 + len(params)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    axes = axes.ravel()
    complete = sorted((t for t in done if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    ax = axes[0]
    ax.scatter([t.number for t in complete], [t.value for t in complete], s=18, label="complete")
    if pruned:
        ax.scatter([t.number for t in pruned], [t.value for t in pruned], s=18, marker="x", color="grey",
                   label="pruned (last epoch)")
    best, xs, ys = None, [], []
    for t in complete:
        if best is None or (t.value < best if direction == "minimize" else t.value > best):
            best = t.value
        xs.append(t.number)
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"val {metric}")
    ax.set_title("objective by trial")
    ax.legend(fontsize=7)
    for ax, param in zip(axes[1:], params):
        points = [(t.params[param.key], t.value) for t in complete if param.key in t.params]
        if param.kind == "choice":
            labels = [str(c) for c in param.encoded_choices]
            index = {c: i for i, c in enumerate(param.encoded_choices)}
            ax.scatter([index[x] for x, _ in points], [y for _, y in points], s=18)
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
        else:
            ax.scatter([x for x, _ in points], [y for _, y in points], s=18)
            if param.kind == "log_uniform" or param.log:
                ax.set_xscale("log")
        ax.set_xlabel(param.key)
        ax.set_ylabel(f"val {metric}")
    for ax in axes[panels:]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)


__all__ = ["plot_study"]

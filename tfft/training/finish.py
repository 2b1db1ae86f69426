"""The end of a run: the weights model.keras keeps, the evaluation, the figures and the report.

`finish_run` restores the best epoch's weights (`training.save: best`), saves model.keras
(`save_model`), scores every split of `evaluate.splits` (`evaluate_splits`; a task with
thresholds first chooses them on val), draws curves.png and writes metrics.json (last: it marks
the run finished), report.md and report.html.
"""

from __future__ import annotations

from typing import Any, Optional

from tfft import layout
from tfft.atomic import atomic_path, write_json
from tfft.reporting.evaluate import choose_thresholds, collect, evaluate_split
from tfft.reporting.html import write_html_report
from tfft.data.pipeline import make_dataset
from tfft.reporting.plots import plot_curves
from tfft.reporting.top_losses import write_run_top_losses
from tfft.reporting.report import write_report
from tfft.training.plan import Progress
from tfft.training.session import Session


def portable(model: Any) -> Any:
    """The model as model.keras holds it: compiled with a loss of tfft's own (the weighted binary
    cross-entropy), it is saved as an uncompiled model of the same layers, so that it still loads
    in a Python that never imports tfft (the compile state lives in the checkpoints)."""
    import keras

    loss = getattr(model, "loss", None)
    if getattr(model, "compiled", False) and loss is not None and not type(loss).__module__.startswith("keras"):
        return keras.Model(model.inputs, model.outputs, name=model.name)
    return model


def finish_run(session: Session, progress: Progress, val_features: Optional[Any] = None) -> dict[str, Any]:
    """Best weights, model.keras, metrics of every evaluated split, curves.png, metrics.json, the reports.

    Args:
        session: the trained run.
        progress: its history and phase rows (`tfft.training.plan.Progress`).
        val_features: the last phase's `FeatureCache`, whose val features score the final model
            when its frozen part is unchanged.

    Returns:
        The metrics per evaluated split ({} on a non-chief worker, which writes nothing).

    Example:
    >>> metrics = finish_run(session, plan.progress)  # doctest: +SKIP
    """
    restore_best(session, progress)
    if session.lora:  # LoRA: adapters folded into the kernels, a plain model saved
        from tfft.schedule import lora

        print(f"lora: adapters of {lora.merge(session.model)} layers merged into their kernels")
    if not session.chief:
        return {}
    save_model(session)
    metrics, thresholds, val_scored = evaluate_splits(session, val_features)
    plot_curves(progress.history, session.path / layout.CURVES, phases=progress.phase_rows,
                best=progress.state.get("best_epoch"), saved=session.cfg.training.save)
    # report.html's val top losses with heatmaps (one batch; a note when there is no val), from the
    # evaluation's val probabilities when it scored val (no second pass of the model over it)
    val = (make_dataset(session.splits, "val", session.cfg.data, seed=session.cfg.seed, training=False)
           if session.has_val else None)
    write_run_top_losses(session.model, val, session.class_names, session.path, session.asm.task,
                         thresholds=thresholds, scored=val_scored)
    write_json(session.path / layout.METRICS, metrics)
    write_report(session.path)
    write_html_report(session.path)
    return metrics


def restore_best(session: Session, progress: Progress) -> None:
    """With `training.save: best`, the best epoch's weights (and BatchNorm statistics to match)."""
    from tfft.training import checkpoint

    best = session.path / checkpoint.BEST
    state = progress.state
    if session.cfg.training.save == "best" and best.exists():
        checkpoint.restore(best, session.model.variables)
        print(f"model.keras: best weights (epoch {state.get('best_epoch')}, "
              f"{'val_loss' if session.has_val else 'loss'} {state.get('best'):.4f})")
        session.recompute_batchnorm(state.get("bn_recomputed", []))  # the epoch's weights, statistics to match


def save_model(session: Session) -> None:
    """model.keras, atomically."""
    with atomic_path(session.path / layout.MODEL, suffix=".keras") as tmp:
        portable(session.model).save(tmp)


def _out_dir(session: Session, split: str) -> Any:
    splits = session.splits.splits
    return session.path if split == "val" or "val" not in splits else session.path / layout.EVAL / split


def evaluate_splits(session: Session, val_features: Optional[Any] = None) -> tuple[dict[str, Any], Any, Any]:
    """The metrics of every split of `evaluate.splits` the data has, at the thresholds the task
    chooses on val (thresholds.json; none for a task without them), with their figures in the run
    directory (val) or eval/<split>/: (metrics by split, thresholds or None, val's (labels,
    probabilities) in its order or None when val was not scored)."""
    from tfft import data

    cfg, splits, task = session.cfg, session.splits, session.asm.task
    wanted = [s for s in cfg.evaluate.splits if s in splits.splits and len(splits.splits[s])]
    scored = {}
    for split in sorted(set(wanted) | ({"val"} if session.has_val and task.thresholded else set())):
        cached = val_features if split == "val" else None
        if cached is not None and cached.val_still_valid():  # the frozen part is unchanged
            model, dataset = cached.head, cached.val
            print("val: scored on the cached backbone features")
        else:
            model = session.model
            dataset = data.make_dataset(splits, split, cfg.data, seed=cfg.seed, training=False)
        scored[split] = collect(model, dataset, width=len(session.class_names))
    thresholds = choose_thresholds(task, *scored.get("val", (None, None)), session.class_names, session.path)
    metrics = {}
    for split in wanted:
        metrics[split] = evaluate_split(task, *scored[split], session.class_names, _out_dir(session, split),
                                        split=split, thresholds=thresholds, top_k=cfg.evaluate.top_k,
                                        suffix="" if split == "val" else f"_{split}")
        print(f"{split}: {task.summary(metrics[split])}")
    return metrics, thresholds, scored.get("val")

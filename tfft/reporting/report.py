"""`write_report`: one Markdown page per run (config, data, phases, metrics, figures)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Optional

from tfft.errors import UserError
from tfft.task import task_of_metrics
from tfft.reporting.plots import best_epoch
from tfft.wording import plural
from tfft import layout
from tfft.atomic import write_text

MAX_CLASS_ROWS = 40  # report.md's per-class count table stops here; data_report.json has them all


def read_json(path: Path) -> Optional[Any]:
    """A JSON file's content, or None when it is missing or not JSON (a report shows what there is)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def write_report(run_dir: str | os.PathLike) -> Path:
    """Write RUN_DIR/report.md from what the run directory holds; missing parts are skipped.

    Args:
        run_dir: a folder written by `tfft train` (config.yaml, data_report.json, phases.json,
            history.csv, metrics.json, eval/*/metrics.json, curves.png, confusion_matrix.png).

    Returns:
        The path of report.md.

    Example:
    >>> write_report("runs/quickstart")  # doctest: +SKIP
    PosixPath('runs/quickstart/report.md')
    """
    root = Path(run_dir).expanduser()
    if not root.is_dir():
        raise UserError(str(root), "run directory not found",
                        "give the folder that `tfft train` printed as `run dir: PATH`")
    lines = [f"# Run report: {root.resolve().name}", ""]
    config_text = (root / layout.CONFIG).read_text(encoding="utf-8") if (root / layout.CONFIG).is_file() else None
    cfg, config_lines = _config_lines(config_text)
    lines += config_lines
    labels = root / layout.LABELS
    if labels.is_file():
        names = [n for n in labels.read_text(encoding="utf-8").splitlines() if n.strip()]
        lines += [f"Classes ({len(names)}): " + ", ".join(names[:50]) + (" ..." if len(names) > 50 else ""), ""]

    lines += _data_lines(read_json(root / layout.DATA_REPORT))

    phases = read_json(root / layout.PHASES)
    if isinstance(phases, list) and phases:
        lines += ["## Phases", "", "| phase | epochs | unfreeze | lr | trainable | non-trainable |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for p in phases:
            lines.append(f"| {p.get('name')} | {p.get('epochs')} | `{p.get('unfreeze')}` | {_num(p.get('lr'))} "
                         f"| {_num(p.get('trainable_params'))} | {_num(p.get('non_trainable_params'))} |")
        lines.append("")

    lines += _training_lines(root / layout.HISTORY, saved=(cfg.get("training") or {}).get("save", "best"))
    if (root / layout.CURVES).is_file():
        lines += ["![training curves](curves.png)", ""]

    lines += _metrics_lines(root)
    lines += _threshold_lines(read_json(root / layout.THRESHOLD_INTERVALS))
    if (root / layout.CONFUSION_MATRIX).is_file():
        lines += ["![confusion matrix](confusion_matrix.png)", ""]
    for split_dir in sorted((root / layout.EVAL).glob("*")) if (root / layout.EVAL).is_dir() else []:
        for name in ("confusion_matrix.png", "worst.png"):
            if (split_dir / name).is_file():
                lines += [f"![{split_dir.name} {name[:-4]}](eval/{split_dir.name}/{name})", ""]
    lines += _loading_lines(root / layout.MODEL)
    env = read_json(root / layout.ENVIRONMENT)
    if isinstance(env, dict):
        lines += ["## Environment", "", "| key | value |", "| --- | --- |"]
        lines += [f"| {k} | {json.dumps(v) if isinstance(v, (dict, list)) else v} |" for k, v in env.items()]
        lines.append("")
    if config_text:
        lines += ["## Config", "", "```yaml", config_text.rstrip(), "```", ""]
    path = root / layout.REPORT
    write_text(path, "\n".join(lines))
    return path


def _config_lines(config_text: Optional[str]) -> tuple[dict[str, Any], list[str]]:
    """(the config as a dict, its backbone and data lines); an unreadable config gives none."""
    if not config_text:
        return {}, []
    try:
        import yaml

        loaded = yaml.safe_load(config_text)
        cfg = loaded if isinstance(loaded, dict) else {}
        model = cfg.get("model", {})
        data = cfg.get("data", {})
        return cfg, [f"- backbone: `{model.get('backbone')}` (weights: `{model.get('weights')}`)",
                     f"- data: `{data.get('source')}` at {data.get('image_size')}, batch {data.get('batch_size')}", ""]
    except Exception:  # an unreadable config still gets printed whole at the end
        return {}, []


def _metrics_lines(root: Path) -> list[str]:
    """Each split's table (its task's `format_table`): metrics.json's, then `tfft evaluate`'s."""
    metrics = read_json(root / layout.METRICS) or {}
    for eval_file in sorted((root / layout.EVAL).glob("*/metrics.json")) if (root / layout.EVAL).is_dir() else []:
        for split, values in (read_json(eval_file) or {}).items():  # the folder: `val`, or `new_pets-val` (--data)
            metrics.setdefault(f"{eval_file.parent.name} (tfft evaluate)", values)
    lines = ["## Metrics", ""] if metrics else []
    for split, values in metrics.items():
        if isinstance(values, dict) and "per_class" in values:
            lines += [f"### {split}", ""] + [f"**Warning:** {w}\n" for w in values.get("warnings", [])]
            lines += ["```", task_of_metrics(values).format_table(values), "```", ""]
    return lines


def _loading_lines(model: Path) -> list[str]:
    """How to load model.keras with plain Keras (and keras_hub first where it holds its layers)."""
    if not model.is_file():
        return []
    from tfft.backbones.model_utils import needs_keras_hub

    hub = needs_keras_hub(model)
    lines = ["## Loading model.keras", ""]
    if hub:
        lines += ["model.keras holds KerasHub layers (a `hub:` backbone): loading it needs "
                  "`keras_hub` installed (`pip install keras-hub`) and imported first.", ""]
    lines += ["```python"] + (["import keras_hub  # registers the KerasHub layers model.keras holds"] if hub else [])
    lines += ["import keras", "", "model = keras.models.load_model(\"model.keras\")  # raw 0-255 RGB in, "
              "probabilities out", "```", ""]
    return lines


def _data_lines(report: Any) -> list[str]:
    """## Data: the source, images per split and class (a table), skipped files; never raw JSON."""
    if report is None:
        return []
    lines = ["## Data", ""]
    if not isinstance(report, dict):
        return lines + [f"see `{layout.DATA_REPORT}`", ""]
    splits = {name: split for name, split in (report.get("splits") or {}).items() if isinstance(split, dict)}
    classes = list(report.get("classes") or dict.fromkeys(c for split in splits.values()
                                                          for c in split.get("per_class") or {}))
    if report.get("source") is not None:
        lines.append(f"- source: `{report['source']}`")
    if report.get("task") is not None:
        lines.append(f"- task: {report['task']}")
    lines += [f"- images per split and class below; every count and skipped file: `{layout.DATA_REPORT}`", ""]
    if splits:
        names = list(splits)
        lines += ["| class | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
        for name in classes[:MAX_CLASS_ROWS]:
            lines.append(f"| {name} | " + " | ".join(str((splits[s].get("per_class") or {}).get(name, "-"))
                                                     for s in names) + " |")
        if len(classes) > MAX_CLASS_ROWS:
            lines.append(f"| ... {plural(len(classes) - MAX_CLASS_ROWS, 'more class')} | "
                         + " | ".join("" for _ in names) + " |")
        lines += ["| **images** | " + " | ".join(str(splits[s].get("images", "-")) for s in names) + " |", ""]
    skipped = report.get("skipped") or []
    count = report.get("skipped_count", len(skipped))
    lines.append(f"- skipped: {plural(int(count), 'unreadable file')}")
    for item in skipped[:20]:
        text = f"{item.get('path')}: {item.get('reason')}" if isinstance(item, dict) else str(item)
        lines.append(f"  - `{text}`")
    if len(skipped) > 20:
        lines.append(f"  - ... {len(skipped) - 20} more in `{layout.DATA_REPORT}`")
    return lines + [""]


def _training_lines(history: Path, saved: str) -> list[str]:
    """## Training: the number of epochs, the last epoch's values and the best epoch (`saved`:
    the run's `training.save`, which says whether model.keras holds it)."""
    if not history.is_file():
        return []
    with open(history, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return []
    last = rows[-1]
    lines = ["## Training", "",
             f"{plural(len(rows), 'epoch')}; last: " + ", ".join(f"{k} {_num(_float(v))}" for k, v in last.items()
                                                                 if k not in ("epoch", "phase"))]
    best = best_epoch(rows)
    if best is not None:
        held = "model.keras holds it" if saved == "best" else "model.keras holds the last epoch (training.save: last)"
        lines.append(f"best: epoch {best[0]}, {best[1]} {_num(best[2])}; {held}")
    return lines + [""]


def _threshold_lines(document: Any) -> list[str]:
    """A multi-label run's thresholds with their bootstrap intervals (threshold_intervals.json)."""
    if not isinstance(document, dict) or not isinstance(document.get("labels"), dict):
        return []
    lines = ["## Thresholds", "", str(document.get("method", "")), "",
             "| label | threshold | 90% interval | val positives | F1-best cut |", "| --- | --- | --- | --- | --- |"]
    for name, row in document["labels"].items():
        interval = row.get("interval")
        shown = f"{interval[0]:.3f} - {interval[1]:.3f}" if isinstance(interval, list) and len(interval) == 2 else "-"
        lines.append(f"| {name} | {_num(row.get('threshold'))} | {shown} | {_num(row.get('positives'))} "
                     f"| {_num(row.get('f1_best'))} |")
    return lines + [""]


def _float(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value

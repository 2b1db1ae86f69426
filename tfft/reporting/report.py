"""`write_report`: one Markdown page per run (config, data, phases, metrics, figures)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Optional

from tfft.errors import UserError

from tfft.reporting.wording import plural
from tfft.reporting.metrics import format_table
from tfft import layout
from tfft.atomic import write_text


def _read_json(path: Path) -> Optional[Any]:
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
    lines = [f"# Run report: {root.name}", ""]
    config_text = (root / layout.CONFIG).read_text(encoding="utf-8") if (root / layout.CONFIG).is_file() else None
    if config_text:
        try:
            import yaml

            cfg = yaml.safe_load(config_text) or {}
            model = cfg.get("model", {})
            data = cfg.get("data", {})
            lines += [f"- backbone: `{model.get('backbone')}` (weights: `{model.get('weights')}`)",
                      f"- data: `{data.get('source')}` at {data.get('image_size')}, batch {data.get('batch_size')}",
                      ""]
        except Exception:  # an unreadable config still gets printed below
            pass
    labels = root / layout.LABELS
    if labels.is_file():
        names = [n for n in labels.read_text(encoding="utf-8").splitlines() if n.strip()]
        lines += [f"Classes ({len(names)}): " + ", ".join(names[:50]) + (" ..." if len(names) > 50 else ""), ""]

    report = _read_json(root / layout.DATA_REPORT)
    if report is not None:
        lines += ["## Data", ""]
        if isinstance(report, dict):
            skipped = report.get("skipped") or []
            lines += ["| key | value |", "| --- | --- |"]
            for key, value in report.items():
                if key == "skipped":
                    continue
                lines.append(f"| {key} | {_num(value) if not isinstance(value, (dict, list)) else json.dumps(value)[:200]} |")
            lines.append(f"| skipped | {plural(len(skipped), 'file')} |")
            for item in skipped[:20]:
                text = f"{item.get('path')}: {item.get('reason')}" if isinstance(item, dict) else str(item)
                lines.append(f"- skipped `{text}`")
        lines.append("")

    phases = _read_json(root / layout.PHASES)
    if isinstance(phases, list) and phases:
        lines += ["## Phases", "", "| phase | epochs | unfreeze | lr | trainable | non-trainable |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for p in phases:
            lines.append(f"| {p.get('name')} | {p.get('epochs')} | `{p.get('unfreeze')}` | {_num(p.get('lr'))} "
                         f"| {_num(p.get('trainable_params'))} | {_num(p.get('non_trainable_params'))} |")
        lines.append("")

    history = root / layout.HISTORY
    if history.is_file():
        with open(history, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows:
            last = rows[-1]
            lines += ["## Training", "",
                      f"{len(rows)} epochs; last: " + ", ".join(f"{k} {_num(_float(v))}" for k, v in last.items()
                                                              if k not in ("epoch", "phase")), ""]
    if (root / layout.CURVES).is_file():
        lines += ["![training curves](curves.png)", ""]

    metrics = _read_json(root / layout.METRICS) or {}
    for eval_file in sorted((root / layout.EVAL).glob("*/metrics.json")) if (root / layout.EVAL).is_dir() else []:
        for split, values in (_read_json(eval_file) or {}).items():  # the folder: `val`, or `new_pets-val` (--data)
            metrics.setdefault(f"{eval_file.parent.name} (tfft evaluate)", values)
    if metrics:
        lines += ["## Metrics", ""]
        for split, values in metrics.items():
            if isinstance(values, dict) and "per_class" in values:
                lines += [f"### {split}", "", "```", format_table(values), "```", ""]
    if (root / layout.CONFUSION_MATRIX).is_file():
        lines += ["![confusion matrix](confusion_matrix.png)", ""]
    for split_dir in sorted((root / layout.EVAL).glob("*")) if (root / layout.EVAL).is_dir() else []:
        for name in ("confusion_matrix.png", "worst.png"):
            if (split_dir / name).is_file():
                lines += [f"![{split_dir.name} {name[:-4]}](eval/{split_dir.name}/{name})", ""]
    env = _read_json(root / layout.ENVIRONMENT)
    if isinstance(env, dict):
        lines += ["## Environment", "", "| key | value |", "| --- | --- |"]
        lines += [f"| {k} | {json.dumps(v) if isinstance(v, (dict, list)) else v} |" for k, v in env.items()]
        lines.append("")
    if config_text:
        lines += ["## Config", "", "```yaml", config_text.rstrip(), "```", ""]
    path = root / layout.REPORT
    write_text(path, "\n".join(lines))
    return path


def _float(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value

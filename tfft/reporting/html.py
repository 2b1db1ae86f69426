"""`write_html_report`: report.html, one self-contained page per run or study folder.

Everything is inside the file (PNGs base64-embedded, CSS inline, no script, no network), so it
opens from a mail attachment or a copied folder. It shows what the folder holds, skipping what is
absent: the config, data counts and bad files, training curves, metrics per split and class, the
confusion matrix, the val top losses with heatmaps that training draws, `tfft evaluate` and
`tfft interpret` figures (top losses with heatmaps, galleries), and a
study's tables (cv, tune, data issues: every CSV and JSON summary in the folder). report.md stays
for terminals.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
from pathlib import Path
from typing import Any

from tfft import layout
from tfft.atomic import write_text
from tfft.errors import UserError
from tfft.reporting.report import read_json

REPORT_HTML = "report.html"
MAX_TABLE_ROWS = 30  # a study's CSV shows its first rows here; the file has them all
MAX_IMAGES = 40  # figures embedded per page (a cv folder's folds are not descended into)
_SKIP_CSV = {layout.HISTORY}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#1b1b1b;background:#fff;padding:0 1em}
h1{border-bottom:2px solid #2b6cb0}h2{margin-top:1.6em;color:#2b6cb0}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#edf2f7}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
pre{background:#f7fafc;border:1px solid #e2e8f0;padding:.8em;overflow:auto;font-size:.85em}
.muted{color:#666}.wide{overflow-x:auto}
"""


def _esc(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}"
    return html.escape("-" if value is None else str(value))


def _table(header: list, rows: list) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(path: Path, root: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = _esc(path.relative_to(root).as_posix())
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _data_section(report: Any) -> list[str]:
    if not isinstance(report, dict):
        return []
    parts = ["<h2>Data</h2>", f"<p>source: <code>{_esc(report.get('source'))}</code></p>"]
    splits = {k: v for k, v in (report.get("splits") or {}).items() if isinstance(v, dict)}
    if splits:
        classes = list(dict.fromkeys(c for s in splits.values() for c in s.get("per_class") or {}))
        rows = [[c] + [(s.get("per_class") or {}).get(c, "-") for s in splits.values()] for c in classes]
        rows.append(["images"] + [s.get("images", "-") for s in splits.values()])
        parts.append(_table(["class"] + list(splits), rows))
    skipped = report.get("skipped") or []
    parts.append(f"<p>unreadable files skipped: {_esc(report.get('skipped_count', len(skipped)))}</p>")
    if skipped:
        parts.append(_table(["path", "reason"], [[s.get("path"), s.get("reason")] if isinstance(s, dict) else [s, ""]
                                                 for s in skipped[:MAX_TABLE_ROWS]]))
    return parts


def _metrics_section(metrics: dict) -> list[str]:
    parts = []
    for split, values in metrics.items():
        if not isinstance(values, dict):
            continue
        summary = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        parts.append(f"<h3>{_esc(split)}</h3>")
        if summary:
            parts.append(_table(list(summary), [list(summary.values())]))
        per_class = values.get("per_class")
        if isinstance(per_class, dict) and per_class:
            keys = list(dict.fromkeys(k for row in per_class.values() if isinstance(row, dict) for k in row))
            parts.append(_table(["class"] + keys, [[name] + [row.get(k) for k in keys]
                                                   for name, row in per_class.items() if isinstance(row, dict)]))
    return (["<h2>Metrics</h2>"] + parts) if parts else []


def _csv_section(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if not rows:
        return []
    more = len(rows) - 1 - MAX_TABLE_ROWS
    note = f'<p class="muted">first {MAX_TABLE_ROWS} of {len(rows) - 1} rows; all in {_esc(path.name)}</p>' if more > 0 else ""
    return [f"<h3>{_esc(path.name)}</h3>", _table(rows[0], rows[1:MAX_TABLE_ROWS + 1]), note]


def _top_losses_section(root: Path) -> list[str]:
    """The val top losses that training drew (top_losses.png and .json), or its note when skipped."""
    summary = read_json(root / layout.TOP_LOSSES_JSON)
    if not isinstance(summary, dict):
        return []
    parts = ["<h2>Top losses (val, at the end of training)</h2>"]
    if summary.get("note"):
        parts.append(f'<p class="muted">{_esc(summary["note"])}</p>')
    if (root / layout.TOP_LOSSES).is_file():
        parts.append(_figure(root / layout.TOP_LOSSES, root))
    rows = [r for r in summary.get("top_losses") or [] if isinstance(r, dict)]
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        parts.append(_table(keys, [[r.get(k) for k in keys] for r in rows]))
    return parts


def write_html_report(run_dir: str | os.PathLike) -> Path:
    """Write DIR/report.html: a self-contained page of a run, cv, tune or ensemble folder.

    Args:
        run_dir: a folder written by `tfft train`, `cv`, `tune`, `ensemble` or `data issues`.

    Returns:
        The path of report.html.

    Example:
    >>> write_html_report("runs/quickstart")  # doctest: +SKIP
    PosixPath('runs/quickstart/report.html')
    """
    root = Path(run_dir).expanduser()
    if not root.is_dir():
        raise UserError(str(root), "folder not found", "give the folder that `tfft train` printed as `run dir: PATH`")
    body = [f"<h1>{_esc(root.resolve().name)}</h1>"]
    labels = root / layout.LABELS
    if labels.is_file():
        names = [n for n in labels.read_text(encoding="utf-8").splitlines() if n.strip()]
        body.append(f"<p>{len(names)} classes: {_esc(', '.join(names[:50]))}</p>")
    body += _data_section(read_json(root / layout.DATA_REPORT))
    metrics = read_json(root / layout.METRICS)
    evals = sorted((root / layout.EVAL).glob("*/metrics.json")) if (root / layout.EVAL).is_dir() else []
    merged = dict(metrics) if isinstance(metrics, dict) else {}
    for path in evals:
        for split, values in (read_json(path) or {}).items():
            merged.setdefault(f"{split} (tfft evaluate)", values)
    body += _metrics_section(merged)
    body += _top_losses_section(root)
    figures = [p for p in sorted(root.glob("*.png")) if p.name != layout.TOP_LOSSES]
    figures += sorted(root.glob(f"{layout.EVAL}/*/*.png"))
    interpreted = sorted(root.glob("interpret/*/*.png"), key=lambda p: (p.parent.name, p.name != "top_losses.png",
                                                                         p.name))
    if figures:
        body += ["<h2>Figures</h2>"] + [_figure(p, root) for p in figures[:MAX_IMAGES]]
    if interpreted:
        body += ["<h2>Where the model looks (tfft interpret, Grad-CAM)</h2>",
                 "<p>Each tile: the image as the model saw it, and beside it the heatmap of the predicted "
                 "class (red: the regions that raise its score most).</p>"]
        body += [_figure(p, root) for p in interpreted[:MAX_IMAGES]]
    tables = [p for p in sorted(root.glob("*.csv")) if p.name not in _SKIP_CSV]
    if tables:
        body.append("<h2>Tables</h2>")
        for path in tables:
            body += _csv_section(path)
    for path in sorted(root.glob("*.json")):
        if path.name in (layout.METRICS, layout.DATA_REPORT, layout.PHASES, layout.TOP_LOSSES_JSON):
            continue
        value = read_json(path)
        if value is not None:
            body += [f"<h3>{_esc(path.name)}</h3>", f"<pre>{_esc(json.dumps(value, indent=2)[:20000])}</pre>"]
    phases = read_json(root / layout.PHASES)
    if isinstance(phases, list) and phases and all(isinstance(p, dict) for p in phases):
        keys = list(dict.fromkeys(k for p in phases for k in p))
        body += ["<h2>Phases</h2>", _table(keys, [[p.get(k) for k in keys] for p in phases])]
    if (root / layout.CONFIG).is_file():
        body += ["<h2>Config</h2>", f"<pre>{_esc((root / layout.CONFIG).read_text(encoding='utf-8'))}</pre>"]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(root.resolve().name)}: tfft report</title><style>{_STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    path = root / REPORT_HTML
    write_text(path, page)
    return path

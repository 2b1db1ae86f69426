"""The input contract written beside the exports: `export.json` (machine-readable), `README.md`
(for people) and `labels.txt`, in a folder tfft owns (RUN_DIR/export/ or `--format all`'s --out).

Every export but the SavedModel takes raw 0-255 RGB float32 NHWC at the run's image size (resized
as training resizes: bilinear with antialiasing, no crop) and returns probabilities in labels.txt
order; the SavedModel's `serving_default` takes encoded image bytes and decodes them itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfft.atomic import write_json, write_text
from tfft.task import Task, task_for
from tfft.task.thresholds import thresholds_document
from tfft.evaluation.exporters.parity import ExportResult
from tfft.layout import LABELS

METADATA = "export.json"
README = "README.md"


def contract(run: Any, thresholds: Any | None = None, task: Task | None = None) -> dict[str, Any]:
    """The input and output contract of a run's exports, as `export.json` states it."""
    height, width = (int(v) for v in run.image_size)
    document: dict[str, Any] = {
        "input": {"name": "image", "dtype": "float32", "layout": "NHWC", "shape": [None, height, width, 3],
                  "range": [0, 255], "channels": "RGB",
                  "resize": "bilinear with antialiasing to the shape, no crop or pad (tf.image.resize)"},
        "savedmodel_input": {"signature": "serving_default", "name": "image_bytes", "dtype": "string",
                             "shape": [None], "content": "encoded image files (JPEG, PNG, GIF, BMP, WebP)"},
        "output": {"name": "probabilities", "dtype": "float32", "shape": [None, len(run.class_names)],
                   "order": LABELS},
        "labels_file": LABELS,
        "task": (task or task_for()).name,
    }
    if thresholds is not None:
        document["thresholds"] = thresholds_document(run.class_names, thresholds)
    return document


def write_contract(folder: Path, run: Any, results: Sequence[ExportResult], thresholds: Any | None = None,
                   task: Task | None = None) -> None:
    """Write labels.txt, export.json (the contract and one entry per export file, merged with the
    entries already there) and README.md into `folder`."""
    metadata_path = folder / METADATA
    files: dict[str, Any] = {}
    if metadata_path.is_file():
        try:
            files = json.loads(metadata_path.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError):
            files = {}
    for result in results:
        entry = {key: value for key, value in result.to_dict().items() if key != "path"}
        files[Path(result.path).name] = entry
    document = dict(contract(run, thresholds, task), files=files)
    write_text(folder / LABELS, "\n".join(run.class_names) + "\n")
    write_json(metadata_path, document)
    write_text(folder / README, readme(document))


def readme(document: dict[str, Any]) -> str:
    """README.md of an export folder, from `export.json`'s document."""
    shape = document["input"]["shape"]
    lines = [
        "# Exported model", "",
        f"Input (every file but the SavedModel): `{document['input']['name']}`, float32 NHWC "
        f"`[batch, {shape[1]}, {shape[2]}, 3]`, raw RGB values 0-255 (no scaling: it is inside the model), "
        f"resized with {document['input']['resize']}.",
        "Output: `probabilities`, float32 `[batch, classes]`, in the order of `labels.txt` (one label a line).",
        "SavedModel (`savedmodel/`, TF Serving): signature `serving_default` takes `image_bytes`, a string "
        "batch of encoded image files, and returns `probabilities` and `label`.",
    ]
    lines.append(task_for(document["task"]).export_note)
    lines += ["", "| file | format | quantize | size MB | latency ms (threads) | top-1 agreement % | max abs diff |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, entry in sorted(document["files"].items()):
        lines.append(f"| {name} | {entry['format']} | {entry['quantize']} | {entry['size_bytes'] / 1e6:.2f} | "
                     f"{entry['latency_ms']:.2f} ({entry.get('threads', 0)}) | {entry['parity_top1']:.2f} | "
                     f"{entry['parity_max_abs_diff']:.2g} |")
    lines += ["", "Parity and latency were measured in each format's own runtime (column `runtime` in "
              "export.json) against model.keras on the run's validation images.", ""]
    return "\n".join(lines)

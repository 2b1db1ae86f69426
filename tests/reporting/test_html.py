"""report.html: self-contained (images embedded, no script, no network) and rendered by headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tfft.reporting.html import write_html_report
from tfft.reporting.plots import plot_confusion_matrix

SETUP = Path(__file__).resolve().parents[1] / "setup" / "system_packages.sh"


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """What a finished run holds, written by hand (no training): config, labels, data report, metrics,
    a confusion matrix PNG, an interpret figure and a study's CSV."""
    root = tmp_path / "run"
    (root / "interpret" / "val").mkdir(parents=True)
    (root / "config.yaml").write_text("name: demo\ndata:\n  source: photos/\n")
    (root / "labels.txt").write_text("cat\n<dog>\n")
    (root / "data_report.json").write_text(json.dumps({
        "source": "photos/", "splits": {"train": {"images": 10, "per_class": {"cat": 6, "<dog>": 4}},
                                         "val": {"images": 4, "per_class": {"cat": 2, "<dog>": 2}}},
        "skipped": [{"path": "photos/cat/broken.jpg", "reason": "not an image"}], "skipped_count": 1}))
    (root / "metrics.json").write_text(json.dumps({"val": {
        "accuracy": 0.75, "loss": 0.5123, "per_class": {"cat": {"precision": 0.5, "recall": 1.0, "f1": 0.6667,
                                                               "support": 2},
                                                       "<dog>": {"precision": 1.0, "recall": 0.5, "f1": 0.6667,
                                                                 "support": 2}}}}))
    plot_confusion_matrix([[2, 0], [1, 1]], ["cat", "<dog>"], root / "confusion_matrix.png")
    shutil.copy(root / "confusion_matrix.png", root / "interpret" / "val" / "top_losses.png")
    (root / "trials.csv").write_text("number,value,lr\n0,0.8,0.001\n1,0.9,0.01\n")
    return root


def test_report_html_is_self_contained(run_folder):
    path = write_html_report(run_folder)
    page = path.read_text(encoding="utf-8")
    assert path.name == "report.html" and page.startswith("<!DOCTYPE html>")
    images = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert base64.b64decode(images[0].split(",", 1)[1])[:4] == b"\x89PNG"
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "&lt;dog&gt;" in page and "<dog>" not in page  # class names escaped
    assert "photos/cat/broken.jpg" in page  # the data report's bad files
    assert "0.5123" in page and "0.6667" in page  # metrics and per-class rows
    assert "trials.csv" in page and "0.001" in page  # a study's table
    assert "interpret/val/top_losses.png" in page and "name: demo" in page


def _chromium() -> str:
    if shutil.which("chromium") is None and SETUP.is_file():
        subprocess.run(["sh", str(SETUP)], check=False, timeout=900)
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(f"chromium is not installed (run {SETUP} as root)")
    return found


def test_report_html_renders_in_headless_chromium(run_folder, tmp_path):
    from PIL import Image

    chromium = _chromium()
    page = write_html_report(run_folder)
    shot = tmp_path / "shot.png"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--window-size=1000,1400", f"--screenshot={shot}", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Failed to load resource" in line]
    assert console == [], console
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1400, 1000)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005  # text, tables and figures, not a blank page

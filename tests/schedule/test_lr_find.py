"""`tfft lr-find`: the learning-rate range test."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import yaml

from tests.conftest import TINY_BACKBONE
from tfft.config import ScheduleConfig
from tfft.errors import UserError
from tfft.schedule.lr_range import exponential_rates, select_phase, smooth, suggest_lr
from tfft.schedule.phases import resolve_phases

START, END, STEPS = 1e-6, 10.0, 30


def _tiny() -> dict:
    """`_config` on the two-convolution backbone: the fastest run, for what does not need a real network."""
    config = _config()
    config["model"]["backbone"] = TINY_BACKBONE
    config["schedule"]["finetune_unfreeze"] = "all"
    return config


def _config() -> dict:
    """conftest's tiny settings, with two phases so `--phase` has something to choose."""
    return {
        "name": "tiny",
        "seed": 1,
        "data": {"source": "builtin:shapes", "image_size": [32, 32], "batch_size": 16,
                 "builtin_per_class": 16},
        "model": {"backbone": "mobilenet", "weights": None},
        "schedule": {"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1},
        "augment": {"horizontal_flip": False},
    }


@pytest.fixture(scope="module")
def lr_run(tmp_path_factory):
    from tfft.training.lr_find import find_lr

    run_dir = tmp_path_factory.mktemp("lrfind") / "run"
    return find_lr(_config(), start_lr=START, end_lr=END, steps=STEPS, run_dir=run_dir), run_dir


def test_writes_json_and_plot(lr_run):
    result, run_dir = lr_run
    assert result.plot_path == run_dir / "lr_find.png" and result.json_path == run_dir / "lr_find.json"
    png = result.plot_path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    saved = json.loads(result.json_path.read_text())
    assert saved["suggestion"] == pytest.approx(result.suggestion)
    assert saved["lrs"] == pytest.approx(result.lrs) and saved["losses"] == pytest.approx(result.losses)
    assert saved["phase"] == "head" and saved["feature_cache"] is True  # the default: the first, cached
    assert (run_dir / "config.yaml").exists()
    assert not list(run_dir.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_rates_losses_and_suggestion(lr_run):
    result, _ = lr_run
    assert 2 <= len(result.lrs) <= STEPS and len(result.losses) == len(result.lrs) == len(result.smoothed)
    lrs = np.asarray(result.lrs)
    assert lrs[0] == pytest.approx(START, rel=1e-4) and np.all(np.diff(lrs) > 0)
    # The rate really grows by the same factor each step (the optimizer's schedule, read back).
    assert np.allclose(lrs[1:] / lrs[:-1], (END / START) ** (1 / (STEPS - 1)), rtol=1e-3)
    assert all(math.isfinite(v) for v in result.losses)
    assert START <= result.suggestion <= END
    if result.stopped == "completed":
        assert len(result.lrs) == STEPS


def test_cli_prints_suggestion(cli_runner, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config()))
    run_dir = tmp_path / "cli-run"
    result = cli_runner("lr-find", config, "--steps", 8, "--start-lr", 1e-5, "--end-lr", 1,
                        "--phase", "head", "--set", "data.builtin_per_class=8", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert "suggested lr:" in result.output and str(run_dir / "lr_find.png") in result.output
    saved = json.loads((run_dir / "lr_find.json").read_text())
    assert saved["phase"] == "head" and saved["steps"] == 8


def test_cli_defaults_cache_progress(cli_runner, tmp_path):
    """Without --phase or --steps: the head phase on cached features, a length from the data, progress lines."""
    from tfft.schedule.lr_range import DEFAULT_MIN_STEPS

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_tiny()))
    run_dir = tmp_path / "defaults"
    result = cli_runner("lr-find", config, "--start-lr", 1e-5, "--end-lr", 1, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "lr_find.json").read_text())
    # 104 training images in batches of 16: 4 passes are 28 steps, raised to the default's floor.
    assert saved["phase"] == "head" and saved["steps"] == DEFAULT_MIN_STEPS
    assert saved["feature_cache"] is True
    assert "lr-find: feature cache on: backbone features computed once" in result.output
    # The backbone ran over the training images once, then 30 head steps on their features.
    assert re.search(r"^computing backbone features once \((\d+) images\): \1/\1 in ", result.output, re.M)
    progress = [line for line in result.output.splitlines() if line.startswith("lr-find: step ")]
    assert len(progress) >= 5 and all("steps/s" in line and "s left" in line and "loss" in line for line in progress)
    assert progress[0].startswith("lr-find: step 3/30, lr ")


def test_divergence_stops_early(tmp_path):
    from tfft.training.lr_find import find_lr

    result = find_lr(_tiny(), start_lr=1e-2, end_lr=1e8, steps=100, run_dir=tmp_path / "div")
    assert result.stopped in ("diverged", "nan") and len(result.lrs) < 100 and result.steps == 100
    saved = json.loads(result.json_path.read_text())
    assert saved["recorded_steps"] == len(result.lrs) < saved["steps"]


def test_cli_bad_phase_exits_2(cli_runner, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config()))
    result = cli_runner("lr-find", config, "--phase", "fientune", "--run-dir", tmp_path / "x")
    assert result.exit_code == 2 and "did you mean finetune" in result.output
    assert not (tmp_path / "x" / "lr_find.json").exists()


def test_cli_bad_range_exits_2(cli_runner, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config()))
    result = cli_runner("lr-find", config, "--start-lr", 1, "--end-lr", 0.1, "--run-dir", tmp_path / "y")
    assert result.exit_code == 2 and "--end-lr" in result.output


def test_select_phase():
    phases = resolve_phases(ScheduleConfig(preset="two_phase"), 5)
    assert select_phase(phases, None)[1].name == "head"  # the default: the first phase
    assert select_phase(phases, "head") == (0, phases[0])
    assert select_phase(phases, 1) == (1, phases[1]) and select_phase(phases, "-2")[0] == 0
    with pytest.raises(UserError, match="did you mean finetune"):
        select_phase(phases, "fientune")
    with pytest.raises(UserError, match="out of range"):
        select_phase(phases, 2)
    only_head = resolve_phases(ScheduleConfig(preset="feature_extraction"), 5)
    assert select_phase(only_head, None)[0] == 0


def test_suggest_rule_on_synthetic_curves():
    lrs = exponential_rates(1e-6, 10.0, 100)
    x = np.log10(lrs)
    # Falls fastest at 1e-3, bottoms out, then diverges.
    loss = 2.0 - np.tanh(2 * (x + 3)) + np.where(x > -1, 5 * (x + 1) ** 2, 0.0)
    rate, rule = suggest_lr(lrs, smooth(loss, beta=0.0))
    assert rule == "steepest" and -3.3 < math.log10(rate) < -2.7
    # A loss that never falls: the min-loss rate / 10, inside the range.
    rising = np.linspace(1.0, 3.0, 100)
    rate, rule = suggest_lr(lrs, rising)
    assert rule == "min/10" and rate == pytest.approx(lrs[0])
    # Bias-corrected smoothing starts at the first value.
    assert smooth([3.0, 1.0])[0] == pytest.approx(3.0)

"""`tfft train` end to end: the contract's run directory, a model that loads without tfft."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from tests.conftest import TINY_BACKBONE, tiny_config

RUN_FILES = ["config.yaml", "labels.txt", "model.keras", "history.csv", "phases.json", "metrics.json",
             "data_report.json", "confusion_matrix.png", "curves.png", "environment.json"]


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory, pets_mini):
    """A two-phase run on a real folder tfft never saw (pets-mini, 40 images a class)."""
    from tfft.training.run import train

    cfg = tiny_config(
        name="pets",
        data={"source": str(pets_mini), "image_size": [48, 48], "batch_size": 16, "limit_per_class": 40},
        schedule={"preset": "two_phase", "head_epochs": 2, "finetune_epochs": 2, "lr": 1e-3},
        augment={"horizontal_flip": True, "rotation_range": 10},
        training={"steps_per_epoch": None},
    )
    return train(cfg, run_dir=str(tmp_path_factory.mktemp("runs") / "pets"))


def test_run_directory_is_complete(pets_run):
    run = pets_run.run_dir
    for name in RUN_FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert (run / "checkpoints").is_dir() and any((run / "tensorboard").rglob("*"))
    assert (run / "labels.txt").read_text().split() == ["cat", "dog"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["schedule"]["preset"] == "two_phase" and "augment" in config
    env = json.loads((run / "environment.json").read_text())
    assert {"strategy", "replicas", "precision", "devices", "tensorflow", "keras", "tfft"} <= set(env)
    assert env["replicas"] == 1
    report = json.loads((run / "data_report.json").read_text())
    assert "skipped" in report


def test_history_shows_the_phase_boundary_and_lower_rate(pets_run):
    rows = list(csv.DictReader(open(pets_run.run_dir / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["phase"] for r in rows] == ["head", "head", "finetune", "finetune"]
    assert {"loss", "val_loss", "lr", "accuracy", "val_accuracy"} <= set(rows[0])
    assert float(rows[2]["lr"]) == pytest.approx(float(rows[1]["lr"]) / 10)
    phases = json.loads((pets_run.run_dir / "phases.json").read_text())
    assert [p["name"] for p in phases] == ["head", "finetune"]
    for p in phases:
        assert {"name", "epochs", "unfreeze", "lr", "trainable_params", "non_trainable_params"} <= set(p)
    assert phases[1]["trainable_params"] > phases[0]["trainable_params"]


def test_metrics_json(pets_run):
    metrics = json.loads((pets_run.run_dir / "metrics.json").read_text())
    val = metrics["val"]
    assert 0.0 <= val["accuracy"] <= 1.0 and val["loss"] > 0
    assert set(val["per_class"]) == {"cat", "dog"}
    assert "macro_f1" in val


def test_model_loads_and_predicts_without_tfft(pets_run, pets_mini):
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        from PIL import Image
        model = keras.models.load_model({str(pets_run.run_dir / 'model.keras')!r})
        img = Image.open({str(next((pets_mini / 'val' / 'cat').glob('*.jpg')))!r}).convert('RGB').resize((48, 48))
        probs = model.predict(np.asarray(img, 'float32')[None], verbose=0)
        assert probs.shape == (1, 2) and abs(float(probs.sum()) - 1) < 1e-5, probs
        assert not any(m.startswith('tfft') for m in sys.modules), 'tfft was imported'
        print('ok', probs.tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_cli_train_prints_run_dir_last(tmp_path, cli_runner):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    result = cli_runner("train", path, "--run-dir", tmp_path / "run", "--set", "schedule.epochs=1")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"run dir: {tmp_path / 'run'}"
    again = cli_runner("train", path, "--run-dir", tmp_path / "run")
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_builtin_run_evaluates_and_exports(tmp_path, cli_runner):
    """Sources that are not files (builtin:, tfds:) evaluate and export like folders do."""
    from tfft.training.run import train

    run = train(tiny_config(model={"backbone": TINY_BACKBONE}), run_dir=str(tmp_path / "run")).run_dir
    result = cli_runner("evaluate", run, "--split", "val")
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "eval" / "val" / "metrics.json").read_text())["val"]
    assert saved["accuracy"] == pytest.approx(json.loads((run / "metrics.json").read_text())["val"]["accuracy"])
    assert (run / "eval" / "val" / "worst.png").stat().st_size > 1000
    result = cli_runner("export", run, "--format", "tflite")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("parity: top1 agreement 100.00%")


def test_carried_optimizer_continues_the_iteration_count(tmp_path, capsys):
    from tfft.training.run import train

    cfg = tiny_config(schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1,
                                "carry_optimizer": True, "lr_schedule": "cosine"})
    result = train(cfg, run_dir=str(tmp_path / "run"))
    assert "optimizer state carried over for" in capsys.readouterr().out
    assert [row["phase"] for row in result.history] == ["head", "finetune"]

"""A deterministic run killed with SIGKILL inside epochs of two phases and resumed twice ends bitwise equal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import TINY_BACKBONE, checkpoint_weights, tiny_config

CONFIG = tiny_config(
    name="resume",
    data={"image_size": [32, 32], "batch_size": 16, "builtin_per_class": 12},
    schedule={"preset": "two_phase", "head_epochs": 2, "finetune_epochs": 3, "lr": 1e-3},
    augment={"horizontal_flip": True, "rotation_range": 15},
    model={"backbone": TINY_BACKBONE, "weights": None, "dropout": 0.3},
    # A checkpoint after every step: the kills below land inside epochs (and sometimes mid-write).
    # 3 steps an epoch against 5 batches a pass: epochs start in the middle of a pass.
    training={"deterministic": True, "steps_per_epoch": 3, "save": "last", "verbose": "quiet",
              "checkpoint_steps": 1},
    evaluate={"splits": []},  # what is compared is the weights and history.csv
)


def _train_cmd(config: Path, run_dir: Path, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "tfft.cli.main", "train", str(config), "--run-dir", str(run_dir)]
    return cmd + (["--resume"] if resume else [])


def _assert_same_run(straight: Path, killed: Path) -> None:
    """The resumed run's checkpointed weights and history.csv are bitwise the uninterrupted run's."""
    a, b = checkpoint_weights(straight), checkpoint_weights(killed)
    assert list(a) == list(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), f"{key} differs after resume"
    assert (straight / "history.csv").read_text() == (killed / "history.csv").read_text()


def _kill_inside_epoch(config: Path, run_dir: Path, epoch: int, step: int, resume: bool) -> None:
    """Start training and SIGKILL it once the checkpoint of `step` steps into epoch `epoch + 1` is on disk."""
    process = subprocess.Popen(_train_cmd(config, run_dir, resume), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    state = run_dir / "checkpoints" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training ended before the kill: {process.stderr.read().decode()[-2000:]}")
        try:
            progress = json.loads(state.read_text())
            if (progress["epoch"], progress["step"]) >= (epoch, step):
                break
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_killed_twice_resumed_twice_is_bitwise_equal(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    # The reference in a fresh process too: in the suite's worker, state an earlier test left
    # would make the comparison depend on which files that worker ran first.
    subprocess.run(_train_cmd(config, straight), check=True, capture_output=True)

    _kill_inside_epoch(config, killed, epoch=1, step=2, resume=False)  # inside epoch 2 (head phase)
    _kill_inside_epoch(config, killed, epoch=3, step=1, resume=True)   # inside epoch 4 (finetune phase)
    out = subprocess.run(_train_cmd(config, killed, resume=True), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming" in out.stdout

    _assert_same_run(straight, killed)


def test_resume_refuses_a_changed_config(tmp_path, cli_runner):
    config = tmp_path / "c.yaml"
    cfg = dict(CONFIG, schedule={"preset": "full", "epochs": 1}, training={"steps_per_epoch": 1, "verbose": "quiet"})
    config.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert cli_runner("train", config, "--run-dir", run).exit_code == 0
    (run / "metrics.json").unlink()  # pretend it never finished
    result = cli_runner("train", config, "--run-dir", run, "--resume", "--set", "data.batch_size=8")
    assert result.exit_code == 2 and "data.batch_size" in result.output


# The real `tfft train`, paused after its first checkpoint until the Ctrl-C comes: the interrupt lands
# inside training on any machine, however loaded. (Racing a short run, the interrupt once came after
# a 5-epoch run had ended: exit 0; racing a 42-epoch run cost a minute of training to resume.)
# Ctrl-C as in a terminal: Python's own handler. A suite started in the background (`make test &`,
# nohup) hands its processes SIGINT ignored, and Python then installs none: the 42-epoch run
# trained to its end and exited 0 under `setsid nohup ... &` here.
PAUSED_TRAIN = textwrap.dedent("""
    import signal
    import time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from tfft.cli.main import main
    from tfft.training import checkpoint
    real_save = checkpoint.save
    def save_then_pause(*args, **kwargs):
        real_save(*args, **kwargs)
        checkpoint.save = real_save
        time.sleep(600)  # a Ctrl-C ends it
    checkpoint.save = save_then_pause
    main()
""")


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130_with_the_resume_command(tmp_path, cli_runner):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", PAUSED_TRAIN, *_train_cmd(config, run)[3:]]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        state = run / "checkpoints" / "state.json"
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            if state.exists():
                break
            time.sleep(0.05)
        assert state.exists() and process.poll() is None, "training ended or never checkpointed"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # never left paused behind a failed assertion
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-2000:]
    assert "--resume" in stderr and str(run) in stderr
    # The resume itself in this process (what is tested of a real process is the Ctrl-C): the
    # kill-twice test above resumes in fresh processes.
    import keras

    keras.backend.clear_session()
    result = cli_runner("train", config, "--run-dir", run, "--resume")
    assert result.exit_code == 0, result.output[-2000:]
    assert "resuming" in result.output
    assert (run / "model.keras").exists()


class _StopAfterEpoch1:
    """A callback (after tfft's own, so epoch 1 is checkpointed) that interrupts like Ctrl-C."""

    def __new__(cls):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    raise KeyboardInterrupt

        return Stop()


def test_multi_label_run_interrupted_after_epoch_1_resumes_to_the_same_run(tmp_path, tiny_backbone):
    """shapes-multi with per-label positive weights and label smoothing, two phases (the first on
    cached features): interrupted after epoch 1, resumed, it ends as the uninterrupted run does:
    the same weights, history, thresholds and metrics."""
    import keras

    import tfft
    from tfft.errors import TrainingInterrupted

    config = tiny_config(
        name="resume-multi",
        data={"source": "builtin:shapes-multi", "builtin_per_class": 6},
        model={"backbone": f"keras:{tiny_backbone}", "weights": "imagenet"},
        schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1, "lr": 1e-3},
        training={"deterministic": True, "steps_per_epoch": 2, "verbose": "quiet", "class_weight": "balanced",
                  "label_smoothing": 0.1},
        evaluate={"splits": ["val"]},
    )
    keras.backend.clear_session()
    straight = tfft.train(config, run_dir=str(tmp_path / "straight")).run_dir
    keras.backend.clear_session()
    with pytest.raises(TrainingInterrupted):
        tfft.train(config, run_dir=str(tmp_path / "killed"), callbacks=[_StopAfterEpoch1()])
    killed = tmp_path / "killed"
    assert json.loads((killed / "checkpoints" / "state.json").read_text())["epoch"] == 1
    assert not (killed / "thresholds.json").exists()
    keras.backend.clear_session()
    tfft.train(config, run_dir=str(killed), resume=True)

    _assert_same_run(straight, killed)
    assert json.loads((straight / "thresholds.json").read_text()) == json.loads((killed / "thresholds.json").read_text())
    val_a = json.loads((straight / "metrics.json").read_text())["val"]
    val_b = json.loads((killed / "metrics.json").read_text())["val"]
    for key in ("mAP", "micro_f1", "macro_f1", "loss"):
        assert val_a[key] == val_b[key], key


class _StopAfterLastStepOfEpoch1:
    """A callback (after tfft's own) that interrupts like Ctrl-C after epoch 1's last step, before its end."""

    def __new__(cls, steps: int):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == 0 and batch + 1 == steps:
                    raise KeyboardInterrupt

        return Stop()


def test_run_interrupted_between_an_epochs_last_step_and_its_end_resumes_to_the_same_run(tmp_path, tiny_backbone):
    """With a checkpoint every step, a run stopped after an epoch's last step (while it validates,
    say) resumes from the step before and ends as the uninterrupted run does. It once committed a
    checkpoint of all the epoch's steps, whose resumed rest was a fit of no steps: Keras read that
    as "until the data ends" and trained on the whole remaining phase in one epoch."""
    import keras

    import tfft
    from tfft.errors import TrainingInterrupted, UserError
    from tfft.training import checkpoint

    config = tiny_config(
        name="resume-last-step",
        data={"builtin_per_class": 8},
        model={"backbone": f"keras:{tiny_backbone}", "weights": None, "dropout": 0.3},
        schedule={"preset": "full", "epochs": 2, "lr": 1e-3},
        augment={"horizontal_flip": True, "rotation_range": 15},
        training={"deterministic": True, "steps_per_epoch": 2, "verbose": "quiet", "checkpoint_steps": 1},
        evaluate={"splits": []},
    )
    keras.backend.clear_session()
    straight = tfft.train(config, run_dir=str(tmp_path / "straight")).run_dir
    keras.backend.clear_session()
    killed = tmp_path / "killed"
    with pytest.raises(TrainingInterrupted):
        tfft.train(config, run_dir=str(killed), callbacks=[_StopAfterLastStepOfEpoch1(2)])
    stale = tmp_path / "stale"
    shutil.copytree(killed, stale)
    keras.backend.clear_session()
    tfft.train(config, run_dir=str(killed), resume=True)
    _assert_same_run(straight, killed)

    # A checkpoint of all of an epoch's steps (as an earlier tfft wrote) is refused, not resumed wrongly.
    with np.load(stale / checkpoint.LAST, allow_pickle=False) as data:
        arrays = dict(data)
    arrays["state"] = np.array(json.dumps(dict(json.loads(str(arrays["state"])), epoch=0, step=2)))
    np.savez(stale / checkpoint.LAST, **arrays)
    keras.backend.clear_session()
    with pytest.raises(UserError, match="after all 2 steps of epoch 1"):
        tfft.train(config, run_dir=str(stale), resume=True)


def test_run_interrupted_before_its_last_epochs_history_row_is_written_resumes_with_the_row(
        tmp_path, tiny_backbone, monkeypatch):
    """Stopped between the last epoch's checkpoint and its history.csv, a resumed run has no epoch
    left to train, and still writes history.csv as the checkpoint has it."""
    import keras

    import tfft
    from tfft.errors import TrainingInterrupted
    from tfft.training import plan

    config = tiny_config(name="resume-history", data={"builtin_per_class": 4},
                         model={"backbone": f"keras:{tiny_backbone}", "weights": None},
                         training={"deterministic": True, "steps_per_epoch": 1, "verbose": "quiet"},
                         evaluate={"splits": []})
    keras.backend.clear_session()
    straight = tfft.train(config, run_dir=str(tmp_path / "straight")).run_dir

    def interrupted(self, rows):
        raise KeyboardInterrupt

    killed = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(plan.Progress, "write_history", interrupted)
        keras.backend.clear_session()
        with pytest.raises(TrainingInterrupted):
            tfft.train(config, run_dir=str(killed))
    assert not (killed / "history.csv").exists()
    keras.backend.clear_session()
    tfft.train(config, run_dir=str(killed), resume=True)
    assert (straight / "history.csv").read_text() == (killed / "history.csv").read_text()


def test_resume_refuses_a_changed_image_folder(tmp_path, cli_runner):
    """An image added to and another removed from the folder after the run started: --resume
    would train on other splits, so it exits 2 and says what changed, per split."""
    import keras

    import tfft
    from tests.conftest import write_image_folder
    from tfft.errors import TrainingInterrupted

    images = write_image_folder(tmp_path / "images", {"red": 8, "green": 8}, size=16)
    config = tiny_config(name="resume-data", data={"source": str(images), "val_split": 0.25},
                         training={"steps_per_epoch": 1, "verbose": "quiet"},
                         schedule={"preset": "full", "epochs": 2}, evaluate={"splits": []})
    run = tmp_path / "run"
    keras.backend.clear_session()
    with pytest.raises(TrainingInterrupted):
        tfft.train(config, run_dir=str(run), callbacks=[_StopAfterEpoch1()])
    (run / "c.yaml").write_text(yaml.safe_dump(config))
    write_image_folder(tmp_path / "more", {"red": 1}, size=16, seed=5)
    (tmp_path / "more" / "red" / "red_000.png").rename(images / "red" / "red_new.png")
    (images / "green" / "green_003.png").unlink()
    result = cli_runner("train", run / "c.yaml", "--run-dir", run, "--resume")
    assert result.exit_code == 2, result.output
    assert "the data changed since the run started (train: " in result.output
    assert "added" in result.output and "removed" in result.output and "--overwrite" in result.output

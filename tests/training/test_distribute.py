"""tf.distribute: MirroredStrategy over virtual CPUs, MultiWorkerMirroredStrategy over loopback.

Virtual CPUs must be configured before TensorFlow initialises its devices and a MWMS worker owns
its process, so every such run here is a subprocess of its own (the single-device reference runs
in the test's process where that is the CPU).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, TINY_BACKBONE, checkpoint_weights, tiny_config

TRAIN = "import json, sys; from tfft.training.run import train; train(json.loads(sys.argv[1]), run_dir=sys.argv[2])"
CLI = "import sys; from tfft.cli.main import cli; cli(prog_name='tfft')"
TIMEOUT = 150


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TFFT_CUSTOM_LOOP")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO), **extra)
    return env


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-c", *args], env=env, cwd=REPO, stdout=out,
                              stderr=subprocess.STDOUT, timeout=TIMEOUT)
    assert proc.returncode == 0, log.read_text()[-4000:]


def _deterministic_config(strategy: str, virtual_cpus: int = 0) -> dict:
    # 8 classes x 10: 64 train (4 global batches of 16, 8 a replica), 16 val; nothing random but the init.
    return tiny_config(
        data={"builtin_per_class": 10, "val_split": 0.2, "batch_size": 16},
        model={"backbone": TINY_BACKBONE, "weights": None, "dropout": 0.0},
        schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1, "finetune_unfreeze": "top:1",
                  "bn": "frozen", "optimizer": "sgd", "lr": 0.05},  # SGD: a wrong gradient scale shows
        augment={"horizontal_flip": False},
        training={"deterministic": True, "steps_per_epoch": None, "verbose": "line"},
        distribute={"strategy": strategy, "virtual_cpus": virtual_cpus},
    )


def _assert_same_weights(a: Path, b: Path, tolerance: float = 1e-3) -> float:
    wa, wb = checkpoint_weights(a), checkpoint_weights(b)
    assert list(wa) == list(wb)
    worst = 0.0
    for key in wa:
        if wa[key].dtype.kind not in "fc":
            continue
        scale = max(float(np.abs(wa[key]).max()), 1e-6)
        worst = max(worst, float(np.abs(wa[key] - wb[key]).max()) / scale)
    assert worst < tolerance, f"largest relative weight difference {worst:.2e}"
    return worst


@pytest.fixture(scope="module")
def single_device_run(tmp_path_factory, monkeypatch_module) -> Path:
    """The reference: the same deterministic run on the default strategy, in this process where it
    runs on the CPU as the subprocesses do (it needs no virtual CPUs), else a subprocess of its own."""
    import keras
    import tensorflow as tf

    from tfft.training.run import train

    root = tmp_path_factory.mktemp("single")
    if tf.config.list_physical_devices("GPU"):  # the subprocesses train on the CPU: so does the reference
        _run([TRAIN, json.dumps(_deterministic_config("none")), str(root / "run")], _env(), root / "log.txt")
        return root / "run"
    for name in ("TF_CONFIG", "TFFT_CUSTOM_LOOP"):
        monkeypatch_module.delenv(name, raising=False)
    keras.backend.clear_session()
    train(_deterministic_config("none"), run_dir=str(root / "run"))
    return root / "run"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.slow
def test_mirrored_over_two_virtual_cpus_matches_single_device(tmp_path, single_device_run):
    _run([TRAIN, json.dumps(_deterministic_config("mirrored", 2)), str(tmp_path / "run")], _env(),
         tmp_path / "log.txt")
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert env["strategy"] == "MirroredStrategy" and env["replicas"] == 2
    reference = json.loads((single_device_run / "environment.json").read_text())
    assert reference["replicas"] == 1
    _assert_same_weights(single_device_run, tmp_path / "run")


@pytest.mark.slow
def test_custom_loop_under_mirrored_matches_fit(tmp_path, single_device_run):
    """The multi-worker loop (strategy.run of the compiled train_step) trains as `fit` does."""
    _run([TRAIN, json.dumps(_deterministic_config("mirrored", 2)), str(tmp_path / "run")],
         _env(TFFT_CUSTOM_LOOP="1"), tmp_path / "log.txt")
    assert "epoch 2/2:" in (tmp_path / "log.txt").read_text()  # the custom loop's line, not fit's
    _assert_same_weights(single_device_run, tmp_path / "run")
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "lr"} <= set(header) and len(rows) == 3


def _launch_workers(tmp_path: Path, config_path: Path, run_dirs: list[Path], *flags: str) -> list[subprocess.Popen]:
    ports = _free_ports(len(run_dirs))
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index, run_dir in enumerate(run_dirs):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-c", CLI, "train", str(config_path), "--run-dir", str(run_dir), *flags],
            env=_env(TF_CONFIG=tf_config), cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.slow
def test_multi_worker_two_local_workers_killed_and_resumed(tmp_path):
    """Two MultiWorkerMirroredStrategy workers on loopback ports, one run directory (as on a shared
    filesystem): killed together after epoch 1, restarted with --resume, both rejoin and finish;
    only the chief writes the run directory."""
    cfg = tiny_config(
        name="mwms",
        data={"builtin_per_class": 10, "val_split": 0.2, "batch_size": 16},
        model={"backbone": TINY_BACKBONE, "weights": None, "dropout": 0.0},
        # One head-only phase: tracing the finetune step's all-reduces costs ~30 s more on 2 cores.
        schedule={"preset": "feature_extraction", "epochs": 2, "bn": "frozen"},
        training={"steps_per_epoch": None, "verbose": "line"},
        distribute={"strategy": "multi_worker"},
    )
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    procs = _launch_workers(tmp_path, config_path, [run_dir, run_dir])
    state = run_dir / "checkpoints" / "state.json"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        try:
            if json.loads(state.read_text())["epoch"] >= 1:
                break
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    for p in procs:  # the job is preempted: every worker dies at once
        p.kill()
    _wait_all(procs, 30)
    assert json.loads(state.read_text())["epoch"] == 1, "the kill did not land between the epochs"
    assert not (run_dir / "model.keras").exists()

    procs = _launch_workers(tmp_path, config_path, [run_dir, run_dir], "--resume")
    codes = _wait_all(procs, TIMEOUT)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    assert all(f"resuming {run_dir} at epoch 2" in log for log in logs)
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["strategy"] == "MultiWorkerMirroredStrategy" and env["replicas"] == 2
    for name in ("model.keras", "metrics.json", "history.csv", "phases.json", "checkpoints/last.npz"):
        assert (run_dir / name).is_file(), name
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(rows[0].split(","))
    assert f"run dir: {run_dir}" in logs[0]
    assert f"run dir: {run_dir}" not in logs[1] and "run dir: " in logs[1]  # the worker wrote to a temp folder


@pytest.mark.slow
def test_multi_worker_on_tfrecord_shards_each_worker_streams_its_own_files(tmp_path):
    """Two local MultiWorkerMirroredStrategy workers train from `tfrecord:` shards, each streaming
    its own shard files (`tests/data/test_pack.py` shows which examples each reads)."""
    from tests.conftest import write_image_folder
    from tfft.data import pack

    folder = write_image_folder(tmp_path / "photos", {"a": 10, "b": 10}, size=32, fmt="jpg")
    pack(str(folder), str(tmp_path / "packed"), per_shard=4, seed=1, echo=lambda line: None)
    cfg = tiny_config(
        name="mwms-records",
        data={"source": f"tfrecord:{tmp_path / 'packed'}", "batch_size": 8},
        model={"backbone": TINY_BACKBONE, "weights": None, "dropout": 0.0},
        schedule={"preset": "feature_extraction", "epochs": 2, "bn": "frozen"},
        performance={"cache_features": "off"},  # the stream itself, not a feature cache, feeds training
        training={"steps_per_epoch": None, "verbose": "line"},
        distribute={"strategy": "multi_worker"},
    )
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    procs = _launch_workers(tmp_path, config_path, [tmp_path / "run", tmp_path / "run"])
    codes = _wait_all(procs, TIMEOUT)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    for index, log in enumerate(logs):
        assert f"input: worker {index} of 2 streams its own files" in log
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


@pytest.fixture
def fake_tpu(monkeypatch):
    """TensorFlow's TPU entry points replaced by recorders (no TPU here): `calls` holds the
    resolver's `tpu=` argument and what was connected and initialised."""
    import tensorflow as tf

    calls = {}

    class Resolver:
        def __init__(self, tpu=None, **kwargs):
            calls["tpu"] = tpu

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda r: calls.setdefault("connected", r))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda r: calls.setdefault("initialised", r))
    monkeypatch.setattr(tf.distribute, "TPUStrategy", lambda r: ("TPUStrategy", r))
    for name in ("COLAB_TPU_ADDR", "TPU_NAME", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return calls


@pytest.mark.parametrize("env, setting, expected", [
    ({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, None, "grpc://10.0.0.2:8470"),  # a Colab TPU runtime
    ({"TPU_NAME": "my-tpu"}, None, "my-tpu"),  # a Cloud TPU
    ({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, "grpc://10.9.9.9:8470", "grpc://10.9.9.9:8470"),  # the config wins
])
def test_auto_picks_the_tpu_the_environment_or_config_names(fake_tpu, monkeypatch, env, setting, expected):
    from tfft.config import DistributeConfig
    from tfft.training.distribute import make_strategy

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    strategy = make_strategy(DistributeConfig(strategy="auto", tpu_address=setting))
    assert fake_tpu["tpu"] == expected
    assert strategy[0] == "TPUStrategy" and fake_tpu["connected"] is fake_tpu["initialised"] is strategy[1]


def test_without_a_named_tpu_auto_is_not_a_tpu_and_tpu_resolves_the_local_one(fake_tpu):
    from tfft.config import DistributeConfig
    from tfft.training.distribute import make_strategy, strategy_name

    assert strategy_name(make_strategy(DistributeConfig(strategy="auto"))) == "_DefaultDistributionStrategy"
    assert fake_tpu == {}
    make_strategy(DistributeConfig(strategy="tpu"))
    assert fake_tpu["tpu"] is None  # TensorFlow finds a TPU VM's own chips

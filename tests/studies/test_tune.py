"""`tfft tune`: studies on real run directories, shared by processes, continued, pruned; failures."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, user_files
from tests.studies.conftest import head_config

optuna = pytest.importorskip("optuna")

SPACE = {"schedule.lr": {"log_uniform": [1e-4, 3e-2]}, "model.dropout": {"uniform": [0.0, 0.5]}}


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_backbone):
    """Two real head-only trials, minimising val loss (continuous, so trials differ)."""
    import tfft

    root = tmp_path_factory.mktemp("study")
    config = _write(root / "config.yaml", head_config(tiny_backbone))
    space = _write(root / "space.yaml", SPACE)
    result = tfft.tune(str(config), str(space), trials=2, run_dir=str(root / "tune"), metric="val_loss")
    return {"root": root, "config": config, "space": space, "result": result, "rows": _rows(root / "tune")}


def test_trials_csv_holds_each_trial_with_its_run_directory(study):
    out, rows = study["result"].run_dir, study["rows"]
    assert list(rows[0]) == ["number", "value", "state", "schedule.lr", "model.dropout"]
    assert [r["number"] for r in rows] == ["0", "1"] and {r["state"] for r in rows} == {"COMPLETE"}
    assert "trials.csv" in (out / "report.html").read_text()  # the study's page: its table and tune.png
    for row in rows:
        run = out / "trials" / f"trial-{int(row['number']):04d}"
        metrics = yaml.safe_load((run / "metrics.json").read_text())
        assert float(row["value"]) == pytest.approx(metrics["val"]["loss"], rel=1e-9)
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["schedule"]["lr"] == pytest.approx(float(row["schedule.lr"]), rel=1e-12)
        assert config["model"]["dropout"] == pytest.approx(float(row["model.dropout"]), rel=1e-12)
    assert len({(r["schedule.lr"], r["model.dropout"]) for r in rows}) == 2
    assert (out / "tune.png").stat().st_size > 10_000


def test_trials_after_the_first_reuse_its_backbone_features(study):
    logs = [(study["result"].run_dir / "trials" / f"trial-{i:04d}" / "train.log").read_text() for i in range(2)]
    computing = "computing backbone features once ("
    assert "reused the features" not in logs[0] and computing in logs[0]
    assert all("reused the features" in log and computing not in log for log in logs[1:])


def test_best_config_is_the_best_row_and_trains_as_it_is(study, cli_runner, tmp_path):
    rows, result = study["rows"], study["result"]
    best = min(rows, key=lambda r: float(r["value"]))
    assert result.best_trial == int(best["number"]) and result.best_value == pytest.approx(float(best["value"]))
    config = yaml.safe_load(result.best_config.read_text())
    assert config["schedule"]["lr"] == pytest.approx(float(best["schedule.lr"]), rel=1e-12)
    assert config["model"]["dropout"] == pytest.approx(float(best["model.dropout"]), rel=1e-12)
    base = yaml.safe_load(study["config"].read_text())
    assert config["data"] == {**config["data"], **base["data"]} and config["seed"] == base["seed"]

    run = cli_runner("train", result.best_config, "--run-dir", tmp_path / "again")
    assert run.exit_code == 0, run.output
    metrics = yaml.safe_load((tmp_path / "again" / "metrics.json").read_text())
    assert metrics["val"]["loss"] == pytest.approx(float(best["value"]), abs=1e-4)


def test_a_second_call_with_a_larger_n_continues_the_study(study, cli_runner):
    out = study["result"].run_dir
    run = cli_runner("tune", study["config"], "--space", study["space"], "--trials", 3, "--run-dir", out,
                     "--metric", "val_loss")
    assert run.exit_code == 0, run.output
    assert "2/3 trials finished" in run.output and "trial 2 [3/3]" in run.output
    assert run.output.strip().splitlines()[-1] == f"run dir: {out}"
    rows = _rows(out)
    assert rows[:2] == study["rows"] and rows[2]["number"] == "2"
    again = cli_runner("tune", study["config"], "--space", study["space"], "--trials", 3, "--run-dir", out,
                       "--metric", "val_loss")
    assert again.exit_code == 0 and not [line for line in again.output.splitlines() if line.startswith("trial ")]
    assert len(_rows(out)) == 3


@pytest.mark.slow
def test_two_processes_on_one_sqlite_storage_finish_exactly_n_trials(tmp_path, tiny_backbone):
    config = _write(tmp_path / "config.yaml", head_config(tiny_backbone))
    space = _write(tmp_path / "space.yaml", SPACE)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    command = [sys.executable, "-m", "tfft.cli.main", "tune", str(config), "--space", str(space), "--trials", "3",
               "--storage", storage, "--study", "shared", "--run-dir", str(tmp_path / "tune")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    outputs = [p.communicate(timeout=540)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    ran = [{int(line.split()[1]) for line in out.splitlines() if line.startswith("trial ")} for out in outputs]
    assert not ran[0] & ran[1], outputs  # no trial run by both
    rows = _rows(tmp_path / "tune")
    assert ran[0] | ran[1] == {int(r["number"]) for r in rows}
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}
    assert len({(r["schedule.lr"], r["model.dropout"]) for r in rows}) == 3  # no parameters run twice
    counted = [t for t in optuna.load_study(study_name="shared", storage=storage).trials
               if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(counted) == 3


def test_processes_opening_a_new_study_at_once_all_read_its_whole_terms(tmp_path):
    """Six openers race to create and claim one study: each sees the metric and the space together
    (CI once saw a second process read the metric before the first had written the space), and a
    seventh with another space is refused."""
    import threading

    from tfft.errors import UserError
    from tfft.studies.space import load_space
    from tfft.studies.storage import open_storage
    from tfft.studies.tune import _open_study

    url = f"sqlite:///{tmp_path / 'race.db'}"
    params = load_space(SPACE)
    outcomes, start = [], threading.Barrier(6)

    def open_one():
        storage = open_storage(optuna, url, heartbeat=60)  # one storage per opener, as per process
        start.wait()
        try:
            outcomes.append(_open_study(optuna, storage, "race", "minimize", "loss", params, None).user_attrs)
        except Exception as error:  # noqa: BLE001 - the test reports whatever an opener raised
            outcomes.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 6 and all(isinstance(o, dict) for o in outcomes), outcomes
    assert {o["tfft.study"]["metric"] for o in outcomes} == {"loss"}
    other = load_space({"schedule.lr": {"log_uniform": [1e-4, 1e-2]}})
    with pytest.raises(UserError, match="differs from the space study 'race' was started with"):
        _open_study(optuna, open_storage(optuna, url, heartbeat=60), "race", "minimize", "loss", other, None)


class _PruneTrial(optuna.pruners.BasePruner):
    """Prunes one trial at its first report (so the test does not hang on a median's luck)."""

    def __init__(self, number: int):
        self.number = number

    def prune(self, study, trial) -> bool:
        return trial.number == self.number


def test_the_pruner_stops_a_trial_and_keep_drops_all_but_the_best(tmp_path, tiny_backbone, capsys):
    import tfft

    config = head_config(tiny_backbone, schedule={"preset": "feature_extraction", "epochs": 3})
    result = tfft.tune(config, SPACE, trials=2, run_dir=str(tmp_path / "tune"), pruner=_PruneTrial(1), keep=1)
    rows = _rows(result.run_dir)
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED"]
    trials = optuna.load_study(study_name="tune", storage=result.storage).trials
    assert sorted(trials[0].intermediate_values) == [0, 1, 2]
    assert sorted(trials[1].intermediate_values) == [0]  # stopped after its first of three epochs
    assert "trial 1 [2/2]: pruned after epoch 1" in capsys.readouterr().out
    assert sorted(p.name for p in (result.run_dir / "trials").iterdir()) == ["trial-0000"]


# ------------------------------------------------------------------ study logic, on a stand-in train


@pytest.fixture
def fake_train(monkeypatch):
    """Replaces `tfft.training.run.train` with a quick stand-in: val accuracy = the trial's dropout.

    `calls` records each trial config; `behaviour[run_dir_name]` may name an exception to raise.
    """
    from tfft.training import run

    state = {"calls": [], "behaviour": {}}

    def train(cfg, run_dir=None, resume=False, overwrite=False, callbacks=None, *, feature_store=None):
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        state["calls"].append(cfg)
        error = state["behaviour"].get(path.name)
        if error is not None:
            raise error
        return run.TrainResult(path, {"val": {"accuracy": cfg.model.dropout, "loss": 1.0}}, [], [])

    monkeypatch.setattr(run, "train", train)
    return state


def test_a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on(tmp_path, fake_train, capsys):
    import tfft
    from tfft.errors import TrainingDiverged

    fake_train["behaviour"]["trial-0001"] = TrainingDiverged("schedule.phases[0].lr", "the loss became NaN/Inf")
    result = tfft.tune({"name": "div"}, SPACE, trials=3, run_dir=str(tmp_path / "tune"))
    rows = _rows(result.run_dir)
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert rows[1]["value"] == "" and len(fake_train["calls"]) == 3
    out = capsys.readouterr().out
    assert "trial 1 [2/3]: failed: the loss became NaN/Inf" in out
    assert "\ntune: expected cost: 3 trials x (" in out and "(pruned trials stop early)" in out
    assert result.best_value == max(float(r["value"]) for r in rows if r["value"])


def test_a_users_mistake_in_a_trial_stops_the_search_with_exit_2(tmp_path, fake_train, cli_runner):
    from tfft.errors import UserError

    fake_train["behaviour"]["trial-0000"] = UserError("data.source", "no images in /nowhere", "check the path")
    config = _write(tmp_path / "config.yaml", {"name": "mistake"})
    space = _write(tmp_path / "space.yaml", SPACE)
    run = cli_runner("tune", config, "--space", space, "--trials", 3, "--run-dir", tmp_path / "tune")
    assert run.exit_code == 2 and "data.source: no images in /nowhere" in run.output
    assert len(fake_train["calls"]) == 1


def test_parameters_equal_to_a_finished_trials_are_not_trained_again(tmp_path, fake_train):
    import tfft

    space = {"model.dropout": {"choice": [0.1, 0.3]}}
    result = tfft.tune({"name": "dup"}, space, trials=4, run_dir=str(tmp_path / "tune"))
    rows = _rows(result.run_dir)
    assert len(rows) == 4 and {r["state"] for r in rows} == {"COMPLETE"}
    assert len(fake_train["calls"]) == len({r["model.dropout"] for r in rows})
    assert all(float(r["value"]) == float(r["model.dropout"]) for r in rows)


def test_continuing_a_study_with_another_metric_or_space_is_exit_2(tmp_path, fake_train, cli_runner):
    config = _write(tmp_path / "config.yaml", {"name": "same"})
    space = _write(tmp_path / "space.yaml", SPACE)
    out = tmp_path / "tune"
    assert cli_runner("tune", config, "--space", space, "--trials", 1, "--run-dir", out).exit_code == 0
    run = cli_runner("tune", config, "--space", space, "--trials", 2, "--run-dir", out, "--metric", "val_loss")
    assert run.exit_code == 2 and "--metric" in run.output and "'accuracy'" in run.output
    other = _write(tmp_path / "other.yaml", {"model.dropout": {"uniform": [0.0, 0.3]}})
    run = cli_runner("tune", config, "--space", other, "--trials", 2, "--run-dir", out)
    assert run.exit_code == 2 and "--space" in run.output and "--study NAME" in run.output
    assert len(fake_train["calls"]) == 1


# ------------------------------------------------------------------ refused before any trial


@pytest.mark.parametrize("space, named", [
    ({"model.dropuot": {"uniform": [0.0, 0.5]}}, "model.dropuot: unknown key in the search space (hint: did you mean dropout?)"),
    ({"model.pooling": {"choice": ["avg", "mean"]}}, "model.pooling: the search space's value 'mean' is refused"),
    ({"schedule.finetune_unfreeze": {"choice": ["top:1", "top:9"]}},  # resnet50 has 5 blocks
     "schedule.finetune_unfreeze: the search space's value 'top:9' is refused"),
])
def test_a_bad_space_is_exit_2_before_any_trial(tmp_path, fake_train, cli_runner, space, named):
    config = _write(tmp_path / "config.yaml", {"name": "bad"})
    path = _write(tmp_path / "space.yaml", space)
    run = cli_runner("tune", config, "--space", path, "--trials", 3, "--run-dir", tmp_path / "tune")
    assert run.exit_code == 2 and named in run.output and "Traceback" not in run.output
    assert fake_train["calls"] == [] and not (tmp_path / "tune" / "study.db").exists()


def test_without_optuna_tune_is_exit_2_naming_the_extra(tmp_path, cli_runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    config = _write(tmp_path / "config.yaml", {"name": "no-optuna"})
    space = _write(tmp_path / "space.yaml", SPACE)
    run = cli_runner("tune", config, "--space", space, "--trials", 3)
    assert run.exit_code == 2 and 'pip install "tfft[tune]"' in run.output


def test_a_process_waits_for_the_last_slot_another_holds_and_never_overshoots(tmp_path, fake_train):
    """N=2 with one trial finished and one running elsewhere: this process runs nothing, waits for
    that trial and returns once the study has 2; a trial numbered past a full N is surplus."""
    import threading

    import tfft
    from tfft.studies.tune import SURPLUS, tune

    out = tmp_path / "tune"
    tfft.tune({"name": "wait"}, SPACE, trials=1, run_dir=str(out))
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.load_study(study_name="wait", storage=storage)
    elsewhere = study.ask()  # another process's trial, running
    done = {}
    thread = threading.Thread(target=lambda: done.update(result=tune(
        {"name": "wait"}, SPACE, trials=2, run_dir=str(out), poll_seconds=0.1)))
    thread.start()
    thread.join(timeout=3)
    assert thread.is_alive()  # waiting, not starting a third trial
    elsewhere.suggest_float("schedule.lr", 1e-4, 3e-2, log=True)
    elsewhere.suggest_float("model.dropout", 0.0, 0.5)
    study.tell(elsewhere, 0.25)
    thread.join(timeout=60)
    assert not thread.is_alive() and len(done["result"].trials) == 2
    assert len(fake_train["calls"]) == 1
    assert not [t for t in study.get_trials() if SURPLUS in t.user_attrs]


# ------------------------------------------------------------------ many processes on PostgreSQL


def _trial_open_in(pid: int) -> int | None:
    """The number of the trial whose train.log process `pid` has open (None: not in a trial)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:  # the process ended, or an fd closed while listing
        return None
    for link in links:
        path = Path(link)
        if path.name == "train.log" and path.parent.name.startswith("trial-"):
            return int(path.parent.name.split("-")[1])
    return None


@pytest.mark.slow
def test_processes_sharing_a_postgresql_study_replace_a_killed_trial(tmp_path, tiny_backbone, postgres_url):
    """Two `tfft tune` processes on one PostgreSQL study; one is SIGKILLed mid-trial. Its trial is
    failed by the heartbeat (not lost, not counted), the other finishes exactly N, none twice, and
    the password is nowhere in what they print or write."""
    from tests.studies.conftest import POSTGRES_PASSWORD

    config = _write(tmp_path / "config.yaml", head_config(tiny_backbone))
    space = _write(tmp_path / "space.yaml", SPACE)
    out = tmp_path / "tune"
    command = [sys.executable, "-m", "tfft.cli.main", "tune", str(config), "--space", str(space), "--trials", "2",
               "--storage", postgres_url, "--study", "pg", "--run-dir", str(out), "--heartbeat", "3"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    try:
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and all(p.poll() is None for p in procs):
            for index, proc in enumerate(procs):
                number = _trial_open_in(proc.pid)
                if number is not None:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = (index, number)
                    break
            time.sleep(0.05)
        assert killed is not None, "no process was seen in a trial"
        outputs = [p.communicate(timeout=540)[0] for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    index, number = killed
    survivor = 1 - index
    assert procs[index].returncode == -signal.SIGKILL and procs[survivor].returncode == 0, outputs
    assert f"trial {number}: its process stopped (no heartbeat): failed" in outputs[survivor]

    trials = optuna.load_study(study_name="pg", storage=postgres_url).trials
    states = {t.number: t.state.name for t in trials}
    assert states[number] == "FAIL"  # marked failed, not lost (RUNNING) and not counted
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 2 and len(trials) == 3, states
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 2  # no parameters run twice
    ran = [[int(line.split()[1]) for line in text.splitlines() if line.startswith("trial ") and " [" in line]
           for text in outputs]
    assert sorted(ran[0] + ran[1]) == sorted(t.number for t in complete), outputs  # each trial run once
    rows = _rows(out)
    assert sorted((int(r["number"]), r["state"]) for r in rows) == sorted(states.items())

    assert "tfft:***@127.0.0.1" in outputs[survivor]
    assert not [text for text in outputs if POSTGRES_PASSWORD in text]
    written = [p for p in out.rglob("*") if p.is_file() and POSTGRES_PASSWORD.encode() in p.read_bytes()]
    assert not written


def test_a_storage_password_is_masked_in_what_tune_prints_and_writes(tmp_path, fake_train, postgres_url, capsys):
    import tfft
    from tests.studies.conftest import POSTGRES_PASSWORD

    result = tfft.tune({"name": "masked"}, SPACE, trials=2, storage=postgres_url, study="masked",
                       run_dir=str(tmp_path / "tune"))
    printed = capsys.readouterr()
    assert len(result.trials) == 2 and "in postgresql://tfft:***@127.0.0.1:" in printed.out
    assert POSTGRES_PASSWORD not in printed.out + printed.err + repr(result)
    assert not [p for p in result.run_dir.rglob("*") if p.is_file() and POSTGRES_PASSWORD.encode() in p.read_bytes()]


def test_an_unreachable_or_driverless_storage_is_exit_2_without_its_password(tmp_path, fake_train, cli_runner,
                                                                           monkeypatch):
    config = _write(tmp_path / "config.yaml", {"name": "nodb"})
    space = _write(tmp_path / "space.yaml", SPACE)
    url = "postgresql://tfft:hunter2-pw@127.0.0.1:1/studies"  # port 1: nothing listens
    from tfft.studies import storage

    waits = []
    monkeypatch.setattr(storage.time, "sleep", waits.append)
    run = cli_runner("tune", config, "--space", space, "--trials", 1, "--storage", url, "--run-dir", tmp_path / "a")
    assert run.exit_code == 2 and "--storage: cannot open postgresql://tfft:***@127.0.0.1:1/studies" in run.output
    assert "hunter2" not in run.output and "Traceback" not in run.output
    assert waits == []  # refused at once: the retries are for two processes creating one database, not for this

    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` raises ImportError, as without it
    run = cli_runner("tune", config, "--space", space, "--trials", 1, "--storage", url, "--run-dir", tmp_path / "b")
    assert run.exit_code == 2, run.output
    assert "postgresql:// needs the psycopg module" in run.output and 'pip install "psycopg[binary]"' in run.output
    assert "hunter2" not in run.output and fake_train["calls"] == []


def test_masked_hides_the_password_of_a_url_and_nothing_else():
    from tfft.studies.storage import masked

    assert masked("mysql+pymysql://me:p%40ss@db:3306/s?charset=utf8") == "mysql+pymysql://me:***@db:3306/s?charset=utf8"
    assert masked("postgresql://db/s?user=me&password=x1&sslmode=require") == \
        "postgresql://db/s?user=me&password=***&sslmode=require"
    assert masked("postgresql://me@db/s") == "postgresql://me@db/s"
    assert masked("sqlite:////tmp/a:b@c/study.db") == "sqlite:////tmp/a:b@c/study.db"


def test_run_dir_with_user_files_is_refused(tmp_path, fake_train, cli_runner, user_folder):
    config = _write(tmp_path / "config.yaml", {"name": "mine"})
    space = _write(tmp_path / "space.yaml", SPACE)
    run = cli_runner("tune", config, "--space", space, "--trials", 1, "--run-dir", user_folder)
    assert run.exit_code == 2 and f"--run-dir {user_folder}: already holds files" in run.output, run.output
    assert user_files(user_folder) == ["notes.txt", "photos/a.jpg"] and fake_train["calls"] == []

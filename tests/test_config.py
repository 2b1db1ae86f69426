"""Config: defaults, strict keys with hints, --set overrides, YAML errors, `tfft config show`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tfft.config import Config, apply_override, load_config
from tfft.errors import UserError

from tests.conftest import tiny_config, write_image_folder


def test_three_line_config_gets_every_default(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  source: builtin:shapes\n")
    cfg = load_config(path)
    assert cfg.model.backbone == "resnet50"
    assert cfg.schedule.preset == "two_phase"
    assert cfg.data.image_size == (224, 224)
    resolved = yaml.safe_load(cfg.to_yaml())
    assert set(resolved) == {"name", "seed", "task", "data", "model", "schedule", "augment", "performance",
                             "distribute", "training", "evaluate", "distill"}
    assert resolved["data"]["image_size"] == [224, 224]


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config({"schedule": {"phases": [{"name": "a", "epochs": 2, "unfreeze": "top:2"}]}})
    again = load_config(cfg.to_yaml())
    assert again == cfg


@pytest.mark.parametrize("override, key, expected", [
    ("data.batch_size=16", ("data", "batch_size"), 16),
    ("data.image_size=[96,96]", ("data", "image_size"), (96, 96)),
    ("model.weights=null", ("model", "weights"), None),
    ("augment.zoom_range=[0.8,1.2]", ("augment", "zoom_range"), (0.8, 1.2)),
    ("schedule.lr=1e-4", ("schedule", "lr"), 1e-4),
])
def test_set_overrides(override, key, expected):
    cfg = load_config({}, overrides=[override])
    assert getattr(getattr(cfg, key[0]), key[1]) == expected


def test_set_list_index():
    base = {"schedule": {"phases": [{"name": "head", "epochs": 1}, {"name": "ft", "epochs": 2, "lr": 1e-3}]}}
    cfg = load_config(base, overrides=["schedule.phases[1].lr=1e-5"])
    assert cfg.schedule.phases[1].lr == 1e-5
    with pytest.raises(UserError, match=r"index \[5\]"):
        load_config(base, overrides=["schedule.phases[5].lr=1e-5"])


@pytest.mark.parametrize("raw, where, needle", [
    ({"data": {"batch_sise": 3}}, "data.batch_sise", "did you mean batch_size"),
    ({"modle": {}}, "modle", "did you mean model"),
    ({"data": {"batch_size": -3}}, "data.batch_size", "expected an integer > 0, got -3"),
    ({"data": {"batch_size": "many"}}, "data.batch_size", "'many'"),
    ({"model": {"backbone": "resnet5"}}, "model.backbone", "did you mean resnet50"),
    ({"schedule": {"phases": [{"name": "x", "epochs": 1, "unfreeze": "top:x"}]}}, "schedule.phases[0].unfreeze", "top:N"),
    ({"schedule": {"preset": "fast"}}, "schedule.preset", "two_phase"),
    ({"augment": {"zca_whitening": True}}, "augment.zca_whitening", "not supported"),
    ({"name": "../escape"}, "name", "folder name"),
    ({"data": {"image_size": [4, 4]}}, "data.image_size", "at least 8"),
])
def test_user_mistakes_name_the_key(raw, where, needle):
    with pytest.raises(UserError) as info:
        load_config(raw)
    assert info.value.where == where
    assert needle in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  source: [unclosed\nmodel: {}\n")
    with pytest.raises(UserError) as info:
        load_config(path)
    assert str(path) in info.value.where and "YAML" in info.value.message


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("bad", ["nokey", "data..x=1", "data.batch_size=[1,"])
def test_malformed_set(bad):
    with pytest.raises(UserError):
        apply_override({}, bad)


def test_relative_source_resolves_against_config_file(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "c.yaml").write_text("data:\n  source: imgs\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.data.source == str(tmp_path / "imgs")


def test_config_show_never_imports_tensorflow_and_is_complete(tmp_path):
    """`config show` answers without TensorFlow (its time is benchmarks/bench_cli_latency.py's)."""
    path = tmp_path / "c.yaml"
    path.write_text("name: demo\n")
    probe = ("import sys; from click.testing import CliRunner; from tfft.cli.main import cli; "
             f"r = CliRunner().invoke(cli, ['config', 'show', {str(path)!r}, '--set', 'data.batch_size=8']); "
             "print(r.output); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    *shown_lines, imported = out.stdout.rstrip().splitlines()
    shown = yaml.safe_load("\n".join(shown_lines))
    assert shown["name"] == "demo" and shown["data"]["batch_size"] == 8
    assert imported == "False"


def test_config_show_prints_block_yaml(tmp_path, cli_runner):
    """Every key on its own line: no section printed as one `{...}` blob; short lists stay `[a, b]`."""
    path = tmp_path / "c.yaml"
    path.write_text("name: demo\nschedule: {phases: [{name: head, epochs: 1}]}\n")
    result = cli_runner("config", "show", path)
    assert result.exit_code == 0
    assert "{" not in result.output
    lines = result.output.splitlines()
    assert "schedule:" in lines and "  optimizer: adam" in lines and "  image_size: [224, 224]" in lines
    assert "  - name: head" in lines
    assert yaml.safe_load(result.output)["schedule"]["phases"][0]["epochs"] == 1


@pytest.mark.parametrize("override, line", [
    ("schedule.finetune_epochs=0", "error: schedule.finetune_epochs: expected an integer >= 1, got 0 "
                                   "(hint: use schedule.preset: feature_extraction to train the head only)"),
    ("schedule.epochs=-2", "error: schedule.epochs: expected an integer >= 1, got -2"),
    ("schedule.lr=0", "error: schedule.lr: expected a number > 0, got 0 (hint: a rate such as 1e-3"),
    ("data.batch_size=0", "error: data.batch_size: expected an integer > 0, got 0 (hint: a positive integer"),
    ("data.image_size=[224]", "error: data.image_size: expected a list of 2 items, got [224] (hint: two integers"),
    ("data.val_split=1.5", "error: data.val_split: expected a number >= 0 and < 1, got 1.5 (hint: a fraction"),
    ("schedule.preset=twophase", "error: schedule.preset: expected one of feature_extraction, full, two_phase, "
                                 "gradual, got 'twophase' (hint: did you mean two_phase?)"),
    ("schedule.optimizer=adm", "error: schedule.optimizer: expected one of adam, adamw, sgd, rmsprop, got 'adm' "
                               "(hint: did you mean adam?)"),
    ("schedule.bn=off", "error: schedule.bn: expected one of auto, frozen, train, got False (hint: YAML reads "
                        "on/off/yes/no as true/false"),
])
def test_validation_errors_say_what_to_do(tmp_path, cli_runner, override, line):
    """pydantic's wording ("Input should be greater than or equal to 1") becomes the key, what was
    expected and received, and a hint; one line, exit 2, no traceback."""
    path = tmp_path / "c.yaml"
    path.write_text("name: demo\n")
    result = cli_runner("config", "show", path, "--set", override)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith(line), result.output
    assert "Traceback" not in result.output and "Input should" not in result.output


def test_config_show_user_error_exit_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  batch_sise: 3\n")
    out = subprocess.run([sys.executable, "-m", "tfft.cli.main", "config", "show", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "data.batch_sise" in out.stderr and "batch_size" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_schema_is_json_schema():
    from tfft.config import schema

    assert schema()["title"] == "Config"
    assert isinstance(Config().model_dump(), dict)


def test_feature_cache_settings():
    assert load_config({"performance": {"cache_features": "off"}}).performance.cache_features == "off"
    assert load_config({"performance": {"cache_features": True}}).performance.cache_features == "on"
    assert load_config({}).performance.cache_augmented_copies == 0
    with pytest.raises(UserError, match="cache_augmented_copies"):
        load_config({"performance": {"cache_augmented_copies": -1}})


@pytest.mark.parametrize("config, lr", [
    ({"schedule": {"preset": "full"}}, 1e-4),  # pretrained (the default weights): lr / finetune_factor
    ({"schedule": {"preset": "full", "finetune_factor": 4}}, 2.5e-4),
    ({"schedule": {"preset": "full", "lr": 1e-3}}, 1e-3),  # a rate given is the rate used
    ({"schedule": {"preset": "full"}, "model": {"weights": None}}, 1e-3),  # from scratch
    ({"schedule": {"preset": "two_phase"}}, 1e-3),
])
def test_full_fine_tune_of_pretrained_weights_defaults_to_the_fine_tuning_rate(config, lr):
    cfg = load_config(config)
    assert cfg.schedule.lr == pytest.approx(lr)
    assert load_config(cfg.to_dict()).schedule.lr == pytest.approx(lr)  # config.yaml and --resume agree


def test_relative_paths_are_stored_absolute(tmp_path, monkeypatch):
    """Every file path of a config is made absolute from the current directory where it was loaded."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "teacher").mkdir()
    cfg = load_config({"data": {"source": "csv:lists/m.csv"},
                       "model": {"backbone": "keras:nets/b.keras#conv3", "weights": "w/x.weights.h5"},
                       "distill": {"teacher": "teacher"}})
    assert cfg.data.source == f"csv:{tmp_path / 'lists' / 'm.csv'}"
    assert cfg.model.backbone == f"keras:{tmp_path / 'nets' / 'b.keras'}#conv3"
    assert cfg.model.weights == str(tmp_path / "w" / "x.weights.h5")
    assert cfg.distill.teacher == str(tmp_path / "teacher")
    kept = load_config({"data": {"source": "builtin:shapes"}, "model": {"weights": "imagenet"}})
    assert kept.data.source == "builtin:shapes" and kept.model.weights == "imagenet"


def test_relative_manifest_rows_stay_relative_to_the_manifest(tmp_path, monkeypatch):
    from tfft.data import load_splits

    write_image_folder(tmp_path / "photos", {"cat": 3, "dog": 3}, size=8)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "m.csv").write_text("path,label\n" + "".join(
        f"../photos/{c}/{c}_{i:03d}.png,{c}\n" for c in ("cat", "dog") for i in range(3)))
    monkeypatch.chdir(tmp_path)
    cfg = load_config({"data": {"source": "csv:lists/m.csv"}})
    monkeypatch.chdir(tmp_path / "photos")  # elsewhere: the stored path and the rows still resolve
    splits = load_splits(cfg.data, seed=0)
    assert len(splits.splits["train"]) + len(splits.splits["val"]) == 6 and splits.skipped == []


def test_run_with_a_relative_source_evaluates_from_another_folder(tmp_path, monkeypatch, capsys, cli_runner):
    """A run's config.yaml names its data absolutely: `tfft evaluate RUN` works from anywhere, and a
    class too small to get a val image is named while training."""
    from tfft.training.run import train

    work = tmp_path / "work"
    write_image_folder(work / "photos", {"cat": 2, "dog": 6, "eel": 6}, size=16)
    monkeypatch.chdir(work)
    run = train(tiny_config(data={"source": "photos"}), run_dir=str(tmp_path / "run")).run_dir
    assert "warning: 1 class has no val image: cat (2 images)" in capsys.readouterr().out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["source"] == str(work / "photos")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli_runner("evaluate", run, "--split", "val")
    assert result.exit_code == 0, result.output
    assert (run / "eval" / "val" / "metrics.json").is_file()
    assert load_config(run / "config.yaml").data.source == str(work / "photos")


def test_the_dead_key_distribute_scale_lr_still_loads_with_a_warning():
    with pytest.warns(FutureWarning, match="distribute.scale_lr"):
        cfg = load_config({"distribute": {"scale_lr": True, "strategy": "none"}})
    assert cfg.distribute.strategy == "none" and "scale_lr" not in cfg.to_dict()["distribute"]

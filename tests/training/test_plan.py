"""The run lifecycle's plan alone: where a run starts, its steps, monitor and feature-cache cut,
before any fit (`tfft.training.plan`)."""

from __future__ import annotations

import json

from tests.conftest import tiny_config
from tfft.config import load_config
from tfft.training.assembly import resolve
from tfft.training.plan import plan_run, verbosity
from tfft.training.session import start_session


def _session(tmp_path, **sections):
    import keras
    import tensorflow as tf

    keras.backend.clear_session()
    resolved = resolve(load_config(tiny_config(**sections)))
    session = start_session(resolved, tf.distribute.get_strategy(), tmp_path / "run", resume=False)
    session.assemble()
    return session


def test_a_fresh_plan_starts_at_epoch_zero_with_one_cut_for_its_cached_phases(tmp_path):
    session = _session(tmp_path, model={"backbone": "mobilenet_v3_small", "weights": None},
                       schedule={"phases": [{"name": "head", "epochs": 2, "unfreeze": "none"},
                                            {"name": "top", "epochs": 1, "unfreeze": "top:1"},
                                            {"name": "all", "epochs": 1, "unfreeze": "all"}]},
                       training={"steps_per_epoch": 3, "verbose": "quiet"})
    plan = plan_run(session)
    assert [p.name for p in plan.phases] == ["head", "top", "all"]
    assert (plan.steps, plan.monitor, plan.verbose) == (3, "val_loss", 0)
    assert plan.progress.state["epoch"] == 0 and plan.progress.history == []
    # One pass to the input of the top block serves both cached phases (the full one is not cached).
    assert plan.shared_cut is not None and plan.shared_cut in [layer.name for layer in session.model.get_layer("backbone").layers]
    lists = json.loads((tmp_path / "run" / "checkpoints" / "splits.json").read_text())
    assert sorted(lists) == sorted(k for k, v in session.splits.splits.items() if len(v))
    assert not (tmp_path / "run" / "history.csv").exists()  # planning trains nothing


def test_no_cache_cut_when_the_feature_cache_is_off(tmp_path):
    session = _session(tmp_path, performance={"cache_features": "off"},
                       data={"val_split": 0.0, "test_split": 0.0})
    plan = plan_run(session)
    assert plan.shared_cut is None and plan.monitor == "loss" and plan.val is None
    assert verbosity("line") == 2

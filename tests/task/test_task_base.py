"""tfft.task.base and the registry helpers: what every task shares, on small numpy inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tfft.errors import UserError
from tfft.task import (AUTO, TASKS, MultiLabel, SingleLabel, Task, check_task_name, data_labels, task_for,
                       task_of_metrics, task_of_rows)


def test_a_task_without_thresholds_chooses_none_and_summarises_its_headline():
    class Plain(Task):
        name, headline = "plain", ("accuracy",)

    task = Plain()
    assert task.choose_thresholds(np.zeros((3, 2)), np.zeros((3, 2))) is None
    assert task.default_thresholds(["a", "b"]) is None
    assert task.summary_metrics() == ("accuracy", "loss")
    assert task.summary({"accuracy": 0.5, "loss": 1.25}) == "accuracy 0.5000, loss 1.2500"
    assert task.parity(np.eye(2), np.eye(2)) == {} and not task.multi_hot and not task.thresholded


def test_refuse_raises_only_for_the_commands_a_task_refuses():
    MultiLabel().refuse("tune", "runs/x")  # nothing refused: no error
    SingleLabel().refuse("prune", "runs/x")
    with pytest.raises(UserError) as err:
        MultiLabel().refuse("prune", "runs/x")
    assert err.value.where == "runs/x" and "multi-label" in str(err.value)
    with pytest.raises(UserError, match="photos/ is multi-label"):
        MultiLabel().refuse("issues", "task", subject="photos/")


def test_config_task_names_check_against_the_registry_with_a_did_you_mean():
    assert check_task_name(None) == AUTO and check_task_name("single_label") == "single_label"
    with pytest.raises(UserError) as err:
        check_task_name("single_lable")
    assert err.value.where == "task" and "did you mean single_label" in str(err.value)
    assert data_labels("auto") == "auto" and data_labels("multi_label") == "multi_label"


def test_the_task_of_metrics_and_of_prediction_rows():
    assert task_of_metrics({"task": "multi_label"}).name == "multi_label"
    assert task_of_metrics({"accuracy": 1.0}).name == "single_label"
    multi_rows = [{"path": "a", "labels": [], "probabilities": [], "error": "bad"},
                  {"path": "b", "labels": [], "probabilities": [], "all_probabilities": {"cat": 0.2}}]
    assert task_of_rows(multi_rows).name == "multi_label"
    assert task_of_rows([{"path": "a", "labels": ["cat"], "probabilities": [0.9]}]).name == "single_label"


def test_registered_tasks_are_the_two_built_in_ones_and_auto_is_single_label():
    assert TASKS.names() == ["single_label", "multi_label"]
    assert type(task_for("auto")) is SingleLabel and type(task_for("multi_label")) is MultiLabel

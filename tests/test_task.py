"""tfft.task: a kind of problem registered from outside tfft (ARCHITECTURE.md, "How to add a task")."""

from __future__ import annotations

import numpy as np
import pytest

from tfft.errors import UserError
from tfft.task import TASKS, Task, task_for


class MostLikelyTwo(Task):
    """A toy task: two labels an image, the two most likely (softmax over the classes)."""

    name = "top_two"
    activation = "softmax"
    default_metric = "accuracy"

    def decide(self, probabilities):
        return np.argsort(-np.asarray(probabilities), axis=-1)[..., :2]

    def epoch_metric(self, metric):
        return metric


def test_a_task_registered_from_a_test_is_built_by_name_and_then_gone():
    with TASKS.registered("top_two", MostLikelyTwo):
        task = task_for("top_two")
        assert task.name == "top_two" and task.decide([[0.1, 0.6, 0.3]]).tolist() == [[1, 2]]
        from tfft.config import ModelConfig
        from tfft.models.build import build_classifier

        model = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32), task=task)
        assert model.get_layer("probabilities").activation.__name__ == "softmax"
    with pytest.raises(UserError, match="top_two"):
        task_for("top_two")
    assert TASKS.names() == ["single_label", "multi_label"]


def test_an_unknown_task_says_what_exists():
    with pytest.raises(UserError) as err:
        task_for("multi_labels")
    assert err.value.where == "task" and "multi_label" in str(err.value)

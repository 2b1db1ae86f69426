"""The kind of problem a run solves: what depends on it lives in one `Task` object.

`Task` (`base.py`) is the interface; `SingleLabel` (`single_label.py`: softmax, categorical
cross-entropy, argmax, the per-class metrics table) and `MultiLabel` (`multi_label.py`: sigmoid,
binary cross-entropy, a threshold per label chosen on validation data, the per-label table) are
registered in `TASKS`, by the name a config's `task:` gives. `task_for` builds one; a run
directory's task is `tfft.runs.directory.task_of`. The numpy behind the tables is
`scores.py` (single-label metrics) and `thresholds.py` (average precision, threshold choice).

Example:
>>> task = task_for("auto")
>>> task.name, task.activation
('single_label', 'softmax')
>>> task.decide([[0.2, 0.8], [0.9, 0.1]]).tolist()
[1, 0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from tfft.registry import Registry
from tfft.task.base import LOGITS_LAYER, PROBABILITIES_LAYER, Task
from tfft.task.multi_label import MultiLabel
from tfft.task.single_label import SingleLabel

AUTO = "auto"  # a config's `task: auto`: single-label unless the data says multi-label

# The kinds of problem, by the name a config's `task` gives (`auto` is resolved before this).
TASKS: Registry[type[Task]] = Registry("task", where="task")
TASKS.register("single_label", SingleLabel)
TASKS.register("multi_label", MultiLabel)


def task_for(kind: Optional[str] = AUTO) -> Task:
    """The `Task` for a config's `task` value (`auto` is single-label until data says otherwise).

    Raises:
        UserError: `task` names a kind no one registered (with a "did you mean").
    """
    kind = "single_label" if kind in (None, AUTO) else str(kind)
    return TASKS.get(kind)()


def check_task_name(kind: Optional[str]) -> str:
    """`kind` when it is `auto` or a registered task; else the `UserError` `task_for` raises.

    Example:
    >>> check_task_name("multi_label")
    'multi_label'
    >>> check_task_name("multilabel")
    Traceback (most recent call last):
    ...
    tfft.errors.UserError: task: unknown task 'multilabel'; expected one of: single_label, multi_label (hint: did you mean multi_label?)
    """
    if kind in (None, AUTO):
        return AUTO
    TASKS.get(str(kind))
    return str(kind)


def data_labels(kind: Optional[str]) -> str:
    """The `task=` the data layer reads a config's `task` with: `auto` stays `auto` (the data
    decides), a registered task gives its `data_labels` (`single_label` or `multi_label`).

    Example:
    >>> data_labels("auto"), data_labels("multi_label")
    ('auto', 'multi_label')
    """
    kind = check_task_name(kind)
    return AUTO if kind == AUTO else task_for(kind).data_labels


def task_of_metrics(metrics: Mapping[str, Any]) -> Task:
    """The task whose `metrics_table` gave `metrics` (its `task` key; none: single-label).

    Example:
    >>> task_of_metrics({"task": "multi_label", "mAP": 0.5}).name, task_of_metrics({"accuracy": 1.0}).name
    ('multi_label', 'single_label')
    """
    return task_for(metrics.get("task") or AUTO)


def task_of_rows(rows: Sequence[Mapping[str, Any]]) -> Task:
    """The task whose `prediction_row`s these are: the last registered one whose `row_fields`
    some row fills (single-label when none does).

    Example:
    >>> task_of_rows([{"path": "a.jpg", "labels": [], "probabilities": [], "all_probabilities": {"cat": 0.1}}]).name
    'multi_label'
    """
    for name, kind in reversed(TASKS.items()):
        if kind.row_fields and any(all(row.get(key) for key in kind.row_fields) for row in rows):
            return task_for(name)
    return task_for(AUTO)


__all__ = ["AUTO", "LOGITS_LAYER", "PROBABILITIES_LAYER", "TASKS", "MultiLabel", "SingleLabel", "Task",
           "check_task_name", "data_labels", "task_for", "task_of_metrics",
           "task_of_rows"]

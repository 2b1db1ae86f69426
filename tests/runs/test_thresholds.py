"""tfft.runs.thresholds: a run's thresholds.json, in labels.txt order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfft.errors import UserError
from tfft.runs.thresholds import read_run_thresholds


def test_thresholds_follow_labels_order_and_default_to_half(tmp_path):
    assert read_run_thresholds(tmp_path, ["a", "b"]).tolist() == [0.5, 0.5]
    (tmp_path / "thresholds.json").write_text(json.dumps({"b": 0.25, "a": 0.75}))
    np.testing.assert_allclose(read_run_thresholds(tmp_path, ["a", "b"]), [0.75, 0.25])
    (tmp_path / "thresholds.json").write_text(json.dumps({"a": 2.0, "b": 0.1}))
    with pytest.raises(UserError):
        read_run_thresholds(tmp_path, ["a", "b"])

"""tfft.runs.resume: a resumed run may change only what changes no result."""

from __future__ import annotations

import pytest

from tfft.config import load_config
from tfft.errors import UserError
from tfft.runs.resume import check_resumable


def test_only_harmless_settings_may_change_on_resume():
    saved = load_config({"data": {"source": "builtin:shapes"}})
    check_resumable(saved, load_config({"data": {"source": "builtin:shapes"},
                                        "training": {"verbose": "quiet"}}))
    with pytest.raises(UserError) as err:
        check_resumable(saved, load_config({"data": {"source": "builtin:shapes", "batch_size": 8}}))
    assert "data.batch_size" in str(err.value)

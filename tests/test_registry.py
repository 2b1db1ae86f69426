"""tfft.registry: the one shape of every extension point."""

import pytest

from tfft.errors import UserError
from tfft.registry import Registry


def test_unknown_name_is_a_user_error_naming_the_option_and_the_choices():
    formats = Registry("export format", where="--format")
    formats.register("onnx", object)
    formats.register("openvino", object)
    with pytest.raises(UserError) as caught:
        formats.get("onxx")
    assert caught.value.where == "--format"
    assert "onnx, openvino" in caught.value.message
    assert caught.value.hint == "did you mean onnx?"


def test_a_name_is_claimed_once_and_registered_restores_what_was_there():
    sources = Registry("data source", where="data.source")
    sources.register("folder", "real")
    with pytest.raises(ValueError):
        sources.register("folder", "again")
    with sources.registered("folder", "toy"):
        assert sources.get("folder") == "toy"
    assert sources.get("folder") == "real"
    assert sources.names() == ["folder"] and len(sources) == 1

"""tfft.errors: the one-line user error and the message helpers."""

from __future__ import annotations

import pytest

from tfft.errors import plural


@pytest.mark.parametrize("count, noun, expected", [
    (1, "class", "1 class"), (2, "class", "2 classes"), (0, "class", "0 classes"), (1, "image", "1 image"),
    (3, "train+val image", "3 train+val images"), (2, "match", "2 matches"), (2, "entry", "2 entries"),
    (2, "day", "2 days"), (2, "index", "2 indexes"),
])
def test_plural(count, noun, expected):
    assert plural(count, noun) == expected


def test_plural_irregular():
    assert plural(2, "child", "children") == "2 children" and plural(1, "child", "children") == "1 child"

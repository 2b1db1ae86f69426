"""tfft.wording: counted nouns in every message ("1 class", "2 classes", never "2 classs")."""

from __future__ import annotations

import pytest

from tfft.wording import plural


@pytest.mark.parametrize("count, noun, expected", [
    (1, "class", "1 class"), (2, "class", "2 classes"), (0, "class", "0 classes"), (1, "image", "1 image"),
    (3, "train+val image", "3 train+val images"), (2, "match", "2 matches"), (2, "entry", "2 entries"),
    (2, "day", "2 days"), (2, "epoch", "2 epochs"), (1, "unreadable file", "1 unreadable file"),
])
def test_plural(count, noun, expected):
    assert plural(count, noun) == expected


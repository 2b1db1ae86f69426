"""Counted nouns for what people read: "1 class", "2 classes" (`plural`)."""

from __future__ import annotations

_HARD_CH = ("epoch", "stomach", "monarch")


def plural(n: int, word: str) -> str:
    """`n` and `word`, the word in the plural unless `n` is 1 (English rules for regular nouns).

    Args:
        n: the count.
        word: the singular noun, e.g. "class", "image", "epoch", "file".

    Returns:
        E.g. "1 class", "2 classes", "0 images".

    Example:
    >>> plural(1, "class"), plural(2, "class"), plural(0, "image"), plural(3, "entry"), plural(2, "epoch")
    ('1 class', '2 classes', '0 images', '3 entries', '2 epochs')
    """
    if n == 1:
        return f"{n} {word}"
    if word.endswith(_HARD_CH):  # "ch" said "k": epochs, not epoches
        return f"{n} {word}s"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return f"{n} {word}es"
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return f"{n} {word[:-1]}ies"
    return f"{n} {word}s"

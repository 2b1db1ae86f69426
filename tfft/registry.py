"""One shape for every extension point: backbone families, data sources, exporters, tasks.

A `Registry` maps a name to an entry (a class or a factory). Each extension point owns one
instance (`tfft.backbones.FAMILIES`, `tfft.data.SOURCES`, `tfft.evaluation.EXPORTERS`,
`tfft.task.TASKS`, ...); what the CLI lists comes from its `names()`. Unknown names raise a
`UserError` naming the config key or option, with a "did you mean" or the list.

Registering is explicit (`REGISTRY.register("name", entry)` or the decorator form) and a test
that registers a toy entry takes it out again with `registered(...)`, so no run or test leaves
the process changed.

Example:
>>> formats = Registry("export format", where="--format")
>>> @formats.register("csv")
... class CsvExporter:
...     pass
>>> formats.names()
['csv']
>>> formats.get("csv").__name__
'CsvExporter'
>>> try:
...     formats.get("cvs")
... except UserError as error:
...     print(error)
--format: unknown export format 'cvs'; expected one of: csv (hint: did you mean csv?)
>>> with formats.registered("toy", object):
...     "toy" in formats
True
>>> "toy" in formats
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Optional, TypeVar

from tfft.errors import UserError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> entries of one extension point, in registration order.

    Args:
        kind: what an entry is, in words ("backbone family", "data source", "export format").
        where: the config key or CLI option that names an entry, for error messages.
        hint: the hint when a name is unknown and nothing is close (default: the list).
    """

    def __init__(self, kind: str, where: str, hint: Optional[str] = None):
        self.kind = kind
        self.where = where
        self.hint = hint
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: Optional[T] = None, replace: bool = False) -> Any:
        """Add `entry` under `name`; without `entry`, return a decorator that adds what it wraps.

        Raises:
            ValueError: `name` is taken and `replace` is False (a programming error, not a
                user's: two modules claimed one name).
        """
        if entry is None:
            def decorate(item: T) -> T:
                self.register(name, item, replace=replace)
                return item
            return decorate
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is registered already; pass replace=True to replace it")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove `name` (no error when it is absent)."""
        self._entries.pop(name, None)

    @contextmanager
    def registered(self, name: str, entry: T) -> Iterator[T]:
        """Register `entry` for the body of a `with` block, then restore what was there."""
        previous = self._entries.get(name)
        self.register(name, entry, replace=True)
        try:
            yield entry
        finally:
            if previous is None:
                self.unregister(name)
            else:
                self._entries[name] = previous

    def get(self, name: str) -> T:
        """The entry named `name`; a `UserError` on `self.where` when there is none."""
        if name in self._entries:
            return self._entries[name]
        listing = ", ".join(self._entries) or "(none registered)"
        raise UserError(self.where, f"unknown {self.kind} {name!r}; expected one of: {listing}",
                        did_you_mean(str(name), self._entries) or self.hint)

    def find(self, predicate: Callable[[str, T], bool]) -> Optional[tuple[str, T]]:
        """The first (name, entry) for which `predicate(name, entry)` holds, in order, or None."""
        for name, entry in self._entries.items():
            if predicate(name, entry):
                return name, entry
        return None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, in registration order."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["Registry"]

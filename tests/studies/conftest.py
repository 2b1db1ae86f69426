"""Fixtures of the studies tests: a tiny cross-validation and stand-ins for the ens branch's modules.

`tfft.studies.duplicates` and `tfft.studies.label_issues` come from another branch; until it is
merged, `studies_modules` puts minimal stand-ins with the agreed entry points in their place (exact
byte copies only; self-confidence ranking), and uses the real modules once they exist.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.util
import sys
import types

import numpy as np
import pytest


@dataclasses.dataclass(frozen=True)
class _Pair:
    path_a: str
    path_b: str
    distance: float
    kind: str


def _find_duplicates(paths, embeddings=None):
    seen, pairs = {}, []
    for path in paths:
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        if digest in seen:
            pairs.append(_Pair(seen[digest], path, 0.0, "exact"))
        else:
            seen[digest] = path
    return pairs


def _groups(paths, pairs):
    ids = {p: i for i, p in enumerate(paths)}
    for pair in pairs:
        ids[pair.path_b] = ids[pair.path_a]
    _, out = np.unique([ids[p] for p in paths], return_inverse=True)
    return out


@dataclasses.dataclass
class _Issue:
    index: int
    given: int
    suggested: int
    score: float


def _rank(labels, probs):
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -1
    score = 1 - probs[np.arange(len(labels)), labels]
    return [_Issue(int(i), int(labels[i]), int(others[i].argmax()), float(score[i])) for i in np.argsort(-score)]


def _write_csv(path, paths, class_names, ranking):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "given", "suggested", "score"])
        for issue in ranking:
            writer.writerow([paths[issue.index], class_names[issue.given], class_names[issue.suggested], issue.score])


@pytest.fixture(autouse=True)
def studies_modules(monkeypatch):
    """The ens branch's modules, or stand-ins with the same entry points while they are absent."""
    if importlib.util.find_spec("tfft.studies.duplicates") is None:
        module = types.ModuleType("tfft.studies.duplicates")
        module.find_duplicates, module.groups = _find_duplicates, _groups
        monkeypatch.setitem(sys.modules, "tfft.studies.duplicates", module)
    if importlib.util.find_spec("tfft.studies.label_issues") is None:
        module = types.ModuleType("tfft.studies.label_issues")
        module.rank, module.write_csv = _rank, _write_csv
        monkeypatch.setitem(sys.modules, "tfft.studies.label_issues", module)

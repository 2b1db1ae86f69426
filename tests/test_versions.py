"""The version floors pyproject.toml declares: the installed packages meet them, and each floor is
at least the release that brought a feature tfft uses (so `pip install tfft` on the oldest allowed
versions does not fail at run time)."""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")


def _resizing_antialias():
    import keras

    return keras.layers.Resizing(8, 8, antialias=True)


def _distillation():
    import keras

    return keras.distillation.LogitsDistillation(temperature=2.0), keras.distillation.Distiller


def _optuna_stale_callback():
    import optuna

    assert "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters


def _postgres_driver():
    import psycopg  # SQLAlchemy 2.1's driver of postgresql:// URLs

    return psycopg.connect


# (distribution, the first release with the feature, the feature, where tfft uses it, a check)
FEATURES = [
    ("keras", "3.12", "keras.distillation", "tfft/training/distill.py", _distillation),
    ("keras", "3.9", "keras.layers.Resizing(antialias=)", "tfft/training/distill.py, tfft/studies/ensemble.py",
     _resizing_antialias),
    ("optuna", "4.9", "RDBStorage(heartbeat_stale_trial_callback=)", "tfft/studies/tune.py", _optuna_stale_callback),
    ("psycopg", "3.1", "psycopg 3", "tfft tune --storage postgresql://", _postgres_driver),
]


def _declared() -> dict[str, list[Requirement]]:
    """Every requirement of pyproject.toml (dependencies and extras), by distribution name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    found: dict[str, list[Requirement]] = {}
    for line in lines:
        req = Requirement(line)
        found.setdefault(req.name.lower(), []).append(req)
    return found


def _floor(reqs: list[Requirement]) -> Version | None:
    floors = [Version(s.version) for r in reqs for s in r.specifier if s.operator in (">=", "==", "~=", ">")]
    return min(floors) if floors else None


@pytest.mark.parametrize("dist, since, feature, where, check", FEATURES, ids=[f[2] for f in FEATURES])
def test_each_floor_is_at_least_the_release_of_the_features_tfft_uses(dist, since, feature, where, check):
    reqs = _declared().get(dist)
    assert reqs, f"{where} uses {feature} but pyproject.toml does not require {dist}"
    floor = _floor(reqs)
    assert floor is not None and floor >= Version(since), (
        f"{where} uses {feature} (new in {dist} {since}) but pyproject.toml allows {dist} {floor}")
    check()  # the installed version has it


def test_the_installed_packages_meet_the_declared_requirements():
    wrong = []
    for name, reqs in _declared().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # an extra not installed here (dev's packages are, by make test)
        for req in reqs:
            if not req.specifier.contains(installed, prereleases=True):
                wrong.append(f"{name} {installed} is outside {req}")
    assert not wrong
    for name in ("keras", "tensorflow", "optuna", "psycopg", "scikit-learn", "cleanlab"):
        version(name)  # the suite's own needs are installed (dev extra), not skipped

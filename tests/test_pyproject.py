"""pyproject.toml: metadata that installs without setuptools' deprecation warnings."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    # `license = {text = ...}` made `pip install` print "project.license as a TOML table is
    # deprecated" three times; the SPDX string form needs setuptools 77 (PEP 639).
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    floors = [re.fullmatch(r"setuptools>=(\d+).*", r) for r in project["build-system"]["requires"]]
    assert [int(m.group(1)) for m in floors if m] and all(int(m.group(1)) >= 77 for m in floors if m)

"""Every docstring example in tfft runs (doctest), module by module.

Examples that need what a test machine lacks (a trained run in runs/, downloads, a user's files)
say `# doctest: +SKIP`; all others must print what they show. Each module's examples run in
their own namespace, in a temporary working directory.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import tfft

PACKAGE = Path(tfft.__file__).parent


def _modules_with_examples() -> list[str]:
    names = ["tfft"] + [info.name for info in pkgutil.walk_packages([str(PACKAGE)], prefix="tfft.")]
    found = []
    for name in names:
        path = PACKAGE.parent / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = PACKAGE.parent / name.replace(".", "/") / "__init__.py"
        if ">>> " in path.read_text(encoding="utf-8"):
            found.append(name)
    return sorted(found)


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    globs = {**vars(module), "tfft": tfft}
    tests = [t for t in finder.find(module, name, globs=globs) if t.examples]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} example(s) failed in {name} (see above)"

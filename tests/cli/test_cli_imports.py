"""The CLI is thin: its commands call the public API (`tfft.*`, tfft/__init__.py), not the modules below."""

from __future__ import annotations

import ast
from pathlib import Path

import tfft

CLI = Path(tfft.__file__).parent / "cli"
# What a command may import besides the root API: the CLI's own helpers and the leaves that
# word its errors and lines.
ALLOWED_MODULES = ("tfft.cli", "tfft.errors", "tfft.wording", "tfft.version")
# Not yet behind the public API, each with why (remove an entry when its command moves): none
# today; an entry here is a (cli file, module) pair, e.g. ("commands_x.py", "tfft.training.x").
PENDING: dict[tuple[str, str], str] = {}


def _imports() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((path.name, node.module, [alias.name for alias in node.names]))
    return found


def test_cli_commands_import_only_the_public_api():
    wrong = []
    for name, module, names in _imports():
        if not (module == "tfft" or module.startswith("tfft.")):
            continue
        if module == "tfft" and all(n in tfft.__all__ for n in names):
            continue
        if module.startswith(ALLOWED_MODULES) or (name, module) in PENDING:
            continue
        wrong.append(f"tfft/cli/{name}: from {module} import {', '.join(names)}")
    assert wrong == [], "\n".join(wrong)


def test_every_pending_import_is_still_there():
    present = {(name, module) for name, module, _ in _imports()}
    assert sorted(set(PENDING) - present) == []

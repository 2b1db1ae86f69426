"""No file in tfft/ over 600 lines and no function over 80 lines, unless a comment says why.

A file says why with a `# long file: REASON` comment in its first 40 lines; a function with a
`# long: REASON` comment on the line above its `def` or inside it. `PENDING` lists what is too
long today and is being split elsewhere (issue 28's other parts), each with its reason: remove
an entry when its split lands (the test then holds it to the rule).
"""

from __future__ import annotations

import ast
from pathlib import Path

import tfft

PACKAGE = Path(tfft.__file__).parent
MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 80

PENDING = {
}


def _offenders() -> dict[str, int]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE.parent).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_FILE_LINES and not any("# long file:" in line for line in lines[:40]):
            found[name] = len(lines)
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                said = any("# long:" in line for line in lines[start - 2:node.end_lineno])
                if length > MAX_FUNCTION_LINES and not said:
                    found[f"{name}::{node.name}"] = length
    return found


def test_no_file_or_function_is_too_long_without_a_reason():
    unexplained = {k: v for k, v in _offenders().items() if k not in PENDING}
    assert unexplained == {}, (f"over {MAX_FILE_LINES} lines a file / {MAX_FUNCTION_LINES} a function: "
                               f"{unexplained}; split it, or say why in a `# long:` comment")


def test_every_pending_entry_is_still_too_long():
    stale = sorted(set(PENDING) - set(_offenders()))
    assert stale == [], f"now short enough (or gone): remove {stale} from PENDING"

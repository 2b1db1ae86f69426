"""The layering of docs/ARCHITECTURE.md, as data, checked on the source with `ast`.

A part is a direct child of tfft/ (a subpackage or a module; `api` is tfft/__init__.py). Each
part stands on a floor of `FLOORS` (bottom first) and imports only parts on lower floors, so no
import climbs up and none goes sideways between two parts of a floor (evaluation never imports
training). Nothing inside the package but the CLI imports the root `tfft` (the public API, which
the CLI calls), and no module
imports another module's private name (`from tfft.x import _name`, `import tfft.x._y`).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import tfft

PACKAGE = Path(tfft.__file__).parent

# Bottom first: a part may import the parts of every floor below its own, none of its own floor.
FLOORS: list[tuple[str, ...]] = [
    ("errors", "version", "wording", "layout", "compat", "losses", "digest"),  # leaves
    ("atomic", "registry", "config_messages"),
    ("pretrained",),   # EfficientNet-Lite rows and their weights
    ("backbones",),    # BackboneSpec rows
    ("task",),         # the kind of problem: below config, which checks `task:` against TASKS
    ("config",),
    ("data",),
    ("augment",),
    ("models",),
    ("schedule",),
    ("reporting",),
    ("runs",),         # a run directory: open, layout, thresholds, resumability
    ("training", "evaluation"),  # what trains; the commands that read a finished run
    ("studies", "compression"),  # many runs of tfft.train; pruning a finished run
    ("api",),          # tfft/__init__.py: the public API
    ("cli",),          # thin: parse, call the public API, print
    ("__main__",),
]

ALLOWED: dict[str, set[str]] = {part: {p for below in FLOORS[:floor] for p in below}
                                for floor, parts in enumerate(FLOORS) for part in parts}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if rel.parts == ("__init__.py",):
        return "api"
    return rel.parts[0].removesuffix(".py")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@functools.lru_cache(maxsize=None)
def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import in `path`."""
    found = []
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_is_on_a_floor():
    parts = {_part(path) for path in _sources()}
    assert parts - set(ALLOWED) == set(), "add the new part to FLOORS (and to docs/ARCHITECTURE.md)"


def test_no_import_climbs_a_floor_or_crosses_one():
    wrong = []
    for path in _sources():
        part = _part(path)
        for line, module, names in _imports(path):
            if module != "tfft" and not module.startswith("tfft."):
                continue
            targets = [module.split(".")[1]] if module != "tfft" else [n for n in names]
            for target in targets:
                if target != part and target in ALLOWED and target not in ALLOWED[part]:
                    wrong.append(f"tfft/{path.relative_to(PACKAGE)}:{line} {part} -> {target}")
    assert wrong == [], "\n".join(wrong)


def test_nothing_below_the_cli_imports_the_package_root():
    submodules = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    wrong = []
    for path in _sources():
        if _part(path) in ("cli", "__main__"):  # above the API: they call it
            continue
        for line, module, names in _imports(path):
            if module == "tfft" and (not names or any(n not in submodules for n in names)):
                wrong.append(f"tfft/{path.relative_to(PACKAGE)}:{line} imports the root `tfft`")
    assert wrong == [], "\n".join(wrong)


def test_no_module_imports_another_modules_private_name():
    wrong = []
    for path in _sources():
        for line, module, names in _imports(path):
            if not module.startswith("tfft"):
                continue
            private = [n for n in [*names, *module.split(".")] if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"tfft/{path.relative_to(PACKAGE)}:{line} from {module} import {', '.join(names)}")
    assert wrong == [], "\n".join(wrong)

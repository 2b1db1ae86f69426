"""Reading a config: YAML (a file, text or a dict), `--set KEY=VALUE` overrides, validation,
and the file paths made absolute so a run's config.yaml works from any folder."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional, Union

import pydantic
import yaml

from tfft.config.root import Config, plain
from tfft.config_messages import user_error
from tfft.errors import UserError
from tfft.task import check_task_name

_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[-?\d+\])*)")


def _parse_key(key: str, label: Optional[str] = None) -> list[Union[str, int]]:
    parts: list[Union[str, int]] = []
    for piece in key.split("."):
        match = _KEY_PART.fullmatch(piece.strip())
        if not match:
            raise UserError(
                label or f"--set {key}", "expected a dotted key such as data.batch_size or "
                "schedule.phases[1].lr", "write KEY=VALUE with no spaces around '='"
            )
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(-?\d+)\]", match.group(2)))
    return parts


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one `KEY=VALUE` override in place; VALUE is a YAML scalar or flow value.

    Args:
        raw: the config as plain data (from YAML).
        override: e.g. `data.image_size=[96,96]` or `schedule.phases[1].lr=1e-5`.

    Example:
    >>> raw = {}
    >>> apply_override(raw, "data.batch_size=16")
    >>> raw
    {'data': {'batch_size': 16}}
    """
    if "=" not in override:
        raise UserError(f"--set {override}", "expected KEY=VALUE", "e.g. --set data.batch_size=16")
    key, _, text = override.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"--set {key}", f"cannot read {text!r} as a YAML value ({exc.problem})",
                        "quote strings; lists look like [96,96]") from None
    set_key(raw, key, value, label=f"--set {key}")


def set_key(raw: dict[str, Any], key: str, value: Any, label: Optional[str] = None) -> None:
    """Set the dotted `key` of a raw config to an already parsed `value`, in place (no validation).

    `apply_override` parses its text and calls this; `tfft tune` sets each trial's parameters
    with it. Validate the result with `load_config`.

    Args:
        raw: the config as plain data.
        key: a dotted key with optional list indices, e.g. `schedule.phases[1].lr`.
        value: the value to store.
        label: how error messages name the key (default `--set KEY`).

    Example:
    >>> raw = {}
    >>> set_key(raw, "model.dropout", 0.3)
    >>> raw
    {'model': {'dropout': 0.3}}
    """
    label = label or f"--set {key}"
    parts = _parse_key(key, label)
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise UserError(label, f"index [{part}] is out of range",
                                "the list has %d items" % (len(node) if isinstance(node, list) else 0))
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise UserError(label, f"{part!r} is not inside a mapping")
        if node.get(part) is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or not -len(node) <= last < len(node):
            raise UserError(label, f"index [{last}] is out of range")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UserError(label, f"{last!r} is not inside a mapping")


def _load_raw(source: Union[str, os.PathLike, dict, None]) -> tuple[dict[str, Any], Optional[Path]]:
    if source is None:
        return {}, None
    if isinstance(source, dict):
        return plain(dict(source)), None
    text = str(source)
    path = Path(text).expanduser()
    is_path = isinstance(source, os.PathLike) or ("\n" not in text and (
        path.suffix in (".yaml", ".yml") or path.exists()))
    if is_path:
        if not path.is_file():
            raise UserError(str(path), "config file not found",
                            "give the path of a YAML file, e.g. configs/quickstart.yaml")
        text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path if is_path else 'config'}" + (f":{mark.line + 1}" if mark else "")
        raise UserError(where, f"YAML syntax error: {getattr(exc, 'problem', exc)}",
                        "check indentation and colons on that line") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(str(path) if is_path else "config", f"expected a YAML mapping at the top, got {type(raw).__name__}")
    return raw, (path if is_path else None)


def load_config(
    source: Union[str, os.PathLike, dict, Config, None] = None,
    overrides: Optional[list[str]] = None,
) -> Config:
    """Read, override and validate a config.

    Args:
        source: a YAML file path, YAML text, a dict, a `Config` (copied), or None (all defaults).
        overrides: `KEY=VALUE` strings applied in order, as `tfft train --set` does.

    Returns:
        A validated `Config` with every default filled in.

    Raises:
        UserError: naming the first bad key with what was expected.

    Example:
    >>> cfg = load_config({"data": {"source": "builtin:shapes"}}, overrides=["data.batch_size=16"])
    >>> cfg.data.batch_size
    16
    """
    if isinstance(source, Config):
        raw, path = source.to_dict(), None
    else:
        raw, path = _load_raw(source)
    for override in overrides or []:
        apply_override(raw, override)
    try:
        config = Config.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise user_error(exc, Config) from None
    check_task_name(config.task)  # `auto` or a name in tfft.task.TASKS, with a "did you mean"
    return _resolve_relative_paths(config, path.parent if path is not None else None)


def _absolute(text: str, base: Optional[Path]) -> str:
    """`text` as an absolute path: from the current directory, or from `base` where only that has it."""
    path = Path(text).expanduser()
    if not path.is_absolute() and not path.exists() and base is not None and (base / path).exists():
        path = base / path
    return os.path.abspath(path)


def _resolve_relative_paths(config: Config, base: Optional[Path]) -> Config:
    """Make the config's file paths absolute, so a run's config.yaml works from any folder.

    Paths are relative to the current directory first, then to the config file (`base`):
    `data.source` (a folder or `csv:FILE`), `data.fold_file`, `model.backbone: keras:FILE[#LAYER]`,
    `model.weights` (a file) and `distill.teacher`. Schemes (`builtin:`, `tfds:`, `gs://`) are kept.
    """
    source = config.data.source
    for prefix in ("", "csv:", "tfrecord:"):  # the schemes whose location is a path (config imports no tfft.data)
        if source.startswith(prefix) and ":" not in source[len(prefix):].split("/")[0]:
            rel = source[len(prefix):].strip()
            if rel:
                config.data.source = prefix + _absolute(rel, base)
            break
    if config.data.fold_file:
        config.data.fold_file = _absolute(config.data.fold_file, base)
    if config.model.backbone.startswith("keras:"):
        file, sep, layer = config.model.backbone[len("keras:"):].partition("#")
        if file:
            config.model.backbone = "keras:" + _absolute(file, base) + sep + layer
    if config.model.weights is not None and config.model.weights != "imagenet":
        config.model.weights = _absolute(config.model.weights, base)
    if config.distill.teacher:
        config.distill.teacher = _absolute(config.distill.teacher, base)
    return config


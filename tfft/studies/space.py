"""The search space of `tfft tune`: SPACE.yaml read, checked against the config schema, sampled.

SPACE.yaml maps dotted config keys (the keys `--set` takes) to one distribution each:

```yaml
schedule.lr: {log_uniform: [1.0e-4, 1.0e-2]}
model.dropout: {uniform: [0.0, 0.5]}          # optional: step: 0.05
schedule.head_epochs: {int: [2, 8]}           # optional: step: 2, or log: true
model.backbone: {choice: [efficientnet_lite0, mobilenet_v3_small]}
data.image_size: {choice: [[160, 160], [224, 224]]}   # lists and mappings are choices too
```

`check_space` sets every key of the space to its extreme values (both bounds of a range, every
choice) through `tfft.config.set_key` and validates each result with `tfft.config.load_config`,
so a misspelt key or a value the schema refuses is the usual one-line `UserError` naming the key,
before any trial runs. This module imports neither Optuna nor TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Union

import yaml

from tfft.config import Config, load_config, set_key
from tfft.errors import UserError, did_you_mean

KINDS = ("uniform", "log_uniform", "int", "choice")
_MODIFIERS = {"uniform": ("step",), "log_uniform": (), "int": ("step", "log"), "choice": ()}


def _encode_choice(value: Any) -> Any:
    """Optuna stores None, bool, int, float and str choices; anything else as its YAML flow text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip()


@dataclasses.dataclass(frozen=True)
class Param:
    """One dimension of the space: a dotted config key and its distribution.

    Args:
        key: the dotted config key, e.g. `schedule.lr` or `schedule.phases[1].lr`.
        kind: `uniform`, `log_uniform`, `int` or `choice`.
        low, high: the bounds of a range (inclusive).
        choices: the values of a `choice`, as they go into the config.
        step: the grid of a `uniform` or `int` range (None: continuous, or 1 for `int`).
        log: an `int` range sampled on a log scale.
    """

    key: str
    kind: str
    low: Any = None
    high: Any = None
    choices: tuple = ()
    step: Any = None
    log: bool = False

    @property
    def encoded_choices(self) -> tuple:
        """The choices as Optuna stores them (and as trials.csv shows them)."""
        return tuple(_encode_choice(c) for c in self.choices)

    def suggest(self, trial: Any) -> Any:
        """Draw this dimension's value in an `optuna.Trial` (as Optuna stores it; see `to_config`)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.encoded_choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.kind == "log_uniform",
                                   step=None if self.step is None else float(self.step))

    def to_config(self, stored: Any) -> Any:
        """The config value of a value Optuna stored for this dimension."""
        if self.kind == "choice":
            return self.choices[self.encoded_choices.index(stored)]
        if self.kind == "int":
            return int(stored)
        return float(stored)

    def probes(self) -> list[Any]:
        """The values `check_space` validates: both bounds of a range, every choice."""
        if self.kind == "choice":
            return list(self.choices)
        return [self.low, self.high]

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.key} in {list(self.encoded_choices)}"
        extra = (f" step {self.step}" if self.step is not None else "") + (" log" if self.log else "")
        return f"{self.key} {self.kind} [{self.low:g}, {self.high:g}]{extra}"

    def to_dict(self) -> dict[str, Any]:
        """This dimension as SPACE.yaml writes it."""
        spec: dict[str, Any] = {self.kind: list(self.choices) if self.kind == "choice" else [self.low, self.high]}
        if self.step is not None:
            spec["step"] = self.step
        if self.log:
            spec["log"] = True
        return spec


def _number(key: str, value: Any, kind: str) -> Union[int, float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(key, f"{kind} bounds must be finite numbers, got {value!r}",
                        f"write e.g. {{{kind}: [1.0e-4, 1.0e-2]}}")
    if kind == "int" and not float(value).is_integer():
        raise UserError(key, f"int bounds must be integers, got {value!r}", "write e.g. {int: [2, 8]}")
    return int(value) if kind == "int" else float(value)


def _param(key: str, spec: Any) -> Param:
    example = "e.g. {log_uniform: [1.0e-4, 1.0e-2]}, {uniform: [0.0, 0.5]}, {int: [2, 8]} or {choice: [a, b]}"
    if not isinstance(spec, dict):
        raise UserError(key, f"expected a mapping with one of {', '.join(KINDS)}, got {spec!r}", example)
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1:
        unknown = [k for k in spec if k not in KINDS and not any(k in m for m in _MODIFIERS.values())]
        hint = did_you_mean(str(unknown[0]), KINDS) if unknown else None
        raise UserError(key, f"expected exactly one of {', '.join(KINDS)}, got {sorted(map(str, spec))}",
                        hint or example)
    kind = kinds[0]
    extra = [k for k in spec if k != kind and k not in _MODIFIERS[kind]]
    if extra:
        allowed = ", ".join(_MODIFIERS[kind]) or "nothing"
        raise UserError(key, f"{kind} takes {allowed} besides its values, got {extra[0]!r}", example)
    values = spec[kind]
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise UserError(key, f"choice needs a non-empty list of values, got {values!r}",
                            "write e.g. {choice: [resnet50, vgg16]}")
        encoded = [_encode_choice(v) for v in values]
        if len(set(map(repr, encoded))) != len(encoded):
            raise UserError(key, f"choice lists a value twice: {values!r}", "list each value once")
        return Param(key, kind, choices=tuple(values))
    if not isinstance(values, list) or len(values) != 2:
        raise UserError(key, f"{kind} needs [low, high], got {values!r}", example)
    low, high = (_number(key, v, kind) for v in values)
    if not low < high:
        raise UserError(key, f"{kind} needs low < high, got [{low}, {high}]", "swap or widen the bounds")
    log = bool(spec.get("log", False))
    if (kind == "log_uniform" or log) and low <= 0:
        raise UserError(key, f"a log scale needs bounds > 0, got [{low}, {high}]", "use uniform for ranges from 0")
    step = spec.get("step")
    if step is not None:
        step = _number(key, step, kind)
        if step <= 0:
            raise UserError(key, f"step must be > 0, got {step}")
        if log:
            raise UserError(key, "an int range takes step or log, not both")
    return Param(key, kind, low, high, step=step, log=log)


def load_space(space: Union[str, os.PathLike, dict]) -> list[Param]:
    """Read a search space (a SPACE.yaml path, YAML text or a dict) into `Param`s, in file order.

    Raises:
        UserError: naming the file or the key whose distribution is malformed.

    Example:
    >>> [p.describe() for p in load_space({"schedule.lr": {"log_uniform": [1e-4, 1e-2]}})]
    ['schedule.lr log_uniform [0.0001, 0.01]']
    """
    where = "space"
    if isinstance(space, dict):
        raw: Any = space
    else:
        text = str(space)
        path = Path(text).expanduser()
        if isinstance(space, os.PathLike) or "\n" not in text and (path.suffix in (".yaml", ".yml") or path.exists()):
            where = str(path)
            if not path.is_file():
                raise UserError(where, "space file not found", "give the path of SPACE.yaml (see `tfft tune --help`)")
            text = path.read_text(encoding="utf-8")
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(where, f"YAML syntax error: {getattr(exc, 'problem', exc)}",
                            "check indentation and colons") from None
    if not isinstance(raw, dict) or not raw:
        raise UserError(where, f"expected a mapping of dotted config keys to distributions, got {raw!r}",
                        "e.g. schedule.lr: {log_uniform: [1.0e-4, 1.0e-2]}")
    return [_param(str(key), spec) for key, spec in raw.items()]


def apply_params(config: Config, values: dict[str, Any]) -> Config:
    """The config with each dotted key of `values` set, validated (a `UserError` names a bad key).

    Example:
    >>> apply_params(load_config({}), {"model.dropout": 0.3}).model.dropout
    0.3
    """
    raw = config.to_dict()
    for key, value in values.items():
        set_key(raw, key, value, label=key)
    return load_config(raw)


def check_space(params: list[Param], config: Config) -> None:
    """Validate every dimension's extreme values against the config schema, before any trial.

    Raises:
        UserError: naming the space key (and the value) the config refuses.

    Example:
    >>> check_space(load_space({"model.dropuot": {"uniform": [0, 0.5]}}), load_config({}))
    Traceback (most recent call last):
    tfft.errors.UserError: model.dropuot: unknown key in the search space (hint: did you mean dropout?)
    """
    for param in params:
        for value in param.probes():
            try:
                apply_params(config, {param.key: value})
            except UserError as exc:
                if exc.message == "unknown key":
                    raise UserError(param.key, "unknown key in the search space", exc.hint) from None
                where = "" if exc.where == param.key else f" ({exc.where})"
                raise UserError(param.key, f"the search space's value {value!r} is refused{where}: {exc.message}",
                                exc.hint or "change the range or the choices in the space") from None

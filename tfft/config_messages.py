"""The messages of config validation: pydantic's errors in tfft's words.

pydantic says "Input should be greater than or equal to 1"; a tfft user reads the key, what was
expected and received, and what to do: `schedule.finetune_epochs: expected an integer >= 1, got 0
(hint: use schedule.preset: feature_extraction to train the head only)`.

Example:
>>> import pydantic
>>> class Data(pydantic.BaseModel):
...     batch_size: int = pydantic.Field(32, gt=0)
>>> try:
...     Data.model_validate({"batch_size": 0})
... except pydantic.ValidationError as exc:
...     print(user_error(exc, Data))
batch_size: expected an integer > 0, got 0 (hint: a positive integer such as 32)
"""

from __future__ import annotations

import re
import typing
from typing import Any

import pydantic
from pydantic import BaseModel

from tfft.errors import UserError, did_you_mean


def _loc_to_key(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif str(part).startswith(("function-", "literal[", "tuple[", "list[", "union[")):
            continue
        else:
            key += ("." if key else "") + str(part)
    return key or "config"


def _fields_at(root: Any, loc: tuple[Any, ...]) -> list[str]:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            break
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) + (annotation,):
            inner = getattr(candidate, "__args__", ())
            for sub in (candidate,) + tuple(inner):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    model = sub
                    break
    return list(getattr(model, "model_fields", {}))


# Hints for the common mistakes, by the key's last part (or the whole key): what to do instead.
_HINTS = {
    "schedule.finetune_epochs": "use schedule.preset: feature_extraction to train the head only",
    "schedule.head_epochs": "use schedule.preset: full to train every layer from the first epoch",
    "epochs": "at least 1; to drop a phase, leave it out of schedule.phases",
    "lr": "a rate such as 1e-3 for a new head or 1e-4 for fine-tuning; `tfft lr-find CONFIG` suggests one",
    "batch_size": "a positive integer such as 32",
    "image_size": "two integers [height, width], e.g. [224, 224]",
    "val_split": "a fraction of the images, e.g. 0.2; 0 holds out none (no validation)",
    "test_split": "a fraction of the images, e.g. 0.1; 0 holds out none",
}
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _field_at(root: Any, loc: tuple[Any, ...]) -> Any:
    """The pydantic FieldInfo at a validation error's location (None when it is not a field)."""
    model: Any = root
    field = None
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = next((sub for sub in (field.annotation, *getattr(field.annotation, "__args__", ()))
                      for sub in (sub, *getattr(sub, "__args__", ()))
                      if isinstance(sub, type) and issubclass(sub, BaseModel)), None)
    return field


def _expected(error: dict[str, Any], field: Any) -> str:
    """What a value at the error's location must be, in words."""
    kind, ctx = error["type"], error.get("ctx") or {}
    number = "an integer" if field is not None and int in (field.annotation, *getattr(field.annotation, "__args__", ())) \
        else "a number"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bounds = [f"{sign} {getattr(m, name):g}" for m in (field.metadata if field is not None else ())
                  for name, sign in _BOUNDS if hasattr(m, name)]
        return f"{number} {' and '.join(bounds) or ' '.join(f'{sign} {ctx[n]:g}' for n, sign in _BOUNDS if n in ctx)}"
    if kind == "literal_error":
        return "one of " + ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
    if kind.startswith("int_"):
        return "an integer"
    if kind.startswith("float_"):
        return "a number"
    if kind.startswith("bool_"):
        return "true or false"
    if kind in ("tuple_type", "too_long", "too_short", "list_type") or (kind == "missing" and isinstance(error["loc"][-1], int)):
        items = typing.get_args(field.annotation) if field is not None and typing.get_origin(field.annotation) is tuple else ()
        return f"a list of {len(items)} items" if items and Ellipsis not in items else "a list"
    if kind == "missing":
        return "a value (this key is required)"
    return error["msg"].removeprefix("Value error, ")


def user_error(exc: pydantic.ValidationError, root: Any) -> UserError:
    """The first of pydantic's errors as a `UserError`: the key, what was received and expected, a hint.

    Args:
        exc: what `root.model_validate` raised.
        root: the validated model class (`tfft.config.Config`).

    Returns:
        A `UserError` naming the key (`schedule.phases[1].lr`), e.g. `expected a number > 0, got 0`.
    """
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    key = _loc_to_key(loc)
    received = error.get("input")
    if error["type"] == "extra_forbidden":
        hint = did_you_mean(str(loc[-1]), _fields_at(root, loc[:-1]))
        return UserError(key, "unknown key", hint or f"valid keys here: {', '.join(_fields_at(root, loc[:-1]))}")
    if error["type"] in ("missing", "too_short") and loc and isinstance(loc[-1], int):
        loc = loc[:-1]  # image_size: [224] is short of its second item; name the key, not the index
        key = _loc_to_key(loc)
    if error["type"] in ("value_error", "assertion_error"):
        message = error["msg"].removeprefix("Value error, ")
    else:
        shown = received if not isinstance(received, dict) else None
        message = f"expected {_expected(error, _field_at(root, loc))}" + (f", got {shown!r}" if shown is not None else "")
    hint = _HINTS.get(key) or _HINTS.get(key.rsplit(".", 1)[-1].split("[")[0])
    if error["type"] == "literal_error":
        if isinstance(received, bool):
            hint = "YAML reads on/off/yes/no as true/false: quote the word, e.g. 'off'"
        else:
            choices = re.findall(r"'([^']*)'", (error.get("ctx") or {}).get("expected", ""))
            hint = did_you_mean(str(received), choices) or hint
    more = len(exc.errors()) - 1
    if more:
        hint = (hint + "; " if hint else "") + f"{more} more problem(s) after this one"
    return UserError(key, message, hint)

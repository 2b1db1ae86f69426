"""Whether a run may be resumed with a config: only the settings that change no result may differ.

Example:
>>> from tfft.config import load_config
>>> saved = load_config({"data": {"source": "builtin:shapes"}})
>>> check_resumable(saved, saved.model_copy(update={"seed": 7}))
Traceback (most recent call last):
...
tfft.errors.UserError: seed: cannot change when resuming a run (hint: resume with the run's own config.yaml, or start a new run)
"""

from __future__ import annotations

from typing import Any

from tfft.errors import UserError

# Keys a resumed run may change; everything else must match the interrupted run's config.
RESUMABLE_CHANGES = ("training.verbose", "training.checkpoint_steps", "evaluate.", "performance.jit_compile",
                     "performance.steps_per_execution",
                     "performance.decoded_cache")  # the decoded cache never changes a batch (issue 34)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level of dotted keys.

    Example:
    >>> flatten({"a": {"b": 1}, "c": 2})
    {'a.b': 1, 'c': 2}
    """
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resumable(saved: Any, new: Any) -> None:
    """Refuse to resume a run whose config `saved` (a `tfft.config.Config`) with `new` when they
    differ in anything but `RESUMABLE_CHANGES`.

    Args:
        saved: the interrupted run's config (its config.yaml).
        new: the config the run is resumed with.

    Raises:
        UserError: naming the first five keys that differ.
    """
    old, cur = flatten(saved.to_dict()), flatten(new.to_dict())
    changed = [k for k in sorted(set(old) | set(cur)) if old.get(k) != cur.get(k)
               and not k.startswith(RESUMABLE_CHANGES)]
    if changed:
        raise UserError(", ".join(changed[:5]), "cannot change when resuming a run",
                        "resume with the run's own config.yaml, or start a new run")

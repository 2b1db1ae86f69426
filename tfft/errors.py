"""Errors that tfft raises, and how the CLI maps them to exit codes.

A `UserError` is the user's mistake (a bad key, value, path or dataset): the CLI prints its one
line and exits 2 without a traceback. Anything else is a fault inside tfft (exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake the user can fix: names what was wrong, what was expected, and a hint.

    Args:
        where: the config key (`data.batch_size`) or path the message is about.
        message: what was received and what was expected.
        hint: how to fix it (optional).

    Example:
    >>> str(UserError("data.batch_size", "expected an integer > 0, got -3", "try 32"))
    'data.batch_size: expected an integer > 0, got -3 (hint: try 32)'
    """

    exit_code = 2

    def __init__(self, where: str, message: str, hint: str | None = None):
        self.where = where
        self.message = message
        self.hint = hint
        text = f"{where}: {message}" if where else message
        if hint:
            text += f" (hint: {hint})"
        super().__init__(text)


class DataError(UserError):
    """The data is unusable as given (empty class, no images, mismatched classes)."""


class TrainingDiverged(UserError):
    """The loss became NaN/Inf: a user's setting (usually the rate) made training diverge.

    `tfft train` exits 2 on it like any `UserError`; `tfft tune` records the trial as failed and
    goes on with the search.
    """


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C after the resumable state was saved (exit 130)."""

    exit_code = 130

    def __init__(self, run_dir: str, resume_command: str):
        self.run_dir = run_dir
        self.resume_command = resume_command
        super().__init__(f"interrupted; state saved in {run_dir}. Resume with: {resume_command}")


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """Return a 'did you mean X?' hint for a misspelled `name`, or None.

    Example:
    >>> did_you_mean("resnet5", ["resnet50", "vgg16"])
    'did you mean resnet50?'
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None

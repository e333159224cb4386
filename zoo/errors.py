"""Errors that mean the user's input is wrong, not the zoo: run.py and the command-line tools print their message as
one line, without a traceback. Each message names the value, file or line at fault."""
from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input: a config value, a file, a checkpoint, or a run that cannot go on as asked."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work (a model size, a dropout rate, a decoding setting)."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or made by another model or data."""


class TrainingStopped(UserError):
    """Training stopped before its last step (a NaN loss, Ctrl-C); the message says where the state was kept."""


class EvaluationFailed(UserError):
    """Scoring the test splits failed after training; the message says where the trained model is kept."""


def exit_status(command: Callable[[], object]) -> int:
    """Runs a command-line tool's `command`: 0, or 1 after a one-line error on stderr for anything the user can fix."""
    try:
        command()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

"""Errors that mean the user's input is wrong, not the zoo: run.py and the translate CLI print their message as one
line, without a traceback. Each message names the value, file or line at fault."""


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

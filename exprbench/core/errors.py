"""Error types of exprbench.

Every error a user can cause (bad data, bad config, bad CLI input, a corrupt checkpoint) derives
from :class:`UserError`; the CLI prints its one-line message and exits with code 2. Any other
exception is a bug or an environment failure and exits with code 1.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: the message is one line that names the file, line or value."""


class DataError(UserError):
    """A dataset file is missing, of an unknown format, or malformed (the message names where)."""


class InputError(UserError):
    """Images or labels given on the command line are not what the command takes (see
    :mod:`exprbench.core.validate`): wrong file, size, dtype, an unknown class name or an index out of range."""


class ConfigError(UserError):
    """An unknown config name or key, or a value of the wrong type."""


class CheckpointError(UserError):
    """A checkpoint is truncated, corrupt or does not match the run's config."""


class RegistryError(UserError):
    """An unknown plugin name, or a name registered twice."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run directory is marked diverged (CLI exit code 1)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a command, which saved what it could; the message says what (CLI: that one line on
    stderr, exit code 130). A KeyboardInterrupt, so whatever stops on Ctrl-C (the benchmark runner) still stops."""


class TrainingInterrupted(Interrupted):
    """Ctrl-C stopped a training run; the message says at which step and where its checkpoint is."""


class EvaluationInterrupted(Interrupted):
    """Ctrl-C stopped an evaluation. Raised by ``metrics.references.run_all`` with the protocols that had
    finished (``results``, ``refs``: ``{name: entry}``; ``at``: the protocol it stopped in); the evaluation
    writes those to eval.json and raises it again with the one-line message saying so."""

    def __init__(self, message: str = "", results: dict | None = None, refs: dict | None = None, at: str = "") -> None:
        super().__init__(message)
        self.results, self.refs, self.at = dict(results or {}), dict(refs or {}), at

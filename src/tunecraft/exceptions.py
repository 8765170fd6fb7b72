"""The errors tunecraft raises.

Every error derives from :class:`TunecraftError`, and each leaf also derives from the builtin
exception that callers already catch, so ``except ValueError`` keeps working for bad input.
"""

from __future__ import annotations

__all__ = [
    "DuplicatedStudyError",
    "InvalidParameterError",
    "MissingDependencyError",
    "SamplerExhaustedError",
    "SchemaVersionError",
    "StorageError",
    "StudyNotFoundError",
    "TrialPruned",
    "TrialStateError",
    "TunecraftError",
    "WorkerError",
]


class TunecraftError(Exception):
    """Base class of every error raised by tunecraft."""


class InvalidParameterError(TunecraftError, ValueError):
    """An argument, a search space or a configuration file is invalid."""


class MissingDependencyError(TunecraftError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run."""


class StorageError(TunecraftError, RuntimeError):
    """A storage cannot be opened or refused an operation."""


class SchemaVersionError(StorageError):
    """The database was written by a tunecraft with another schema version."""


class StudyNotFoundError(TunecraftError, LookupError):
    """No study of the given name exists in the storage."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


class DuplicatedStudyError(TunecraftError, ValueError):
    """A study of the given name already exists and ``load_if_exists`` was false."""


class TrialStateError(TunecraftError, RuntimeError):
    """An operation does not fit the trial's state (for example telling a finished trial)."""


class SamplerExhaustedError(TunecraftError, RuntimeError):
    """The sampler has nothing left to propose (for example a grid whose points are all used).

    :meth:`tunecraft.Study.optimize` treats it as the end of the study.
    """


class TrialPruned(TunecraftError):  # noqa: N818 - the name users know from Optuna
    """Raise inside an objective to end the trial as pruned."""


class WorkerError(TunecraftError, RuntimeError):
    """A worker process of ``Study.optimize(n_jobs=...)`` stopped on an uncaught exception."""

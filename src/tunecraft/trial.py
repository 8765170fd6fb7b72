"""Trials: the immutable record a storage keeps, and the live handle an objective receives."""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tunecraft.exceptions import InvalidParameterError, TrialStateError

if TYPE_CHECKING:
    from tunecraft.study import Study

__all__ = ["CHECKPOINT_ATTR", "FrozenTrial", "Trial", "TrialState"]


class TrialState(str, enum.Enum):
    """The life of a trial.

    ``WAITING`` (enqueued, not started) -> ``RUNNING`` -> one of ``COMPLETE``, ``PRUNED``,
    ``FAILED`` (finished, immutable) or ``PAUSED`` (a scheduler may resume it later).
    """

    WAITING = "waiting"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    PAUSED = "paused"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        """Complete, pruned or failed: the record can no longer change."""
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: TrialState | str, owner: str = "state") -> TrialState:
        """Accept a state or its name, with a clear error otherwise."""
        if isinstance(value, TrialState):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            allowed = ", ".join(repr(s.value) for s in cls)
            raise InvalidParameterError(
                f"The 'state' parameter of {owner} must be one of {allowed}, got {value!r}."
            ) from None


@dataclass(frozen=True)
class FrozenTrial:
    """What a storage records of one trial. Finished records never change.

    Attributes:
        number: Position of the trial in its study, from 0, unique within the study.
        state: The :class:`TrialState`.
        config: The sampled hyperparameters (inactive conditional parameters absent).
        value: The objective's value, for a complete trial (or the last reported value of a
            pruned one); ``None`` otherwise.
        intermediate: ``{step: value}`` reported during the trial.
        user_attrs: Values the objective attached with :meth:`Trial.set_user_attr`.
        datetime_start: When the trial started running (``None`` while waiting).
        datetime_complete: When it finished (``None`` while not finished).
        error: Why it failed, for a failed trial.
        trial_id: The storage's own key of the trial (unique across studies).
        worker: ``host:pid`` of the process that ran it.
    """

    number: int
    state: TrialState
    config: dict[str, Any]
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None
    error: str | None = None
    trial_id: int = -1
    worker: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to completion, when both are known."""
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return (self.datetime_complete - self.datetime_start).total_seconds()

    @property
    def last_step(self) -> int | None:
        """The highest step reported, or ``None``."""
        return max(self.intermediate) if self.intermediate else None


def check_value(value: Any, what: str) -> float:
    """Return ``value`` as a finite float or raise a ``ValueError`` saying why it is not."""
    if value is None:
        raise InvalidParameterError(f"{what} returned None; return a finite number.")
    if isinstance(value, (str, bytes, bool)):  # float("0.5") and float(True) would pass
        raise InvalidParameterError(
            f"{what} returned {type(value).__name__} {value!r}; return a finite number."
        )
    if not isinstance(value, numbers.Real):
        try:
            value = float(value)  # numpy scalars, 0-d arrays, tensors with __float__
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"{what} returned {type(value).__name__} {value!r}; return a finite number."
            ) from None
    value = float(value)
    if not math.isfinite(value):
        raise InvalidParameterError(f"{what} returned {value}; return a finite number.")
    return value


class Trial:
    """The handle an objective receives: the sampled ``config`` and ways to report progress.

    Example:
        >>> def objective(trial):
        ...     x = trial.config["x"]
        ...     for step in range(3):
        ...         trial.report((x - 1) ** 2 + 1 / (step + 1), step=step)
        ...         if trial.should_stop():
        ...             break
        ...     return (x - 1) ** 2

        A resumable objective, for schedulers that pause (its state: any picklable object):

        >>> def resumable(trial):
        ...     state = trial.load_checkpoint() if trial.resumed else None
        ...     w = state["w"] if state else 0.0
        ...     start = trial.last_step + 1 if trial.resumed else 1
        ...     for epoch in range(start, 10):
        ...         w += trial.config["x"]  # one epoch of training
        ...         trial.save_checkpoint({"w": w})
        ...         trial.report(1 / (1 + w), step=epoch)
        ...         if trial.should_stop():
        ...             break
        ...     return 1 / (1 + w)
    """

    def __init__(
        self,
        study: Study,
        record: FrozenTrial,
        *,
        resumed: bool = False,
        budget: int | None = None,
    ) -> None:
        self._study = study
        self._record = record
        self._decision = "continue"
        self._resumed = resumed
        self._budget = budget

    @property
    def number(self) -> int:
        """The trial's number in its study."""
        return self._record.number

    @property
    def trial_id(self) -> int:
        """The storage's key of the trial."""
        return self._record.trial_id

    @property
    def config(self) -> dict[str, Any]:
        """The sampled hyperparameters."""
        return dict(self._record.config)

    @property
    def params(self) -> dict[str, Any]:
        """Alias of :attr:`config`, for Optuna users."""
        return self.config

    @property
    def study(self) -> Study:
        """The study this trial belongs to."""
        return self._study

    @property
    def intermediate(self) -> dict[int, float]:
        """Values reported so far, by step."""
        return dict(self._record.intermediate)

    @property
    def last_step(self) -> int | None:
        """The highest step reported so far (``None`` before the first report).

        A resumed trial goes on from ``last_step + 1``.
        """
        return self._record.last_step

    @property
    def resumed(self) -> bool:
        """Whether the study resumed this trial after a pause (load its checkpoint then)."""
        return self._resumed

    @property
    def budget(self) -> int | None:
        """The step the scheduler means to let this trial reach before it decides again.

        Set when the study resumes a paused trial (``None``: no limit known). An objective may
        train up to it; it need not, since the scheduler pauses or stops it at its next rung.
        """
        return self._budget

    def save_checkpoint(self, state: Any) -> str:
        """Keep ``state`` (any picklable object: a dict of weights, tensors, optimizer state).

        The file goes under the study's artifact directory, written atomically (a crash
        leaves the previous checkpoint intact), replacing this trial's previous one; its path
        is recorded in the storage as the user attribute ``"tc.checkpoint"``. Returns the path.

        Raises:
            TrialStateError: The trial is not running.
        """
        self._check_running("Trial.save_checkpoint")
        return self._study._save_checkpoint(self, state)

    def load_checkpoint(self, default: Any = None) -> Any:
        """The state last saved with :meth:`save_checkpoint` (or copied here by PBT).

        Returns ``default`` when the trial has no checkpoint.
        """
        return self._study._load_checkpoint(self, default)

    def report(self, value: float, step: int) -> None:
        """Record an intermediate value (for example the validation loss after an epoch).

        The study's scheduler, if any, sees it and decides whether the trial should go on; read
        the answer with :meth:`should_stop`.

        Raises:
            ValueError: ``step`` is not an int >= 0, or ``value`` is not a finite number.
            TrialStateError: The trial is no longer running.
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise InvalidParameterError(
                f"The 'step' parameter of Trial.report must be an int >= 0, got {step!r}."
            )
        value = check_value(value, "Trial.report(value=...)")
        self._decision = self._study._report(self, value, int(step))

    def should_stop(self) -> bool:
        """Whether the scheduler decided this trial should stop (or pause) now."""
        return self._decision != "continue"

    @property
    def decision(self) -> str:
        """The scheduler's last answer: ``"continue"``, ``"stop"`` or ``"pause"``."""
        return self._decision

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a JSON-serializable value to the trial (kept in storage)."""
        if not isinstance(key, str) or not key:
            raise InvalidParameterError(
                f"The 'key' parameter of Trial.set_user_attr must be a non-empty str, got {key!r}."
            )
        self._study._set_user_attr(self, key, value)

    @property
    def user_attrs(self) -> Mapping[str, Any]:
        """Values attached with :meth:`set_user_attr`."""
        return dict(self._record.user_attrs)

    def _update(self, record: FrozenTrial) -> None:
        self._record = record

    def _check_running(self, what: str) -> None:
        if self._record.state is not TrialState.RUNNING:
            raise TrialStateError(
                f"{what}: trial {self.number} is {self._record.state.value}, not running."
            )

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, config={self._record.config!r})"


#: The user attribute that records a trial's checkpoint file.
CHECKPOINT_ATTR = "tc.checkpoint"

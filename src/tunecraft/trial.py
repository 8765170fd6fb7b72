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

__all__ = [
    "BUDGET_ATTR",
    "CHECKPOINT_ATTR",
    "CONFIG_ATTR",
    "PHASE_ATTR",
    "SEED_ATTR",
    "SNAPSHOTS_ATTR",
    "SPLIT_ATTR",
    "TRAIN_ATTR",
    "FrozenTrial",
    "Trial",
    "TrialState",
]

#: User attributes through which a study (the budgeted pipeline, for one) tells an objective
#: how to run: how much to train, which seed, which phase asks, which data split to score.
BUDGET_ATTR = "tc.budget"
SEED_ATTR = "tc.seed"
PHASE_ATTR = "tc.phase"
SPLIT_ATTR = "tc.split"
#: The config the objective received when it differs from the sampled one (fixed parameters
#: added back, a learning rate scaled to the batch size).
CONFIG_ATTR = "tc.config"
#: The training metric reported beside each intermediate value: ``[[step, value], ...]``.
TRAIN_ATTR = "tc.train"


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

    @property
    def budget(self) -> int | float | None:
        """How much the trial was asked to train (``"tc.budget"``), or ``None``."""
        value = self.user_attrs.get(BUDGET_ATTR)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def seed(self) -> int | None:
        """The seed the trial was asked to use (``"tc.seed"``), or ``None``."""
        value = self.user_attrs.get(SEED_ATTR)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def phase(self) -> str | None:
        """The pipeline phase that ran the trial (``"tc.phase"``), or ``None``."""
        value = self.user_attrs.get(PHASE_ATTR)
        return value if isinstance(value, str) else None

    @property
    def split(self) -> str:
        """The data split the trial's value was scored on: ``"validation"`` unless set."""
        value = self.user_attrs.get(SPLIT_ATTR)
        return value if isinstance(value, str) else "validation"

    @property
    def run_config(self) -> dict[str, Any]:
        """The config the objective received (``config`` plus fixed or derived values)."""
        value = self.user_attrs.get(CONFIG_ATTR)
        return dict(value) if isinstance(value, Mapping) else dict(self.config)

    @property
    def train_intermediate(self) -> dict[int, float]:
        """``{step: value}`` of the training metric reported with ``report(..., train=)``."""
        return _train_curve(self.user_attrs)


def _train_curve(user_attrs: Mapping[str, Any]) -> dict[int, float]:
    pairs = user_attrs.get(TRAIN_ATTR) or []
    return {int(step): float(value) for step, value in pairs}


def check_value(value: Any, what: str, *, verb: str = "returned") -> float:
    """Return ``value`` as a finite float or raise a ``ValueError`` saying why it is not.

    The message reads ``f"{what} {verb} <value>"``: an objective *returned* it, a report *got*
    it.
    """
    fix = "return" if verb == "returned" else "pass"
    if value is None:
        raise InvalidParameterError(f"{what} {verb} None; {fix} a finite number.")
    if isinstance(value, (str, bytes, bool)):  # float("0.5") and float(True) would pass
        raise InvalidParameterError(
            f"{what} {verb} {type(value).__name__} {value!r}; {fix} a finite number."
        )
    if not isinstance(value, numbers.Real):
        try:
            value = float(value)  # numpy scalars, 0-d arrays, tensors with __float__
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"{what} {verb} {type(value).__name__} {value!r}; {fix} a finite number."
            ) from None
    value = float(value)
    if not math.isfinite(value):
        raise InvalidParameterError(f"{what} {verb} {value}; {fix} a finite number.")
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
        # A resumed objective may retrain up to where it was paused and report those steps
        # again; the scheduler decided them already and does not judge them twice.
        self._replay_until = record.last_step if resumed else None
        # Which checkpoint belongs to which step: set by whichever of save_checkpoint and
        # report this run calls first (see Study._report).
        self._save_first: bool | None = None
        self._snapshot_pending: int | None = None
        # The training curve of report(train=...), written to storage in batches.
        self._train: dict[int, float] | None = None
        self._train_saved = 0  # its length at the last write
        self._train_unsaved = 0  # reports since the last write

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
        """The hyperparameters to run with.

        The sampled config, completed by the study when it fixes or derives some values (the
        budgeted pipeline adds the parameters it fixed and scales the learning rate to the
        batch size); :attr:`sampled_config` is what the sampler proposed.
        """
        return self._record.run_config

    @property
    def sampled_config(self) -> dict[str, Any]:
        """The config as the sampler proposed it, in the study's space."""
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
    def budget(self) -> int | float | None:
        """How far to train, in the study's fidelity unit (epochs, steps, a data fraction).

        When the study resumes a paused trial, the step the scheduler means to let it reach
        before it decides again. Otherwise the budget the study assigned to the trial (the
        budgeted pipeline gives each phase its length), or ``None`` when no limit is known. An
        objective may train up to it; under a scheduler it need not, since the scheduler
        pauses or stops it at its next rung.
        """
        if self._budget is not None:
            return self._budget
        return self._record.budget

    @property
    def seed(self) -> int | None:
        """The seed to train with (``None``: the study sets none, choose your own).

        The budgeted pipeline gives search trials one seed and trains each finalist of the
        final validation with several.
        """
        return self._record.seed

    @property
    def phase(self) -> str | None:
        """Which pipeline phase asks: ``"transfer"``, ``"explore"``, ``"refine"`` or
        ``"validate"`` (``None`` outside the pipeline)."""
        return self._record.phase

    @property
    def split(self) -> str:
        """The data split the returned value must be scored on.

        ``"validation"`` normally; ``"holdout"`` in the pipeline's final validation, where the
        objective trains as usual and returns its metric on the holdout data, which no search
        decision ever sees.
        """
        return self._record.split

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

    def report(self, value: float, step: int, *, train: float | None = None) -> None:
        """Record an intermediate value (for example the validation loss after an epoch).

        The study's scheduler, if any, sees it and decides whether the trial should go on; read
        the answer with :meth:`should_stop`.

        Args:
            value: The metric the study optimizes, at this step.
            step: How far training got (an int >= 0). The pipeline counts cost in steps:
                epochs done (1, 2, ...) or the epoch index (0, 1, ...), a run that reports
                step 0 being charged ``last_step + 1``.
            train: The same metric on the training data, optional; kept as a learning curve
                (``"tc.train"``) so the final validation can tell overfitting (validation
                worsens while training improves) from undertraining. The curve is written
                to storage as it grows by a quarter and whole when the trial is told.

        Raises:
            ValueError: ``step`` is not an int >= 0, or a value is not a finite number.
            TrialStateError: The trial is no longer running.
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise InvalidParameterError(
                f"The 'step' parameter of Trial.report must be an int >= 0, got {step!r}."
            )
        value = check_value(value, "Trial.report(value=...)", verb="got")
        if train is not None:
            train = check_value(train, "Trial.report(train=...)", verb="got")
        self._decision = self._study._report(self, value, int(step))
        if train is not None:
            if self._train is None:
                self._train = dict(self._record.train_intermediate)
                self._train_saved = len(self._train)
            self._train[int(step)] = train
            self._train_unsaved += 1
            # The curve is one attribute: writing it whole at every report costs time
            # quadratic in its length (1500 steps on SQLite: 11 s, against 0.7 s without the
            # curve). It is written each time it has grown by a quarter (at every report
            # while it is short) and when the trial ends (Study.tell): a crash loses at most
            # its newest fifth.
            if self._train_unsaved >= max(1, self._train_saved // 4):
                self._flush_train()

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

    def _flush_train(self) -> None:
        """Write the training curve's reports not yet in storage."""
        if self._train is not None and self._train_unsaved:
            pairs = sorted([k, v] for k, v in self._train.items())
            self._study._set_user_attr(self, TRAIN_ATTR, pairs)
            self._train_saved, self._train_unsaved = len(self._train), 0

    def _check_running(self, what: str) -> None:
        if self._record.state is not TrialState.RUNNING:
            raise TrialStateError(
                f"{what}: trial {self.number} is {self._record.state.value}, not running."
            )

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, config={self._record.config!r})"


#: The user attribute that records a trial's checkpoint file.
CHECKPOINT_ATTR = "tc.checkpoint"
#: The user attribute that lists the steps at which a copy of the checkpoint was kept (PBT).
SNAPSHOTS_ATTR = "tc.checkpoint_steps"

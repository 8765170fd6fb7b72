"""The scheduler interface: decide, on each reported value, whether a trial goes on."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tunecraft.samplers._base import History
from tunecraft.space import Space
from tunecraft.trial import FrozenTrial

__all__ = ["Decision", "Resume", "Scheduler"]


class Decision(str, enum.Enum):
    """A scheduler's answer to a report."""

    CONTINUE = "continue"
    STOP = "stop"
    PAUSE = "pause"


@dataclass(frozen=True)
class Resume:
    """A scheduler's order to resume a paused trial instead of starting a new one.

    Attributes:
        number: The paused trial to resume.
        budget: The step the scheduler means to let it reach before deciding again (``None``:
            to the end); the objective reads it as ``trial.budget``.
        config: A new configuration for the trial (population-based training), or ``None`` to
            keep its own.
        checkpoint_from: Copy this trial's checkpoint to the resumed trial first (PBT's
            exploit step), or ``None`` to resume from the trial's own checkpoint.
        checkpoint_step: Which of ``checkpoint_from``'s checkpoints: the one the study kept at
            this step (see :meth:`Scheduler.snapshot_at`), or ``None`` for its latest.

    Example:
        >>> Resume(number=3, budget=9)
        Resume(number=3, budget=9, config=None, checkpoint_from=None, checkpoint_step=None)
    """

    number: int
    budget: int | None = None
    config: Mapping[str, Any] | None = field(default=None)
    checkpoint_from: int | None = None
    checkpoint_step: int | None = None


class Scheduler(ABC):
    """Sees every ``trial.report(value, step)`` and answers continue, stop or pause.

    ``trial.should_stop()`` carries the answer to the objective. A stopped trial ends as pruned;
    a paused one may be resumed later by the study with more budget or a new configuration.
    Decisions read other trials from the :class:`History` (that is, from the storage), so they
    hold with several workers. Schedulers never sample.

    A scheduler holds no state about trials: everything it decides is a function of its
    options and the history, so a study reopened after a crash, or a second process sharing
    the storage, decides the same. Subclasses implement :meth:`on_report`; schedulers that
    pause implement :meth:`on_ask` (which paused trial to resume) and may implement
    :meth:`to_stop` (paused trials that will never be resumed).

    Example:
        >>> class StopAtTen(Scheduler):
        ...     def on_report(self, trial, history):
        ...         return Decision.STOP if trial.last_step >= 10 else Decision.CONTINUE
    """

    @abstractmethod
    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        """Decide for ``trial``, whose ``intermediate`` holds the value just reported."""

    def snapshot_at(self, trial: FrozenTrial) -> int | None:
        """The step under which the study keeps a copy of the checkpoint of this report.

        Called with ``trial`` as :meth:`on_report` sees it. A scheduler that will later copy
        one trial's state at a given step into another (PBT) returns that step; the default,
        ``None``, keeps only each trial's latest checkpoint.
        """
        return None

    def on_ask(self, space: Space, history: History) -> Resume | None:
        """Before a new trial starts: return a paused trial to resume instead, or ``None``.

        Several workers may pick the same trial; the storage lets only one resume it and the
        study asks again.
        """
        return None

    def to_stop(self, history: History) -> list[int]:
        """Numbers of paused trials that will never be resumed: the study prunes them."""
        return []

    def sampler_trials(self, space: Space, history: History) -> list[FrozenTrial] | None:
        """The trials the study's sampler should learn from, or ``None`` for the stored ones.

        Model-based multi-fidelity schedulers (BOHB-style) present the trials at a common
        budget, so a model-based sampler learns from intermediate results. The storage is
        never changed.
        """
        return None

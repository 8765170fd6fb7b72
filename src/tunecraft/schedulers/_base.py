"""The scheduler interface: decide, on each reported value, whether a trial goes on."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod

from tunecraft.samplers._base import History
from tunecraft.trial import FrozenTrial

__all__ = ["Decision", "Scheduler"]


class Decision(str, enum.Enum):
    """A scheduler's answer to a report."""

    CONTINUE = "continue"
    STOP = "stop"
    PAUSE = "pause"


class Scheduler(ABC):
    """Sees every ``trial.report(value, step)`` and answers continue, stop or pause.

    ``trial.should_stop()`` carries the answer to the objective. A stopped trial ends as pruned;
    a paused one may be resumed later by the study with more budget or a new configuration.
    Decisions read other trials from the :class:`History` (that is, from the storage), so they
    hold with several workers. Schedulers never sample.
    """

    @abstractmethod
    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        """Decide for ``trial``, whose ``intermediate`` holds the value just reported."""

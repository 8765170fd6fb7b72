"""Median and percentile stopping rules."""

from __future__ import annotations

import numpy as np

from tunecraft._validation import check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._base import History
from tunecraft.schedulers._base import Decision, Scheduler
from tunecraft.trial import FrozenTrial

__all__ = ["MedianScheduler", "PercentileScheduler"]


class PercentileScheduler(Scheduler):
    """Stop a trial whose best value so far is worse than a percentile of the complete trials.

    At a reported step ``s`` (after ``n_warmup_steps``, every ``interval_steps``), the trial's
    best value up to ``s`` is compared with the best values up to ``s`` of the complete trials
    that reported at ``s`` or later. The trial stops when it is strictly worse than their
    ``percentile`` (for maximization, their ``100 - percentile``): ``percentile=25`` keeps the
    trials in the best quarter. Nothing stops before ``n_startup_trials`` trials are complete,
    nor while fewer than ``n_min_trials`` of them reached ``s``.

    Args:
        percentile: In [0, 100]; lower is stricter.
        n_startup_trials: Complete trials needed before any stop (an int >= 0).
        n_warmup_steps: Reports before this step never stop (an int >= 0).
        interval_steps: Judge every this many steps from ``n_warmup_steps`` (an int >= 1).
        n_min_trials: Complete trials that must have reached the step (an int >= 1).
        seed: Accepted for a uniform interface; the rule is deterministic.

    Example:
        >>> rule = PercentileScheduler(25.0, n_startup_trials=5, n_warmup_steps=2)
        >>> rule.percentile
        25.0
    """

    _owner = "PercentileScheduler"

    def __init__(
        self,
        percentile: float = 25.0,
        *,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
        seed: int | None = None,
    ) -> None:
        owner = self._owner
        check_float(percentile, "percentile", owner, low=0.0)
        if percentile > 100:
            raise InvalidParameterError(
                f"The 'percentile' parameter of {owner} must be a number in [0, 100], "
                f"got {percentile!r}."
            )
        check_int(n_startup_trials, "n_startup_trials", owner, low=0)
        check_int(n_warmup_steps, "n_warmup_steps", owner, low=0)
        check_int(interval_steps, "interval_steps", owner, low=1)
        check_int(n_min_trials, "n_min_trials", owner, low=1)
        self.percentile = float(percentile)
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.interval_steps = interval_steps
        self.n_min_trials = n_min_trials

    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return Decision.CONTINUE
        if (step - self.n_warmup_steps) % self.interval_steps:
            return Decision.CONTINUE
        complete = [t for t in history.complete if t.number != trial.number]
        if len(complete) < self.n_startup_trials:
            return Decision.CONTINUE
        sign = history.sign()
        others = []
        for t in complete:
            upto = [sign * v for s, v in t.intermediate.items() if s <= step]
            if upto and t.last_step is not None and t.last_step >= step:
                others.append(min(upto))
        if len(others) < max(1, self.n_min_trials):
            return Decision.CONTINUE
        mine = min(sign * v for s, v in trial.intermediate.items() if s <= step)
        # In sign space lower is better for both directions, so one percentile serves both.
        threshold = float(np.percentile(np.asarray(others), self.percentile))
        return Decision.STOP if mine > threshold else Decision.CONTINUE

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(percentile={self.percentile}, "
            f"n_startup_trials={self.n_startup_trials}, n_warmup_steps={self.n_warmup_steps}, "
            f"interval_steps={self.interval_steps}, n_min_trials={self.n_min_trials})"
        )


class MedianScheduler(PercentileScheduler):
    """The median stopping rule: the :class:`PercentileScheduler` at the 50th percentile.

    Example:
        >>> MedianScheduler(n_startup_trials=3, n_warmup_steps=5).percentile
        50.0
    """

    _owner = "MedianScheduler"

    def __init__(
        self,
        *,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            50.0,
            n_startup_trials=n_startup_trials,
            n_warmup_steps=n_warmup_steps,
            interval_steps=interval_steps,
            n_min_trials=n_min_trials,
        )

    def __repr__(self) -> str:
        return (
            f"MedianScheduler(n_startup_trials={self.n_startup_trials}, "
            f"n_warmup_steps={self.n_warmup_steps}, interval_steps={self.interval_steps}, "
            f"n_min_trials={self.n_min_trials})"
        )

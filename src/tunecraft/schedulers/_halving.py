"""Successive halving: synchronous (SHA) and asynchronous (ASHA, stopping and promotion)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._base import History
from tunecraft.schedulers._base import Decision, Resume, Scheduler
from tunecraft.schedulers._rungs import (
    Filter,
    budget_view,
    check_model_options,
    check_resources,
    crossed,
    milestones,
    paused_at,
    ranked,
    value_at,
)
from tunecraft.space import Space
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["ASHAScheduler", "SuccessiveHalvingScheduler"]

_VARIANTS = ("stopping", "promotion")


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 0, ties sharing their average rank (plain Python: the samples are small and
    this runs at every rung decision; scipy stays unimported)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties; ``-1`` when undefined)."""
    ra, rb = _ranks(a), _ranks(b)
    n = len(ra)
    ma, mb = sum(ra) / n, sum(rb) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    saa = sum((x - ma) ** 2 for x in ra)
    sbb = sum((y - mb) ** 2 for y in rb)
    if saa == 0 or sbb == 0:
        return -1.0
    return sab / math.sqrt(saa * sbb)


def _everyone(trial: FrozenTrial) -> bool:
    return True


def _peers(history: History, trial: FrozenTrial, scope: Filter) -> list[FrozenTrial]:
    """The trials ``trial`` competes with (its fresh record in place of the stored one)."""
    return [t for t in history.trials if t.number != trial.number and scope(t)] + [trial]


def _in_top(rank: Sequence[tuple[float, int, FrozenTrial]], k: int, number: int) -> bool:
    """Whether trial ``number`` is among the top ``k`` of ``rank`` (best first, ties by
    arrival), or tied with the best of the rung while some trial there is worse.

    Scores on a small validation set tie often: ranked by arrival, every later trial that
    tied the leader was stopped, though nothing at the rung did better. A tie at the worst
    value of the rung (every run that diverged reports the same error) says nothing good,
    and a tie further down is left to arrival, which keeps the rung's reduction rate (letting
    every tie at the k-th value through made 7 of 20 runs of the digits pipeline worse).
    """
    if any(n == number for _, n, _ in rank[:k]):
        return True
    best = rank[0][0]
    own = next(key for key, n, _ in rank if n == number)
    return own <= best and rank[-1][0] > best


@dataclass(frozen=True)
class _Ladder:
    """The rungs of one asynchronous successive-halving bracket."""

    marks: Sequence[int]
    reduction_factor: int
    variant: str
    max_resource: int | None
    scope: Filter = _everyone

    def decide(self, trial: FrozenTrial, history: History) -> Decision:
        sign = history.sign()
        peers: list[FrozenTrial] | None = None
        for m in self.marks:
            if not crossed(trial, m):
                continue
            peers = peers if peers is not None else _peers(history, trial, self.scope)
            rank = ranked(peers, m, sign)
            k = len(rank) // self.reduction_factor
            if self.variant == "stopping":
                k = max(1, k)  # the first trial at a rung has nobody to lose to
            if k == 0 or not _in_top(rank, k, trial.number):
                return Decision.STOP if self.variant == "stopping" else Decision.PAUSE
        return Decision.CONTINUE

    def promotable(self, history: History) -> Resume | None:
        if self.variant != "promotion":
            return None
        sign = history.sign()
        scoped = [t for t in history.trials if self.scope(t)]
        # Paused below the lowest rung (AutoScheduler dropped the rungs it was paused at): it
        # was never ranked, so it goes on to the lowest rung. One paused at a dropped middle
        # rung is paused at the rung in use below it, and promoted from there when it ranks
        # in that rung's top (resuming those regardless cost runs on digits and LCBench).
        for t in scoped:
            if (
                t.state is TrialState.PAUSED
                and t.last_step is not None
                and (not self.marks or t.last_step < self.marks[0])
            ):
                return Resume(t.number, budget=self.marks[0] if self.marks else self.max_resource)
        for r in reversed(range(len(self.marks))):
            rank = ranked(scoped, self.marks[r], sign)
            for _, number, t in rank[: len(rank) // self.reduction_factor]:
                if paused_at(t, self.marks, r):
                    return Resume(number, budget=self.budget_after(r))
        return None

    def budget_after(self, rung: int) -> int | None:
        return self.marks[rung + 1] if rung + 1 < len(self.marks) else self.max_resource


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving (Li et al., 2020), stopping or promotion variant.

    Rungs sit at steps ``min_resource * reduction_factor ** k`` below ``max_resource``. When a
    trial first reports at or beyond a rung, it is ranked against every trial of the study
    that reached that rung (running, paused or finished, read from the storage), and goes on
    only if it is in the top ``1 / reduction_factor`` (ties by arrival, except that a trial
    tied with the best of the rung goes on while some trial there is worse).

    * ``variant="stopping"`` (default): a trial outside the top is stopped (pruned). Works with
      any objective; the first trial at a rung always goes on.
    * ``variant="promotion"``: a trial outside the top is paused instead, and resumed later by
      the study (``trial.resumed``, ``trial.load_checkpoint()``) once enough trials reach the
      rung to rank it in the top. This is the ASHA of the paper: nothing good is lost to an
      unlucky order of arrival.

    Early epochs can mislead: a configuration that learns slowly looks bad at epoch 1 and best
    at the end. With ``min_resource="auto"`` the first rung is chosen from the data: until
    ``n_full`` trials reached ``max_resource`` nothing is ranked; then the first rung is the
    smallest step ``reduction_factor ** k`` whose values rank the full-budget trials with a
    Spearman correlation of at least ``min_correlation`` (no rung at all when none does). The
    choice is recomputed from the storage at every decision, so it tightens or relaxes as
    evidence comes in; trials paused at a step that stopped being a rung are resumed.

    Args:
        min_resource: The step of the first rung (an int >= 1), or ``"auto"`` (needs
            ``max_resource``).
        max_resource: Rungs lie below it (``None``: no cap).
        reduction_factor: Keep the top ``1 / reduction_factor`` at each rung (an int >= 2).
        variant: ``"stopping"`` or ``"promotion"``.
        min_correlation: For ``min_resource="auto"``: in (-1, 1].
        n_full: For ``min_resource="auto"``: full-budget trials needed first (an int >= 3).
        model_based: Let the study's sampler learn from the highest rung with at least
            ``min_points_in_model`` values, in the spirit of BOHB (see
            :meth:`~tunecraft.schedulers.Scheduler.sampler_trials`).
        min_points_in_model: Values a rung needs to serve the model (default: the number of
            parameters + 1).
        seed: Accepted for a uniform interface; ASHA is deterministic.

    Example:
        >>> import tunecraft as tc
        >>> study = tc.Study({"x": tc.uniform(0, 1)}, scheduler=ASHAScheduler(max_resource=9),
        ...                  sampler=tc.make_sampler("random", seed=0))
        >>> def objective(trial):
        ...     for step in range(1, 10):
        ...         trial.report(trial.config["x"] / step, step=step)
        ...         if trial.should_stop():
        ...             break
        ...     return trial.config["x"] / step
        >>> study.optimize(objective, n_trials=9)
        >>> sum(t.state.value == "pruned" for t in study.trials) > 0
        True
    """

    def __init__(
        self,
        *,
        min_resource: int | str = 1,
        max_resource: int | None = None,
        reduction_factor: int = 3,
        variant: str = "stopping",
        min_correlation: float = 0.5,
        n_full: int = 3,
        model_based: bool = False,
        min_points_in_model: int | None = None,
        seed: int | None = None,
    ) -> None:
        check_model_options("ASHA", model_based, min_points_in_model)
        self.model_based = model_based
        self.min_points_in_model = min_points_in_model
        auto = min_resource == "auto"
        if auto and max_resource is None:
            raise InvalidParameterError(
                "The 'min_resource' parameter of ASHA can be 'auto' only with an int "
                "max_resource; got max_resource=None."
            )
        check_resources("ASHA", 1 if auto else min_resource, max_resource, reduction_factor)  # type: ignore[arg-type]
        check_choice(variant, "variant", "ASHA", _VARIANTS)
        check_float(min_correlation, "min_correlation", "ASHA", low=-1.0, low_inclusive=False)
        if min_correlation > 1:
            raise InvalidParameterError(
                "The 'min_correlation' parameter of ASHA must be a number in (-1, 1], "
                f"got {min_correlation!r}."
            )
        check_int(n_full, "n_full", "ASHA", low=3)
        self.min_resource = min_resource
        self.max_resource = max_resource
        self.reduction_factor = reduction_factor
        self.variant = variant
        self.min_correlation = float(min_correlation)
        self.n_full = n_full
        self._fixed = (
            None
            if auto
            else _Ladder(
                milestones(min_resource, reduction_factor, max_resource),  # type: ignore[arg-type]
                reduction_factor,
                variant,
                max_resource,
            )
        )

    @property
    def rungs(self) -> list[int]:
        """The steps at which trials are ranked (for ``"auto"``: every candidate)."""
        if self._fixed is not None:
            return list(self._fixed.marks)
        return milestones(1, self.reduction_factor, self.max_resource)

    def chosen_min_resource(self, history: History) -> int | None:
        """The first rung in use given ``history`` (``None``: no rung yet)."""
        if self._fixed is not None:
            return self._fixed.marks[0] if self._fixed.marks else None
        assert self.max_resource is not None
        top = self.max_resource
        full = [t for t in history.trials if value_at(t, top) is not None]
        if len(full) < self.n_full:
            return None
        finals = [value_at(t, top) for t in full]
        for m in milestones(1, self.reduction_factor, top):
            early = [value_at(t, m) for t in full]
            rho = _spearman(early, finals)  # type: ignore[arg-type]
            if rho >= self.min_correlation:
                return m
        return None

    def _ladder(self, history: History) -> _Ladder:
        if self._fixed is not None:
            return self._fixed
        m = self.chosen_min_resource(history)
        marks = [] if m is None else milestones(m, self.reduction_factor, self.max_resource)
        return _Ladder(marks, self.reduction_factor, self.variant, self.max_resource)

    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        return self._ladder(history).decide(trial, history)

    def sampler_trials(self, space: Space, history: History) -> list[FrozenTrial] | None:
        if not self.model_based:
            return None
        budgets = list(self._ladder(history).marks)
        if self.max_resource is not None:
            budgets.append(self.max_resource)
        n_min = self.min_points_in_model or len(space) + 1
        return budget_view(history.trials, budgets, n_min)

    def on_ask(self, space: Space, history: History) -> Resume | None:
        if self.variant != "promotion":
            return None
        return self._ladder(history).promotable(history)

    def __repr__(self) -> str:
        return (
            f"ASHAScheduler(min_resource={self.min_resource!r}, "
            f"max_resource={self.max_resource}, "
            f"reduction_factor={self.reduction_factor}, variant={self.variant!r})"
        )


class SuccessiveHalvingScheduler(Scheduler):
    """Synchronous successive halving (Jamieson and Talwalkar, 2016), with pause and resume.

    Trials are grouped into brackets by number (trials ``0..bracket_size-1`` form the first,
    and so on). Every trial pauses at each rung; once every trial of a bracket has reached the
    rung (or finished or failed before it), the top ``1 / reduction_factor`` are resumed with
    the next rung as ``trial.budget`` and the rest are pruned. Survivors of the last rung run to
    the end. While a bracket waits on its stragglers, new trials start the next bracket, so
    parallel workers are never idle.

    The objective must resume (``trial.resumed``: load its checkpoint, or retrain to
    ``trial.last_step``) since every trial pauses.

    Args:
        min_resource: The step of the first rung (an int >= 1).
        max_resource: Rungs lie below it (``None``: no cap).
        reduction_factor: Keep the top ``1 / reduction_factor`` at each rung (an int >= 2).
        bracket_size: Trials per bracket (an int >= ``reduction_factor``; default
            ``reduction_factor ** 2``). Rungs stop when one trial would be left.
        seed: Accepted for a uniform interface; SHA is deterministic.

    Example:
        >>> sha = SuccessiveHalvingScheduler(min_resource=1, reduction_factor=2, bracket_size=8)
        >>> sha.rungs
        [1, 2, 4]
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        max_resource: int | None = None,
        reduction_factor: int = 3,
        bracket_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        check_resources("SuccessiveHalving", min_resource, max_resource, reduction_factor)
        check_int(
            bracket_size,
            "bracket_size",
            "SuccessiveHalving",
            low=reduction_factor,
            allow_none=True,
        )
        self.min_resource = min_resource
        self.max_resource = max_resource
        self.reduction_factor = reduction_factor
        self.bracket_size = bracket_size if bracket_size is not None else reduction_factor**2
        marks = milestones(min_resource, reduction_factor, max_resource)
        n_rungs = 0
        while n_rungs < len(marks) and self.bracket_size // reduction_factor ** (n_rungs + 1):
            n_rungs += 1
        self._marks = marks[:n_rungs]
        if not self._marks:
            raise InvalidParameterError(
                f"SuccessiveHalving: no rung lies below max_resource={max_resource} for "
                f"min_resource={min_resource}; lower min_resource."
            )

    @property
    def rungs(self) -> list[int]:
        """The steps at which trials pause."""
        return list(self._marks)

    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        return Decision.PAUSE if any(crossed(trial, m) for m in self._marks) else Decision.CONTINUE

    def _plan(self, history: History) -> tuple[list[Resume], list[int]]:
        """Paused trials to resume (in order) and paused trials to prune."""
        sign = history.sign()
        brackets: dict[int, list[FrozenTrial]] = {}
        for t in history.trials:
            brackets.setdefault(t.number // self.bracket_size, []).append(t)
        resume: list[Resume] = []
        stop: list[int] = []
        for members in brackets.values():
            if len(members) < self.bracket_size:
                continue  # still filling
            for r, m in enumerate(self._marks):
                if not all(value_at(t, m) is not None or t.state.is_finished for t in members):
                    break  # stragglers still on their way to this rung
                rank = ranked(members, m, sign)
                k = max(1, len(rank) // self.reduction_factor)
                budget = self._marks[r + 1] if r + 1 < len(self._marks) else self.max_resource
                winners = [t for _, _, t in rank[:k]]
                resume += [
                    Resume(t.number, budget) for t in winners if paused_at(t, self._marks, r)
                ]
                stop += [t.number for _, _, t in rank[k:] if paused_at(t, self._marks, r)]
                members = winners
        return resume, stop

    def on_ask(self, space: Space, history: History) -> Resume | None:
        resume, _ = self._plan(history)
        return resume[0] if resume else None

    def to_stop(self, history: History) -> list[int]:
        return self._plan(history)[1]

    def __repr__(self) -> str:
        return (
            f"SuccessiveHalvingScheduler(min_resource={self.min_resource}, "
            f"max_resource={self.max_resource}, reduction_factor={self.reduction_factor}, "
            f"bracket_size={self.bracket_size})"
        )

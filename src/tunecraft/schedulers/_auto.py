"""tunecraft's default multi-fidelity scheduler: ASHA whose rungs follow the rank correlation."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._base import History
from tunecraft.schedulers._base import Decision, Resume, Scheduler
from tunecraft.schedulers._halving import _VARIANTS, _Ladder, _spearman
from tunecraft.schedulers._rungs import budget_view, check_model_options, milestones
from tunecraft.space import Space
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["AutoScheduler", "RungCheck"]


@dataclass(frozen=True)
class RungCheck:
    """How well one candidate rung's ranking predicted a higher level.

    Attributes:
        rung: The candidate rung (a step).
        reference: The level its ranking was compared with (``None``: not enough pairs yet).
        n_pairs: Trials with a value at both ``rung`` and ``reference``.
        correlation: Spearman's rank correlation over those trials (``None``: not enough).
        in_use: Whether trials are judged at this rung.
    """

    rung: int
    reference: int | None
    n_pairs: int
    correlation: float | None
    in_use: bool


def _upper_bound(rho: float, n: int, confidence: float) -> float:
    """A one-sided upper confidence bound on a Spearman correlation of ``n`` pairs (Fisher's
    z with the variance ``1.06 / (n - 3)`` of Fieller, Hartley and Pearson)."""
    if confidence == 0.5:
        return rho
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    bound = math.tanh(z + NormalDist().inv_cdf(confidence) * math.sqrt(1.06 / max(n - 3, 1)))
    return max(rho, bound)  # rho = 1 stays 1 (the clipping above would round it down)


def _values(trial: FrozenTrial, levels: Sequence[int]) -> list[float | None]:
    """The trial's value at each level: its first report at or beyond it (``None``: not there)."""
    inter = trial.intermediate
    out: list[float | None] = []
    steps: list[int] | None = None
    for m in levels:
        v = inter.get(m)
        if v is None:
            if steps is None:
                steps = sorted(inter)
            i = bisect_left(steps, m)
            v = inter[steps[i]] if i < len(steps) else None
        out.append(v)
    return out


class AutoScheduler(Scheduler):
    """tunecraft's default multi-fidelity scheduler: ASHA with rungs chosen from the data.

    Asynchronous successive halving (promotion variant by default, model-based view on)
    whose minimum resource and rung spacing are not fixed in advance but read, at every
    decision, from how well each rung's ranking predicted the results at higher budgets.
    Early epochs can mislead (a configuration that learns slowly looks bad at epoch 1 and is
    the best at the end); ranking at such an epoch throws the best configurations away, so this
    scheduler stops judging there.

    The rule, in full:

    1. The candidate rungs are ``min_resource * reduction_factor ** k`` below ``max_resource``
       (``min_resource=None``: from step 1). They are checked from the top down.
    2. A candidate ``r`` is checked against its *reference*: the next level above it that is
       in use (a higher candidate still in use, else ``max_resource``). The check looks at
       the top ``1 / reduction_factor`` of the trials that reached ``r`` (the ones a rung at
       ``r`` promotes, so the check means the same whether ``r`` is in use or not) and, among
       those that also reached the reference, computes Spearman's rank correlation ``rho``
       between their values at ``r`` and at the reference.
    3. With fewer than ``n_pairs`` such trials the candidate is in use (optimistic: judging is
       cheap to undo, see 4.). Otherwise it is in use unless the pairs show that ``rho`` is
       below ``min_correlation``: a one-sided upper confidence bound on ``rho`` at level
       ``confidence`` (Fisher's z) must reach ``min_correlation``. A low ``rho`` of a few
       pairs is weak evidence (with six pairs, ``rho = 0`` lies within one standard error of
       a true correlation of 0.5), and dropping a rung on it sends trials to full length;
       with many pairs the bound nears ``rho``. Dropping the lowest candidates raises the
       effective minimum resource; dropping a middle one widens the rung spacing.
    4. When the lowest rungs are dropped, trials paused at them (promotion variant) are
       resumed to the lowest rung in use, and their results feed the check again, so a rung
       dropped on thin evidence can come back. A trial paused at a dropped middle rung counts
       as paused at the rung in use below it: it is resumed to the next rung in use when it
       ranks in that rung's top, and stays paused otherwise, as any trial paused there.
    5. At a rung in use, a trial goes on only if it ranks in the top ``1 / reduction_factor``
       of every trial that reached that rung (ASHA). ``variant="promotion"`` pauses the others
       and resumes a paused trial once it ranks in the top; ``"stopping"`` prunes them.
    6. With ``model_based=True`` the study's model-based sampler learns, as in BOHB, from the
       highest level (rungs in use and ``max_resource``) with at least ``min_points_in_model``
       results; a dropped rung never serves the model.

    Everything is a function of the options and the stored trials, so several workers or
    processes sharing a storage decide alike, and a reopened study decides as before.

    The promotion variant pauses trials: the objective should resume (``trial.resumed``:
    ``trial.load_checkpoint()``, or retrain to ``trial.last_step``). Use
    ``variant="stopping"`` for objectives that cannot.

    Args:
        max_resource: The full budget as a step (an int >= 2), or ``"auto"``: the last step of
            the first trial that completes (nothing is judged before).
        min_resource: The lowest candidate rung (an int >= 1 and < ``max_resource``). ``None``
            (default): candidates start at step 1 and the rule above picks. An int fixes the
            rungs at ``min_resource * reduction_factor ** k`` (no correlation check).
        reduction_factor: Keep the top ``1 / reduction_factor`` at each rung (an int >= 2).
        variant: ``"promotion"`` (pause and resume) or ``"stopping"`` (prune).
        min_correlation: A rung whose top third's ranking correlates less than this with
            its reference is not used; a number in (-1, 1].
        n_pairs: Trials of a rung's top third that must have reached its reference before
            the rung is checked (an int >= 3).
        confidence: How sure the check must be that a rung's correlation is below
            ``min_correlation`` before the rung is dropped (a number in [0.5, 1); 0.5 compares
            ``rho`` itself, as before 0.9 became the default: see docs/benchmarks.md).
        model_based: Let the study's sampler learn from rung results (BOHB-style).
        min_points_in_model: Results a level needs to serve the model (default: the number of
            parameters + 1).
        seed: Accepted for a uniform interface; the scheduler is deterministic.

    Example:
        >>> from tunecraft.testing.schedulers import Scenario
        >>> sc = Scenario(AutoScheduler(max_resource=9, variant="stopping", n_pairs=3))
        >>> [c.rung for c in sc.scheduler.checks(sc.history())]
        [1, 3]
        >>> _ = sc.reports(0, [0.5, 0.5, 0.5], ["continue"] * 3)
        >>> _ = sc.reports(1, [0.9], ["stop"])  # judged at step 1 until the data says otherwise
    """

    def __init__(
        self,
        *,
        max_resource: int | str = "auto",
        min_resource: int | None = None,
        reduction_factor: int = 3,
        variant: str = "promotion",
        min_correlation: float = 0.3,
        n_pairs: int = 6,
        confidence: float = 0.9,
        model_based: bool = True,
        min_points_in_model: int | None = None,
        seed: int | None = None,
    ) -> None:
        owner = "AutoScheduler"
        check_model_options(owner, model_based, min_points_in_model)
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int):
            raise TypeError(
                f"The 'reduction_factor' parameter of {owner} must be an int >= 2, "
                f"got {reduction_factor!r}."
            )
        check_int(reduction_factor, "reduction_factor", owner, low=2)
        if isinstance(max_resource, str):
            if max_resource != "auto":
                raise InvalidParameterError(
                    f"The 'max_resource' parameter of {owner} must be an int >= 2 or 'auto', "
                    f"got {max_resource!r}."
                )
        else:
            check_int(max_resource, "max_resource", owner, low=2)
        check_int(min_resource, "min_resource", owner, low=1, allow_none=True)
        if (
            min_resource is not None
            and isinstance(max_resource, int)
            and min_resource >= max_resource
        ):
            raise InvalidParameterError(
                f"The 'min_resource' parameter of {owner} must be < max_resource "
                f"({max_resource}), got {min_resource}."
            )
        check_choice(variant, "variant", owner, _VARIANTS)
        check_float(min_correlation, "min_correlation", owner, low=-1.0, low_inclusive=False)
        if min_correlation > 1:
            raise InvalidParameterError(
                f"The 'min_correlation' parameter of {owner} must be a number in (-1, 1], "
                f"got {min_correlation!r}."
            )
        check_int(n_pairs, "n_pairs", owner, low=3)
        check_float(confidence, "confidence", owner, low=0.5)
        if confidence >= 1:
            raise InvalidParameterError(
                f"The 'confidence' parameter of {owner} must be a number in [0.5, 1), "
                f"got {confidence!r}."
            )
        self.max_resource = max_resource
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor
        self.variant = variant
        self.min_correlation = float(min_correlation)
        self.n_pairs = n_pairs
        self.confidence = float(confidence)
        self.model_based = model_based
        self.min_points_in_model = min_points_in_model

    # -- the rule ----------------------------------------------------------------------------
    def _resolve_max(self, history: History) -> int | None:
        if isinstance(self.max_resource, int):
            return self.max_resource
        for t in history.complete:
            last = t.last_step
            if last is not None:
                return last if last > (self.min_resource or 1) else None
        return None

    def candidates(self, max_resource: int) -> list[int]:
        """The steps that may serve as rungs for a full budget of ``max_resource``."""
        return milestones(self.min_resource or 1, self.reduction_factor, max_resource)

    def checks(self, history: History) -> list[RungCheck]:
        """Each candidate rung, its correlation check and whether it is in use.

        Empty while ``max_resource="auto"`` is not resolved yet. Computed once per history
        (``history.memo``): one ask reads it twice (``on_ask`` and ``sampler_trials``).
        """
        key = (self, "checks")
        cached: list[RungCheck] | None = history.memo.get(key)
        if cached is None:
            cached = history.memo[key] = self._checks(history)
        return list(cached)

    def _checks(self, history: History) -> list[RungCheck]:
        top = self._resolve_max(history)
        if top is None:
            return []
        cands = self.candidates(top)
        if self.min_resource is not None:
            return [RungCheck(r, None, 0, None, True) for r in cands]
        levels = [*cands, top]
        sign = history.sign()
        rows = [
            (t.number, _values(t, levels))
            for t in history.trials
            if t.state is not TrialState.FAILED and t.intermediate
        ]
        in_use = [True] * len(cands)
        out: list[RungCheck] = []
        for i in reversed(range(len(cands))):
            j = next(j for j in range(i + 1, len(levels)) if j == len(cands) or in_use[j])
            reached = sorted(
                ((sign * row[i], number, row) for number, row in rows if row[i] is not None),  # type: ignore[operator]
                key=lambda x: (x[0], x[1]),
            )
            best = reached[: len(reached) // self.reduction_factor]
            pairs = [(row[i], row[j]) for _, _, row in best if row[j] is not None]
            if len(pairs) < self.n_pairs:
                out.append(RungCheck(cands[i], levels[j], len(pairs), None, True))
                continue
            rho = _spearman([a for a, _ in pairs], [b for _, b in pairs])  # type: ignore[misc]
            in_use[i] = _upper_bound(rho, len(pairs), self.confidence) >= self.min_correlation
            out.append(RungCheck(cands[i], levels[j], len(pairs), rho, in_use[i]))
        return out[::-1]

    def rungs_in_use(self, history: History) -> list[int]:
        """The steps at which trials are judged, given ``history``."""
        return [c.rung for c in self.checks(history) if c.in_use]

    def chosen_min_resource(self, history: History) -> int | None:
        """The first rung in use (``None``: none, every trial runs to the end)."""
        rungs = self.rungs_in_use(history)
        return rungs[0] if rungs else None

    def _ladder(self, history: History) -> _Ladder | None:
        top = self._resolve_max(history)
        if top is None:
            return None
        return _Ladder(self.rungs_in_use(history), self.reduction_factor, self.variant, top)

    # -- the scheduler interface -------------------------------------------------------------
    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        last = trial.last_step
        top = self.max_resource if isinstance(self.max_resource, int) else None
        if last is None or (top is not None and last >= top):
            return Decision.CONTINUE
        if top is not None and not any(
            m <= last and not any(m <= s < last for s in trial.intermediate)
            for m in self.candidates(top)
        ):
            return Decision.CONTINUE  # crossed no candidate rung: nothing to decide (cheap)
        ladder = self._ladder(history)
        return Decision.CONTINUE if ladder is None else ladder.decide(trial, history)

    def on_ask(self, space: Space, history: History) -> Resume | None:
        if self.variant != "promotion":
            return None
        ladder = self._ladder(history)
        return None if ladder is None else ladder.promotable(history)

    def sampler_trials(self, space: Space, history: History) -> list[FrozenTrial] | None:
        if not self.model_based:
            return None
        top = self._resolve_max(history)
        if top is None:
            return None
        n_min = self.min_points_in_model or len(space) + 1
        return budget_view(history.trials, [*self.rungs_in_use(history), top], n_min)

    def __repr__(self) -> str:
        return (
            f"AutoScheduler(max_resource={self.max_resource!r}, "
            f"min_resource={self.min_resource}, reduction_factor={self.reduction_factor}, "
            f"variant={self.variant!r}, min_correlation={self.min_correlation}, "
            f"n_pairs={self.n_pairs}, confidence={self.confidence}, "
            f"model_based={self.model_based})"
        )

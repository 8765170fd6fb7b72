"""Rung arithmetic shared by the successive-halving family: milestones, values, ranks.

A trial's *resource* is the ``step`` it reports (for example the number of epochs done). A
rung is a milestone step; a trial's value at a rung is the value of its first report at or
beyond the milestone, so objectives that report every other step still land in every rung.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from tunecraft._validation import check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.trial import FrozenTrial, TrialState

__all__ = [
    "budget_view",
    "check_model_options",
    "check_resources",
    "crossed",
    "milestones",
    "paused_at",
    "ranked",
    "value_at",
]


def check_resources(
    owner: str,
    min_resource: int,
    max_resource: int | None,
    reduction_factor: int,
    *,
    min_low: int = 1,
) -> None:
    """Validate the options every successive-halving scheduler shares."""
    if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int):
        raise TypeError(
            f"The 'reduction_factor' parameter of {owner} must be an int >= 2, "
            f"got {reduction_factor!r}."
        )
    if reduction_factor < 2:
        raise InvalidParameterError(
            f"The 'reduction_factor' parameter of {owner} must be an int >= 2, "
            f"got {reduction_factor!r}."
        )
    check_int(min_resource, "min_resource", owner, low=min_low)
    check_int(max_resource, "max_resource", owner, low=1, allow_none=True)
    if max_resource is not None and min_resource >= max_resource:
        raise InvalidParameterError(
            f"The 'min_resource' parameter of {owner} must be < max_resource "
            f"({max_resource}), got {min_resource}."
        )


def check_model_options(owner: str, model_based: bool, min_points_in_model: int | None) -> None:
    """Validate the options of the model-based (BOHB-style) view."""
    if not isinstance(model_based, bool):
        raise TypeError(
            f"The 'model_based' parameter of {owner} must be a bool, got {model_based!r}."
        )
    check_int(min_points_in_model, "min_points_in_model", owner, low=1, allow_none=True)


def milestones(
    min_resource: int, reduction_factor: int, below: int | None, cap: int = 64
) -> list[int]:
    """``min_resource * reduction_factor ** k`` for k = 0, 1... while below ``below``."""
    out: list[int] = []
    m = min_resource
    while (below is None or m < below) and len(out) < cap:
        out.append(m)
        m *= reduction_factor
    return out


def value_at(trial: FrozenTrial, milestone: int) -> float | None:
    """The trial's value at its first report at or beyond ``milestone`` (``None``: not there)."""
    steps = [s for s in trial.intermediate if s >= milestone]
    return trial.intermediate[min(steps)] if steps else None


def crossed(trial: FrozenTrial, milestone: int) -> bool:
    """Whether the trial's latest report is the first at or beyond ``milestone``."""
    last = trial.last_step
    if last is None or last < milestone:
        return False
    return min(s for s in trial.intermediate if s >= milestone) == last


def ranked(
    trials: Iterable[FrozenTrial], milestone: int, sign: float
) -> list[tuple[float, int, FrozenTrial]]:
    """Trials with a value at ``milestone``, best first (ties: the lower number first)."""
    out = []
    for t in trials:
        v = value_at(t, milestone)
        if v is not None:
            out.append((sign * v, t.number, t))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def paused_at(trial: FrozenTrial, marks: Sequence[int], rung: int) -> bool:
    """Whether ``trial`` is paused having reached rung ``rung`` of ``marks`` but not the next."""
    if trial.state is not TrialState.PAUSED or trial.last_step is None:
        return False
    if trial.last_step < marks[rung]:
        return False
    return rung + 1 >= len(marks) or trial.last_step < marks[rung + 1]


def spread(n: int, weights: Sequence[int]) -> int:
    """Smooth weighted round robin: the index of ``weights`` that position ``n`` falls to.

    Over any ``sum(weights)`` consecutive positions each index appears ``weights[i]`` times,
    interleaved rather than in blocks, so a short study still visits every index.
    """
    order = _order(tuple(weights))
    return order[n % len(order)]


@functools.lru_cache(maxsize=64)
def _order(weights: tuple[int, ...]) -> tuple[int, ...]:
    total = sum(weights)
    current = [0] * len(weights)
    order = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[best] -= total
        order.append(best)
    return tuple(order)


def budget_view(
    trials: Sequence[FrozenTrial], budgets: Iterable[int], min_points: int
) -> list[FrozenTrial] | None:
    """The trials as a model-based sampler should see them under multi-fidelity scheduling.

    In the spirit of BOHB: pick the highest budget in ``budgets`` at which at least
    ``min_points`` trials have a value, and present each trial that reached it as complete
    with its value there. Trials paused or ended below it become pruned (ignored by models,
    no longer counted as work in flight); running and waiting ones stay as they are.
    Returns ``None`` when no budget has enough points (the sampler sees the raw history).
    """
    for b in sorted(set(budgets), reverse=True):
        at_b = [value_at(t, b) for t in trials]
        n = sum(
            v is not None and t.state is not TrialState.FAILED
            for t, v in zip(trials, at_b, strict=True)
        )
        if n < min_points:
            continue
        out = []
        for t, v in zip(trials, at_b, strict=True):
            if t.state is TrialState.FAILED:
                out.append(t)
            elif v is not None:
                out.append(replace(t, state=TrialState.COMPLETE, value=v))
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                out.append(t)
            else:
                out.append(replace(t, state=TrialState.PRUNED))
        return out
    return None


Filter = Callable[[FrozenTrial], bool]

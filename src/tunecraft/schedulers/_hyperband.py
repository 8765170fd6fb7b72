"""Hyperband: several successive-halving brackets that hedge over the minimum resource."""

from __future__ import annotations

import math

from tunecraft._validation import check_choice
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._base import History
from tunecraft.schedulers._base import Decision, Resume, Scheduler
from tunecraft.schedulers._halving import _VARIANTS, _Ladder
from tunecraft.schedulers._rungs import (
    budget_view,
    check_model_options,
    check_resources,
    milestones,
    spread,
)
from tunecraft.space import Space
from tunecraft.trial import FrozenTrial

__all__ = ["HyperbandScheduler"]


class HyperbandScheduler(Scheduler):
    """Hyperband (Li et al., 2018) run asynchronously: one ASHA ladder per bracket.

    With ``s_max = floor(log_eta(max_resource / min_resource))``, bracket ``s`` (0..s_max)
    starts ranking at ``min_resource * eta ** s``: bracket 0 is the most aggressive, bracket
    ``s_max`` runs every trial to the end. Trials go to brackets by number, in a fixed
    interleaved order weighted like the paper's bracket sizes (``ceil((s_max + 1) / (s' + 1)
    * eta ** s')`` trials for a bracket with ``s'`` halvings), and are ranked only against
    their own bracket. The result hedges against early rungs that mislead.

    Args:
        min_resource: The first rung of the most aggressive bracket (an int >= 1).
        max_resource: The full budget, as a step (an int > min_resource), or ``"auto"``:
            the last step of the first trial that completes (nothing is stopped before).
        reduction_factor: ``eta``, an int >= 2.
        variant: ``"stopping"`` (prune) or ``"promotion"`` (pause and resume), as in ASHA.
        model_based: Model-based Hyperband in the spirit of BOHB: the study's model-based
            sampler (``"tpe"``, ``"gp"``) learns from the highest budget with at least
            ``min_points_in_model`` results, every trial that reached it counted with its value
            there, instead of from full-budget trials only. Registered as ``"bohb"``.
        min_points_in_model: Results a budget needs to serve the model (default: the number
            of parameters + 1).
        seed: Accepted for a uniform interface; Hyperband is deterministic.

    Example:
        >>> hb = HyperbandScheduler(min_resource=1, max_resource=27, reduction_factor=3)
        >>> hb.brackets(27)
        [[1, 3, 9], [3, 9], [9], []]
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        max_resource: int | str = "auto",
        reduction_factor: int = 3,
        variant: str = "stopping",
        model_based: bool = False,
        min_points_in_model: int | None = None,
        seed: int | None = None,
    ) -> None:
        check_model_options("Hyperband", model_based, min_points_in_model)
        self.model_based = model_based
        self.min_points_in_model = min_points_in_model
        if isinstance(max_resource, str):
            if max_resource != "auto":
                raise InvalidParameterError(
                    "The 'max_resource' parameter of Hyperband must be an int > min_resource "
                    f"or 'auto', got {max_resource!r}."
                )
            check_resources("Hyperband", min_resource, None, reduction_factor)
        else:
            check_resources("Hyperband", min_resource, max_resource, reduction_factor)
        check_choice(variant, "variant", "Hyperband", _VARIANTS)
        self.min_resource = min_resource
        self.max_resource = max_resource
        self.reduction_factor = reduction_factor
        self.variant = variant

    def brackets(self, max_resource: int) -> list[list[int]]:
        """The rungs of each bracket, from the most aggressive to the one that never stops."""
        eta = self.reduction_factor
        s_max = 0
        while self.min_resource * eta ** (s_max + 1) <= max_resource:
            s_max += 1
        return [
            milestones(self.min_resource * eta**s, eta, max_resource) for s in range(s_max + 1)
        ]

    def _resolve_max(self, history: History) -> int | None:
        if isinstance(self.max_resource, int):
            return self.max_resource
        complete = [t for t in history.complete if t.last_step is not None]
        if not complete:
            return None
        last = complete[0].last_step
        return last if last is not None and last > self.min_resource else None

    def _weights(self, n_brackets: int) -> list[int]:
        s_max = n_brackets - 1
        eta = self.reduction_factor
        return [
            math.ceil((s_max + 1) / (s_max - s + 1) * eta ** (s_max - s)) for s in range(s_max + 1)
        ]

    def bracket_of(self, number: int, max_resource: int) -> int:
        """The bracket of trial ``number``."""
        return spread(number, self._weights(len(self.brackets(max_resource))))

    def _ladder(self, bracket: int, max_resource: int) -> _Ladder:
        marks = self.brackets(max_resource)[bracket]
        weights = self._weights(len(self.brackets(max_resource)))
        return _Ladder(
            marks,
            self.reduction_factor,
            self.variant,
            max_resource,
            scope=lambda t: spread(t.number, weights) == bracket,
        )

    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        max_resource = self._resolve_max(history)
        if max_resource is None:
            return Decision.CONTINUE
        bracket = self.bracket_of(trial.number, max_resource)
        return self._ladder(bracket, max_resource).decide(trial, history)

    def sampler_trials(self, space: Space, history: History) -> list[FrozenTrial] | None:
        if not self.model_based:
            return None
        max_resource = self._resolve_max(history)
        if max_resource is None:
            return None
        budgets = {m for marks in self.brackets(max_resource) for m in marks} | {max_resource}
        n_min = self.min_points_in_model or len(space) + 1
        return budget_view(history.trials, budgets, n_min)

    def on_ask(self, space: Space, history: History) -> Resume | None:
        if self.variant != "promotion":
            return None
        max_resource = self._resolve_max(history)
        if max_resource is None:
            return None
        for bracket in range(len(self.brackets(max_resource))):
            order = self._ladder(bracket, max_resource).promotable(history)
            if order is not None:
                return order
        return None

    def __repr__(self) -> str:
        return (
            f"HyperbandScheduler(min_resource={self.min_resource}, "
            f"max_resource={self.max_resource!r}, reduction_factor={self.reduction_factor}, "
            f"variant={self.variant!r}, model_based={self.model_based})"
        )

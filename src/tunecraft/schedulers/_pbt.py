"""Population-based training: exploit a top trial's checkpoint, explore around its config."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tunecraft._validation import check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._base import History
from tunecraft.schedulers._base import Decision, Resume, Scheduler
from tunecraft.schedulers._rungs import crossed, ranked
from tunecraft.space import Categorical, Float, Int, Space
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["PBTScheduler"]


class PBTScheduler(Scheduler):
    """Population-based training (Jaderberg et al., 2017), seeded and deterministic.

    Every ``perturbation_interval`` steps (at the first report at or beyond each multiple of
    it), a trial is ranked by its value there against every trial that reached it. A trial in
    the bottom ``quantile_fraction`` pauses; the study then resumes it at once
    (:meth:`on_ask`) with the checkpoint a trial drawn from the top ``quantile_fraction`` had
    *at that step* (*exploit*: the study keeps a copy of each trial's checkpoint at every
    multiple, :meth:`snapshot_at`) and that trial's config *explored*: each numeric value is
    resampled from its domain with probability ``resample_probability``, else multiplied by one
    of ``perturbation_factors`` and clipped (ints rounded to their grid); each categorical is
    resampled with ``resample_probability``, else kept. The draws depend only on the seed, the
    paused trial's number and its step, so every worker and every rerun explores alike.

    The resumed trial keeps its number and its earlier intermediate values; its config in the
    storage becomes the explored one, the user attributes ``pbt_parent`` and ``pbt_step``
    record where it came from, and ``pbt_history`` the configs it ran before. The objective
    must checkpoint at each report (``trial.save_checkpoint``, just before or just after
    ``trial.report``) and load on resume (``trial.resumed``, ``trial.load_checkpoint``), going
    on from ``trial.last_step + 1``: the copied state is the donor's at the same step, so a
    trial never gets more training than its steps say. The kept copies stay in the study's
    artifact directory (one per trial and multiple of the interval).

    Args:
        perturbation_interval: Steps between exploit decisions (an int >= 1).
        quantile_fraction: The bottom (and top) fraction, in (0, 0.5].
        resample_probability: In [0, 1].
        perturbation_factors: Positive factors to multiply numeric values by.
        min_population: Trials that must have reached the step before anyone is replaced
            (an int >= 2).
        seed: Seeds the explore draws.

    Example:
        >>> pbt = PBTScheduler(perturbation_interval=2, seed=0)
        >>> pbt.quantile_fraction
        0.25
    """

    def __init__(
        self,
        *,
        perturbation_interval: int = 4,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: Sequence[float] = (0.8, 1.2),
        min_population: int = 4,
        seed: int | None = None,
    ) -> None:
        owner = "PBT"
        check_int(perturbation_interval, "perturbation_interval", owner, low=1)
        check_float(quantile_fraction, "quantile_fraction", owner, low=0.0, low_inclusive=False)
        if quantile_fraction > 0.5:
            raise InvalidParameterError(
                "The 'quantile_fraction' parameter of PBT must be a number in (0, 0.5], "
                f"got {quantile_fraction!r}."
            )
        check_float(resample_probability, "resample_probability", owner, low=0.0)
        if resample_probability > 1:
            raise InvalidParameterError(
                "The 'resample_probability' parameter of PBT must be a number in [0, 1], "
                f"got {resample_probability!r}."
            )
        factors = tuple(perturbation_factors) if isinstance(perturbation_factors, Sequence) else ()
        if not factors or not all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) and f > 0
            for f in factors
        ):
            raise InvalidParameterError(
                "The 'perturbation_factors' parameter of PBT must be a non-empty sequence of "
                f"positive numbers, got {perturbation_factors!r}."
            )
        check_int(min_population, "min_population", owner, low=2)
        check_int(seed, "seed", owner, low=0, allow_none=True)
        self.perturbation_interval = perturbation_interval
        self.quantile_fraction = float(quantile_fraction)
        self.resample_probability = float(resample_probability)
        self.perturbation_factors = tuple(float(f) for f in factors)
        self.min_population = min_population
        self.seed = seed
        self._entropy = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63)  # type: ignore[operator]

    def _split(
        self, trial: FrozenTrial, history: History, step: int
    ) -> tuple[list[FrozenTrial], list[FrozenTrial]] | None:
        """The top and bottom quantiles at ``step`` (``None``: the population is too small)."""
        alive = [
            t
            for t in history.trials
            if t.number != trial.number and t.state is not TrialState.FAILED
        ]
        rank = [t for _, _, t in ranked([*alive, trial], step, history.sign())]
        if len(rank) < self.min_population:
            return None
        k = max(1, int(len(rank) * self.quantile_fraction))
        return rank[:k], rank[-k:]

    def _milestone(self, trial: FrozenTrial) -> int | None:
        """The multiple of the interval that the latest report is the first to reach, if any.

        A trial that reports every step decides at 4, 8, ... (interval 4); one that reports at
        5, 10, 15 decides at 5 for milestone 4, at 10 for 8 and at 15 for 12, and is ranked
        at the milestone by its first value at or beyond it, as the rung schedulers do.
        """
        last = trial.last_step
        if last is None:
            return None
        milestone = (last // self.perturbation_interval) * self.perturbation_interval
        if milestone == 0 or not crossed(trial, milestone):
            return None
        return milestone

    def snapshot_at(self, trial: FrozenTrial) -> int | None:
        # A trial's state at each milestone may be copied into a trial ranked lower there.
        return self._milestone(trial)

    def on_report(self, trial: FrozenTrial, history: History) -> Decision:
        milestone = self._milestone(trial)
        if milestone is None:
            return Decision.CONTINUE
        split = self._split(trial, history, milestone)
        if split is None:
            return Decision.CONTINUE
        top, bottom = split
        if trial.number in {t.number for t in bottom} and trial.number not in {
            t.number for t in top
        }:
            return Decision.PAUSE
        return Decision.CONTINUE

    def on_ask(self, space: Space, history: History) -> Resume | None:
        for trial in history.with_state(TrialState.PAUSED):
            if trial.last_step is None:
                continue
            interval = self.perturbation_interval
            milestone = max(interval, (trial.last_step // interval) * interval)
            split = self._split(trial, history, milestone)
            donors = [t for t in split[0] if t.number != trial.number] if split else []
            if not donors:
                # Nobody better to copy: go on with its own weights and config.
                return Resume(trial.number, budget=milestone + interval)
            rng = np.random.default_rng([self._entropy, trial.number, trial.last_step])
            donor = donors[int(rng.integers(len(donors)))]
            return Resume(
                trial.number,
                budget=milestone + interval,
                config=self.explore(space, donor.config, rng),
                checkpoint_from=donor.number,
                checkpoint_step=milestone,
            )
        return None

    def explore(
        self, space: Space, config: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        """A perturbed copy of ``config`` (see the class docs); ``config`` is not changed."""
        out: dict[str, Any] = {}
        for name in space.names:
            if not space.is_active(name, out):
                continue
            param = space[name]
            if name not in config or rng.random() < self.resample_probability:
                out[name] = param.sample(rng)
                continue
            value = config[name]
            if isinstance(param, Categorical):
                out[name] = value
                continue
            factor = self.perturbation_factors[int(rng.integers(len(self.perturbation_factors)))]
            if isinstance(param, Float):
                out[name] = min(param.high, max(param.low, float(value) * factor))
            elif isinstance(param, Int):
                v = min(param.high, max(param.low, float(value) * factor))
                snapped = param.low + round((v - param.low) / param.step) * param.step
                out[name] = int(min(param.high, max(param.low, snapped)))
            else:  # a parameter type of the future: keep it
                out[name] = value
        return space.validate(out)

    def __repr__(self) -> str:
        return (
            f"PBTScheduler(perturbation_interval={self.perturbation_interval}, "
            f"quantile_fraction={self.quantile_fraction}, "
            f"resample_probability={self.resample_probability}, "
            f"perturbation_factors={self.perturbation_factors}, seed={self.seed})"
        )

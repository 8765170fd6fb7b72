"""Final validation: per-finalist statistics over seeds, learning-curve checks, proxy checks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunecraft.exceptions import InvalidParameterError
from tunecraft.strategy._transfer import ProxyWarning, check_proxy, rank_correlation

__all__ = [
    "FinalistResult",
    "ProxyCheck",
    "ProxyWarning",
    "check_curve",
    "proxy_check",
    "summarize",
]

#: A curve that loses more than this share of its range after its best point overfits; one
#: that gains more than this share over its last quarter is still improving.
CURVE_TOLERANCE = 0.1
#: Below this rank correlation a proxy's ranking is not trusted.
MIN_PROXY_CORRELATION = 0.5


@dataclass(frozen=True)
class FinalistResult:
    """One finalist of the final validation: trained in full with several seeds.

    Attributes:
        config: The configuration to train with (what the objective received).
        source: Where the search found it (``"refine #12"``, ``"transfer #0"``...).
        search_value: Its value in the search (a validation-split score, at that phase's
            fidelity): what a plain search would claim.
        seeds: The seeds it was trained with, in order.
        values: Its holdout score with each seed.
        mean: Mean holdout score over the seeds.
        std: Sample standard deviation over the seeds (``nan`` for one seed).
        ci: 95% confidence interval of the mean (Student's t; ``(nan, nan)`` for one seed).
        curves: ``{seed: {step: value}}``: the intermediate values each run reported.
        train_curves: ``{seed: {step: value}}``: the training metric, when reported.
        overfitting: The validation metric worsened past its best while training improved
            (in most seeds).
        undertrained: Still improving at the end (in most seeds): more epochs would help.
        search_config: The configuration in the search space (before derived values).
        validation_values: The validation metric each seed's run reported last (its
            intermediate values are validation-split values), in the order of ``seeds``;
            empty when the runs reported none (or reported holdout values).
        validation_mean: Their mean (``None`` when empty): what chooses among finalists by
            default, so that the holdout only scores the choice.
        search_fidelity: The fidelity of the search run it came from (``None`` when unknown).
        raced_out: A raced validation dropped it after its first run (it is never the
            choice; see ``BudgetedSearch(race=)``).
        failures: The error (first line) of each of its runs that failed. A finalist whose
            every run failed is listed with no values (``mean`` is ``nan``) and is never
            the choice.
    """

    config: dict[str, Any]
    source: str
    search_value: float | None
    seeds: list[int]
    values: list[float]
    mean: float
    std: float
    ci: tuple[float, float]
    curves: dict[int, dict[int, float]] = field(default_factory=dict)
    train_curves: dict[int, dict[int, float]] = field(default_factory=dict)
    overfitting: bool = False
    undertrained: bool = False
    search_config: dict[str, Any] = field(default_factory=dict)
    validation_values: list[float] = field(default_factory=list)
    validation_mean: float | None = None
    search_fidelity: float | None = None
    raced_out: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Runs that finished."""
        return len(self.values)

    @property
    def flags(self) -> list[str]:
        """``"overfitting"``, ``"undertrained"``, ``"raced out"`` and ``"N failed"``, those
        that apply."""
        return [
            name
            for name, on in (
                ("overfitting", self.overfitting),
                ("undertrained", self.undertrained),
                ("raced out", self.raced_out),
                (f"{len(self.failures)} failed", bool(self.failures)),
            )
            if on
        ]


@dataclass(frozen=True)
class ProxyCheck:
    """How well a short-run (proxy) result ranks configurations like the full-length result.

    Attributes:
        proxy: The proxy, named (``"3 epochs"``).
        correlation: Spearman's rank correlation between proxy and full values (``nan`` when
            fewer than 3 configurations have both).
        n: Configurations with both values.
        trusted: ``correlation >= MIN_PROXY_CORRELATION`` (``True`` when it cannot be told).
    """

    proxy: str
    correlation: float
    n: int

    @property
    def trusted(self) -> bool:
        """Whether the proxy's ranking can be trusted (unknown counts as trusted)."""
        return not (self.correlation < MIN_PROXY_CORRELATION)


def summarize(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, tuple[float, float]]:
    """Mean, sample standard deviation and a Student-t confidence interval of the mean.

    Example:
        >>> mean, std, (lo, hi) = summarize([1.0, 2.0, 3.0])
        >>> mean, std, round(lo, 3), round(hi, 3)
        (2.0, 1.0, -0.484, 4.484)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise InvalidParameterError("summarize needs at least one value, got none.")
    if not 0 < confidence < 1:
        raise InvalidParameterError(
            f"The 'confidence' parameter of summarize must be in (0, 1), got {confidence!r}."
        )
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, (math.nan, math.nan)
    from scipy import stats

    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * std / math.sqrt(x.size)
    return mean, std, (mean - half, mean + half)


def check_curve(
    curve: Mapping[int, float],
    train: Mapping[int, float] | None = None,
    *,
    direction: str = "minimize",
    tolerance: float = CURVE_TOLERANCE,
) -> tuple[bool, bool]:
    """Flag a learning curve as overfitting and/or undertrained.

    * **Overfitting**: after its best point the validation metric worsens by more than
      ``tolerance`` of the curve's range, while the training metric (when given) keeps
      improving over the same stretch.
    * **Undertrained**: the best point is the last and the last quarter of the curve still
      gains more than ``tolerance`` of the range.

    Returns:
        ``(overfitting, undertrained)``; both ``False`` for curves of fewer than 4 points.

    Example:
        >>> check_curve({1: 1.0, 2: 0.5, 3: 0.4, 4: 0.6, 5: 0.8}, {1: 1.0, 2: 0.6, 3: 0.3,
        ...             4: 0.2, 5: 0.1})
        (True, False)
        >>> check_curve({1: 1.0, 2: 0.8, 3: 0.6, 4: 0.4, 5: 0.2})
        (False, True)
    """
    steps = sorted(curve)
    if len(steps) < 4:
        return False, False
    sign = 1.0 if direction == "minimize" else -1.0
    v = np.array([sign * curve[s] for s in steps])
    span = float(v.max() - v.min())
    if span <= 0:
        return False, False
    best = int(np.argmin(v))
    overfit = bool(best < len(v) - 1 and v[-1] - v[best] > tolerance * span)
    if overfit and train:
        t_steps = [s for s in sorted(train) if s >= steps[best]]
        if len(t_steps) >= 2:
            overfit = sign * (train[t_steps[-1]] - train[t_steps[0]]) < 0
    quarter = max(2, len(v) // 4)
    gain = float(v[-quarter] - v[-1])
    under = bool(best == len(v) - 1 and gain > tolerance * span)
    return overfit, under


def proxy_check(
    proxy: str, pairs: Sequence[tuple[float, float]], *, warn: bool = True
) -> ProxyCheck:
    """The pipeline's record of :func:`~tunecraft.strategy.check_proxy` over ``(proxy value,
    full value)`` pairs: a correlation that cannot be computed (fewer than 3 pairs, constant
    values) is recorded as unknown, without a warning.

    Example:
        >>> proxy_check("3 epochs", [(1, 1.5), (2, 2.5), (3, 3.5), (4, 4.5)]).correlation
        1.0
    """
    xs = [float(a) for a, _ in pairs]
    ys = [float(b) for _, b in pairs]
    if len(xs) < 3:
        return ProxyCheck(proxy, math.nan, len(xs))
    rho = rank_correlation(xs, ys)
    if warn and not math.isnan(rho):
        check_proxy(proxy, xs, ys, threshold=MIN_PROXY_CORRELATION)
    return ProxyCheck(proxy, rho, len(xs))

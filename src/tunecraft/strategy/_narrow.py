"""Narrowing a space after exploration: fix what does not matter, shrink what does.

The rule, applied to each parameter of the original space in order (parents first):

* **fixed** when its importance share is below ``min_importance`` (and it is not in ``keep``):
  at the user's default when one is given and lies in the domain, else at the best trial's
  value (for a conditional parameter, the best trial that sets it), else at the centre of its
  domain. The most important parameter is never fixed, so something is always searched.
* **narrowed** otherwise: a numeric range becomes the span of the values the top
  ``top_quantile`` of the trials used (with every trial that ties the last of them, so a
  choice among equal values is not made by the order of the trials), widened by ``margin`` of
  the original width on each side, on the parameter's own scale (log where log), inside the
  original bounds (:meth:`tunecraft.space.Param.narrow`); a choice keeps the options seen
  among those trials.
* **dropped** when it can no longer be active: its condition names a parent that was fixed at
  another value, or options the narrowed parent no longer offers.

A threshold on the share rather than a cumulative rule ("keep the parameters that explain 90 %")
because a share is what the importance reports and a user reads; with ``d`` parameters of equal
importance each has ``1/d``, so keep ``min_importance`` below ``1/d`` (the default 0.05 suits up
to about 15 parameters) or pass ``keep=``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunecraft._validation import check_choice, check_float
from tunecraft.exceptions import InvalidParameterError
from tunecraft.space import Categorical, Float, Int, Param, Space
from tunecraft.space._params import _choice_key
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["Narrowing", "narrow_space"]

_DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class Narrowing:
    """The result of :func:`narrow_space`: what is still searched, what was fixed, and why.

    Attributes:
        space: The narrowed space, holding only the parameters still searched.
        fixed: ``{name: value}`` of the parameters fixed (a fixed conditional parameter is
            only used when its condition holds).
        reasons: ``{name: sentence}`` for every parameter of the original space.
        original: The space before narrowing.
        importance: The importance shares the decision used (``None`` when none was given).
        settings: The rule's settings (``top_quantile``, ``min_importance``, ``margin``,
            ``n_top``, ``direction``).
    """

    space: Space
    fixed: dict[str, Any]
    reasons: dict[str, str]
    original: Space
    importance: dict[str, float] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def complete(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A full config of the original space: ``config`` (of the narrowed space) plus the
        fixed values whose condition holds.

        Example:
            >>> import tunecraft as tc
            >>> space = tc.Space({"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)})
            >>> pairs = [({"x": i / 9, "y": 0.5}, (i / 9 - 0.3) ** 2) for i in range(10)]
            >>> n = narrow_space(space, pairs, {"x": 0.99, "y": 0.01})
            >>> n.complete({"x": 0.25})
            {'x': 0.25, 'y': 0.5}
        """
        unknown = [k for k in config if k not in self.space.names]
        if unknown:
            raise InvalidParameterError(
                f"Narrowing.complete: '{unknown[0]}' is not searched in the narrowed space "
                f"(searched: {', '.join(self.space.names)})."
            )
        full: dict[str, Any] = {}
        for name in self.original.names:
            if not self.original.is_active(name, full):
                continue
            if name in config:
                full[name] = config[name]
            elif name in self.fixed:
                full[name] = self.fixed[name]
        return full

    def project(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The narrowed-space part of a full original config, or ``None`` when it falls outside
        the narrowed space (the fixed parameters are not compared). Use it to warm-start a
        search of the narrowed space from earlier trials."""
        part = {n: config[n] for n in self.space.names if n in config}
        part = {n: v for n, v in part.items() if self.space.is_active(n, part)}
        return part if self.space.contains(part) else None

    def describe(self) -> str:
        """One line per parameter: its name and what happened to it."""
        width = max(len(n) for n in self.reasons)
        return "\n".join(f"{n:<{width}}  {r}" for n, r in self.reasons.items())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (spaces in their notation)."""
        return {
            "original": self.original.to_dict(),
            "space": self.space.to_dict(),
            "fixed": {k: _plain(v) for k, v in self.fixed.items()},
            "reasons": dict(self.reasons),
            "importance": None if self.importance is None else dict(self.importance),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Narrowing:
        """Read what :meth:`to_dict` wrote."""
        try:
            imp = data.get("importance")
            return cls(
                space=Space.from_dict(data["space"]),
                fixed=dict(data["fixed"]),
                reasons=dict(data["reasons"]),
                original=Space.from_dict(data["original"]),
                importance=None if imp is None else {str(k): float(v) for k, v in imp.items()},
                settings=dict(data.get("settings") or {}),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidParameterError(
                f"Narrowing.from_dict: not a stored narrowing ({type(exc).__name__}: {exc})."
            ) from None


def narrow_space(
    space: Space | Mapping[str, Param | str],
    trials: Sequence[FrozenTrial] | Sequence[tuple[Mapping[str, Any], float]],
    importance: Mapping[str, float] | None,
    *,
    direction: str = "minimize",
    top_quantile: float = 0.25,
    min_importance: float = 0.05,
    margin: float = 0.1,
    defaults: Mapping[str, Any] | None = None,
    keep: Iterable[str] | None = None,
    min_top: int = 2,
    spread: Mapping[str, float] | None = None,
) -> Narrowing:
    """Fix the parameters that do not matter and narrow the others around the best trials.

    Args:
        space: The space the trials explored.
        trials: :class:`~tunecraft.FrozenTrial` records (complete ones with a finite value in
            ``space`` are used) or ``(config, value)`` pairs.
        importance: ``{name: share}``, such as :func:`tunecraft.analysis.importance` returns;
            ``None`` fixes nothing and only narrows. Missing names count as important.
        direction: ``"minimize"`` or ``"maximize"``.
        top_quantile: Share of the trials, best first, that the ranges are narrowed around
            (trials whose value ties the last of them are included).
        min_importance: Parameters with a smaller share are fixed.
        margin: Widening on each side, as a share of the original width on the unit-cube scale.
        defaults: ``{name: value}`` to fix parameters at instead of the best trial's value.
        keep: Names never fixed (still narrowed).
        min_top: At least this many trials define the ranges (when there are that many).
        spread: ``{name: uncertainty}`` of the shares, such as
            :attr:`~tunecraft.analysis.Importance.std` (the spread over the forest's trees).
            With it a parameter is fixed only when it is *confidently* unimportant:
            ``share + spread < min_importance``. From 20-30 short explore runs the shares are
            unstable (the same task's learning rate ranked first in one repetition, last in
            the next), and fixing on a share alone fixed parameters that mattered.

    Returns:
        A :class:`Narrowing`.

    Raises:
        InvalidParameterError: No usable trial, or an option out of range.

    Example:
        >>> import tunecraft as tc
        >>> space = tc.Space({"lr": tc.loguniform(1e-5, 1e-1), "wd": tc.uniform(0, 0.1)})
        >>> pairs = [({"lr": 10 ** -e, "wd": 0.05}, abs(e - 2.6)) for e in (1, 2, 3, 4, 5)]
        >>> n = narrow_space(space, pairs, {"lr": 0.97, "wd": 0.03}, top_quantile=0.4, margin=0.25)
        >>> n.fixed
        {'wd': 0.05}
        >>> print(n.describe())
        lr  narrowed to [0.0001, 0.1] around the top 40% (2 trials) (log scale) (importance 0.970)
        wd  fixed at best value 0.05: importance 0.030 < 0.05
    """
    owner = "narrow_space"
    check_choice(direction, "direction", owner, _DIRECTIONS)
    _check_share(top_quantile, "top_quantile", owner, open_low=True)
    _check_share(min_importance, "min_importance", owner, open_low=False)
    _check_share(margin, "margin", owner, open_low=False)
    if isinstance(min_top, bool) or not isinstance(min_top, int) or min_top < 1:
        raise InvalidParameterError(
            f"The 'min_top' parameter of {owner} must be an int >= 1, got {min_top!r}."
        )
    if not isinstance(space, Space):
        space = Space(space)
    keep_set = set(keep or ())
    unknown = sorted(keep_set - set(space.names))
    if unknown:
        raise InvalidParameterError(
            f"The 'keep' parameter of {owner} names '{unknown[0]}', which is not in the space."
        )
    defaults = dict(defaults or {})
    if importance is not None and not isinstance(importance, Mapping):
        raise TypeError(
            f"The 'importance' parameter of {owner} must be a mapping name -> share or None, "
            f"got {type(importance).__name__}."
        )

    ranked = _usable(trials, space, direction)
    if not ranked:
        raise InvalidParameterError(
            f"The 'trials' parameter of {owner} must hold at least one complete trial with a "
            "finite value inside the space, got none."
        )
    # ceil, but not of round-off: 0.07 * 100 is 7.000000000000001
    n_top = min(len(ranked), max(min_top, math.ceil(top_quantile * len(ranked) - 1e-9)))
    while n_top < len(ranked) and ranked[n_top][1] == ranked[n_top - 1][1]:
        n_top += 1  # a trial as good as the last of the top is in the top too
    top = [c for c, _ in ranked[:n_top]]
    pct = f"{100 * top_quantile:g}%"

    for n, v in (importance or {}).items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v):
            raise InvalidParameterError(
                f"The 'importance' parameter of {owner} must map names to numbers, got {v!r} "
                f"for {n!r}."
            )
    shares = {n: float(importance.get(n, math.inf)) for n in space.names} if importance else {}
    if spread is not None and not isinstance(spread, Mapping):
        raise TypeError(
            f"The 'spread' parameter of {owner} must be a mapping name -> number or None, "
            f"got {type(spread).__name__}."
        )
    for n, v in (spread or {}).items():
        check_float(v, f"spread[{n!r}]", owner, low=0)
    unsure = {n: float((spread or {}).get(n, 0.0)) for n in shares}
    to_fix = {n for n, s in shares.items() if s + unsure[n] < min_importance and n not in keep_set}
    always = None
    if importance:  # always search something: the most important parameter without a condition
        roots = [n for n in space.names if not space[n].condition]
        always = max(roots, key=lambda n: shares[n])
        to_fix.discard(always)

    new: dict[str, Param] = {}
    fixed: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    dropped: set[str] = set()
    for name in space.names:
        p = space[name]
        share = f"importance {shares[name]:.3f}" if name in shares else ""
        if p.condition:
            cond, why = _carry_condition(p.condition, new, fixed, dropped)
            if cond is None:
                dropped.add(name)
                reasons[name] = f"dropped: never active, {why}"
                continue
        if name in to_fix:
            value, source = _fixed_value(name, p, defaults, ranked)
            fixed[name] = value
            plus = f" + spread {unsure[name]:.3f}" if spread is not None else ""
            reasons[name] = f"fixed at {source} {value!r}: {share}{plus} < {min_importance:g}"
            continue
        values = [c[name] for c in top if name in c]
        if values:
            q = p.narrow(values, float(margin))
            reasons[name] = _narrow_reason(q, pct, n_top)
        else:
            q = p
            reasons[name] = f"kept its whole range: no trial of the top {pct} sets it"
        if name in keep_set and name in shares and shares[name] < min_importance:
            reasons[name] += f" (kept on request, {share})"
        elif (
            share
            and spread is not None
            and shares[name] < min_importance <= (shares[name] + unsure[name])
        ):
            reasons[name] += f" ({share}, kept: its spread {unsure[name]:.3f} is too large)"
        elif name == always and shares[name] + unsure[name] < min_importance:
            reasons[name] += f" ({share}, kept: the most important parameter is always searched)"
        elif share:
            reasons[name] += f" ({share})"
        if p.condition:
            q = q._replace_condition(cond or None)
        new[name] = q
    return Narrowing(
        space=Space(new),
        fixed=fixed,
        reasons=reasons,
        original=space,
        importance=None if importance is None else {n: float(importance[n]) for n in importance},
        settings={
            "direction": direction,
            "top_quantile": float(top_quantile),
            "min_importance": float(min_importance),
            "margin": float(margin),
            "n_top": n_top,
            "n_trials": len(ranked),
            "spread": spread is not None,
        },
    )


def _check_share(value: Any, name: str, owner: str, *, open_low: bool) -> None:
    check_float(value, name, owner)
    if not ((0 < value <= 1) if open_low else (0 <= value <= 1)):
        bounds = "in (0, 1]" if open_low else "in [0, 1]"
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be a number {bounds}, got {value!r}."
        )


def _usable(
    trials: Sequence[Any], space: Space, direction: str
) -> list[tuple[dict[str, Any], float]]:
    """Configs in ``space`` with their finite values, best first (stable on ties)."""
    if isinstance(trials, (str, bytes, Mapping)) or not isinstance(trials, Iterable):
        raise TypeError(
            "The 'trials' parameter of narrow_space must be a list of FrozenTrial or "
            f"(config, value) pairs, got {type(trials).__name__}."
        )
    out: list[tuple[dict[str, Any], float]] = []
    for i, t in enumerate(trials):
        if isinstance(t, FrozenTrial):
            if t.state is not TrialState.COMPLETE:
                continue
            config, value = t.config, t.value
        elif isinstance(t, (tuple, list)) and len(t) == 2 and isinstance(t[0], Mapping):
            config, value = t
        else:
            raise TypeError(
                "The 'trials' parameter of narrow_space must hold FrozenTrial or (config, value) "
                f"pairs, got {t!r} at position {i}."
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        if not math.isfinite(float(value)) or not space.contains(config):
            continue
        out.append((dict(config), float(value)))
    sign = 1.0 if direction == "minimize" else -1.0
    return sorted(out, key=lambda cv: sign * cv[1])


def _carry_condition(
    condition: Mapping[str, tuple[Any, ...]],
    new: Mapping[str, Param],
    fixed: Mapping[str, Any],
    dropped: set[str],
) -> tuple[dict[str, tuple[Any, ...]] | None, str]:
    """The condition in the narrowed space (``{}``: always active), or ``None`` and why not."""
    out: dict[str, tuple[Any, ...]] = {}
    for parent, values in condition.items():
        keys = {_choice_key(v) for v in values}
        if parent in dropped:
            return None, f"its parent '{parent}' was dropped"
        if parent in fixed:
            if _choice_key(fixed[parent]) not in keys:
                return None, f"'{parent}' is fixed at {fixed[parent]!r}"
            continue  # the fixed parent always satisfies this part
        kept = tuple(v for v in values if new[parent].contains(v))
        if not kept:
            return None, f"'{parent}' no longer takes {list(values)!r}"
        out[parent] = kept
    return out, ""


def _fixed_value(
    name: str,
    p: Param,
    defaults: Mapping[str, Any],
    ranked: Sequence[tuple[dict[str, Any], float]],
) -> tuple[Any, str]:
    if name in defaults and p.contains(defaults[name]):
        return defaults[name], "default value"
    for config, _ in ranked:  # best first
        if name in config:
            return config[name], "best value"
    return p.from_unit(0.5), "the centre of its range"


def _narrow_reason(q: Param, pct: str, n_top: int) -> str:
    trials = f"the top {pct} ({n_top} trial{'s' if n_top != 1 else ''})"
    if isinstance(q, Categorical):
        return f"kept choices {list(q.options)!r}, those of {trials}"
    assert isinstance(q, (Float, Int))
    scale = " (log scale)" if q.log else ""
    return f"narrowed to [{q.low:g}, {q.high:g}] around {trials}{scale}"


def _plain(value: Any) -> Any:
    """A JSON-native copy of a config value (numpy scalars become Python ones)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value

"""Hyperparameter importance: functional ANOVA on a random forest, and two cheaper measures.

The three methods fit the same surrogate, a scikit-learn random forest from the trials' unit-cube
coordinates (:meth:`tunecraft.space.Space.to_unit`, so a log-scaled parameter is seen on its log
scale and a choice as the index of its option) to their values:

* ``"fanova"``: functional ANOVA (Hutter, Hoos and Leyton-Brown, ICML 2014). Each tree cuts the
  unit cube into boxes with a constant prediction; the marginal of parameter ``j`` (the
  prediction averaged over all other parameters, uniformly on the unit cube) is then constant
  between the tree's thresholds on ``j``, and its variance over ``j`` is computed exactly from the
  boxes. A parameter's importance is that variance as a fraction of the tree's total variance,
  averaged over the trees. **Main effects only**: the variance of interactions is not attributed
  (:attr:`Importance.explained` says how much of the total the main effects cover).
* ``"permutation"``: how much the forest's fit (R^2 on the trials) drops when one parameter's
  column is shuffled (:func:`sklearn.inspection.permutation_importance`).
* ``"mdi"``: the forest's mean decrease in impurity, the cheapest.

Choices and ints are discrete: their marginal is taken over their values, each weighted by the
share of the unit interval it owns (equal for a choice or a linear int). An inactive conditional
parameter is imputed at the centre of the unit interval (as the model-based samplers do); the
decomposition is over the whole product space, so a conditional parameter's share is its effect
averaged over all configurations, smaller when it is seldom active, and the difference between
the branches is credited to the parent that switches it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tunecraft._validation import check_choice, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.space import Categorical, Int, Param, Space
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["METHODS", "Importance", "importance"]

#: The importance methods :func:`importance` offers.
METHODS = ("fanova", "permutation", "mdi")
_DIRECTIONS = ("minimize", "maximize")
_TARGETS = ("value", "rank")
#: An int with more values than this is treated as continuous by fANOVA.
_MAX_DISCRETE = 256


class Importance(Mapping[str, float]):
    """Importance of each hyperparameter: shares that sum to 1, most important first.

    A read-only mapping ``{name: share}``.

    Attributes:
        method: The method that computed it (``"fanova"``, ``"permutation"`` or ``"mdi"``).
        std: ``{name: spread}`` on the same scale as the shares: the standard deviation over
            the forest's trees (fANOVA, MDI) or over the shuffles (permutation).
        n_trials: Number of trials it was computed from.
        explained: For fANOVA, the fraction of the surrogate's variance that the main effects
            explain (averaged over trees); the rest comes from interactions. ``None`` otherwise.

    Example:
        >>> imp = Importance({"lr": 3.0, "wd": 1.0}, method="fanova")
        >>> dict(imp), imp.method, imp.ranking
        ({'lr': 0.75, 'wd': 0.25}, 'fanova', ['lr', 'wd'])
    """

    def __init__(
        self,
        scores: Mapping[str, float],
        *,
        method: str,
        std: Mapping[str, float] | None = None,
        n_trials: int = 0,
        explained: float | None = None,
    ) -> None:
        names = list(scores)
        raw = np.array([max(0.0, float(scores[n])) for n in names], dtype=float)
        if not names:
            raise InvalidParameterError("Importance: needs at least one parameter.")
        total = float(raw.sum())
        shares = raw / total if total > 0 else np.full(len(names), 1.0 / len(names))
        scale = 1.0 / total if total > 0 else 0.0
        order = sorted(range(len(names)), key=lambda i: -shares[i])  # stable: ties keep order
        self._shares = {names[i]: float(shares[i]) for i in order}
        self.std = {names[i]: float((std or {}).get(names[i], 0.0)) * scale for i in order}
        self.method = method
        self.n_trials = int(n_trials)
        self.explained = explained

    def __getitem__(self, name: str) -> float:
        return self._shares[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shares)

    def __len__(self) -> int:
        return len(self._shares)

    @property
    def ranking(self) -> list[str]:
        """Parameter names, most important first."""
        return list(self._shares)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record: method, shares, spreads, number of trials, explained variance."""
        return {
            "method": self.method,
            "importance": dict(self._shares),
            "std": dict(self.std),
            "n_trials": self.n_trials,
            "explained": self.explained,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Importance:
        """Read what :meth:`to_dict` wrote."""
        out = cls(
            data["importance"],
            method=str(data["method"]),
            n_trials=int(data.get("n_trials", 0)),
            explained=data.get("explained"),
        )
        # keep the stored numbers exactly (renormalizing would move the last digit)
        out._shares = {str(n): float(v) for n, v in data["importance"].items()}
        std = data.get("std") or {}
        out.std = {n: float(std.get(n, 0.0)) for n in out._shares}
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{n!r}: {v:.3f}" for n, v in self._shares.items())
        return f"Importance({{{body}}}, method={self.method!r})"


def importance(
    trials: Sequence[FrozenTrial] | Sequence[tuple[Mapping[str, Any], float]],
    space: Space | Mapping[str, Param | str],
    *,
    direction: str = "minimize",
    method: str = "fanova",
    seed: int = 0,
    n_trees: int = 64,
    min_samples_leaf: int = 1,
    max_depth: int | None = None,
    target: str = "value",
    n_repeats: int = 5,
) -> Importance:
    """How much each hyperparameter of ``space`` matters, from finished trials.

    Args:
        trials: :class:`~tunecraft.FrozenTrial` records (the complete ones with a finite value
            are used) or ``(config, value)`` pairs. A trial with a value outside ``space``
            (run in a wider space, before narrowing) is left out, as in
            :func:`~tunecraft.strategy.narrow_space`; keys that ``space`` does not name are
            ignored.
        space: The search space the configs come from.
        direction: ``"minimize"`` or ``"maximize"`` (matters only for ``target="rank"``,
            where the best trial gets rank 0).
        method: ``"fanova"`` (functional ANOVA, main effects), ``"permutation"`` or ``"mdi"``.
        seed: Seeds the forest (and the permutations).
        n_trees: Trees in the random forest.
        min_samples_leaf: The forest's minimum number of trials in a leaf.
        max_depth: The trees' maximum depth (``None``: unlimited).
        target: ``"value"`` fits the values themselves; ``"rank"`` fits their ranks, so a few
            disastrous trials do not dominate the variance.
        n_repeats: Shuffles per parameter for ``"permutation"``.

    Returns:
        An :class:`Importance`, shares summing to 1, most important first.

    Raises:
        InvalidParameterError: Fewer than 2 usable trials, or a bad option.

    Example:
        >>> import numpy as np, tunecraft as tc
        >>> space = tc.Space({"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)})
        >>> rng = np.random.default_rng(0)
        >>> configs = [space.sample(rng) for _ in range(40)]
        >>> pairs = [(c, 10 * c["x"] + 0.1 * c["y"]) for c in configs]
        >>> importance(pairs, space, n_trees=16).ranking
        ['x', 'y']
    """
    owner = "importance"
    check_choice(direction, "direction", owner, _DIRECTIONS)
    check_choice(method, "method", owner, METHODS)
    check_choice(target, "target", owner, _TARGETS)
    check_int(seed, "seed", owner, low=0)
    check_int(n_trees, "n_trees", owner, low=1)
    check_int(min_samples_leaf, "min_samples_leaf", owner, low=1)
    check_int(max_depth, "max_depth", owner, low=1, allow_none=True)
    check_int(n_repeats, "n_repeats", owner, low=1)
    if not isinstance(space, Space):
        space = Space(space)
    x, y = _collect(trials, space)
    if len(y) < 2:
        raise InvalidParameterError(
            "The 'trials' parameter of importance must hold at least 2 complete trials with "
            f"finite values inside the space, got {len(y)}."
        )
    if target == "rank":
        from scipy.stats import rankdata

        y = rankdata(y if direction == "minimize" else -y) - 1.0
    names = list(space.names)
    if float(np.ptp(y)) == 0.0:  # a constant objective: nothing to attribute
        return Importance(dict.fromkeys(names, 0.0), method=method, n_trials=len(y), explained=0.0)
    features = np.where(np.isnan(x), 0.5, x)

    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(
        n_estimators=n_trees,
        max_features=1.0,
        min_samples_leaf=min_samples_leaf,
        max_depth=max_depth,
        random_state=seed,
        n_jobs=1,
    )
    forest.fit(features, y)
    explained: float | None = None
    if method == "fanova":
        cdfs = [_Cdf(space[n]) for n in names]
        per_tree = []
        for est in forest.estimators_:
            fractions = _tree_main_effects(est.tree_, cdfs)
            if fractions is not None:
                per_tree.append(fractions)
        if not per_tree:  # every tree constant (bootstraps of near-constant data)
            return Importance(
                dict.fromkeys(names, 0.0), method=method, n_trials=len(y), explained=0.0
            )
        table = np.array(per_tree)
        mean, std = table.mean(axis=0), table.std(axis=0)
        explained = float(table.sum(axis=1).mean())
    elif method == "permutation":
        from sklearn.inspection import permutation_importance

        result = permutation_importance(
            forest, features, y, n_repeats=n_repeats, random_state=seed, n_jobs=1
        )
        mean, std = result.importances_mean, result.importances_std
    else:
        table = np.array([est.feature_importances_ for est in forest.estimators_])
        mean, std = forest.feature_importances_, table.std(axis=0)
    return Importance(
        {n: float(v) for n, v in zip(names, mean, strict=True)},
        method=method,
        std={n: float(v) for n, v in zip(names, std, strict=True)},
        n_trials=len(y),
        explained=explained,
    )


def _collect(trials: Sequence[Any], space: Space) -> tuple[np.ndarray, np.ndarray]:
    """Unit-cube coordinates (nan where inactive) and values of the usable trials."""
    if isinstance(trials, (str, bytes, Mapping)) or not isinstance(trials, Sequence | Iterator):
        raise TypeError(
            "The 'trials' parameter of importance must be a list of FrozenTrial or "
            f"(config, value) pairs, got {type(trials).__name__}."
        )
    rows: list[np.ndarray] = []
    values: list[float] = []
    for i, t in enumerate(trials):
        if isinstance(t, FrozenTrial):
            if t.state is not TrialState.COMPLETE or t.value is None:
                continue
            config, value = t.config, t.value
        elif (
            isinstance(t, (tuple, list))
            and len(t) == 2
            and isinstance(t[0], Mapping)
            and (t[1] is None or isinstance(t[1], numbers.Real))
        ):
            config, value = t
            if value is None:
                continue
        else:
            raise TypeError(
                f"The 'trials' parameter of importance must hold FrozenTrial or (config, value) "
                f"pairs, got {t!r} at position {i}."
            )
        if isinstance(value, bool) or not math.isfinite(float(value)):
            continue
        if not _inside(config, space):
            continue
        rows.append(space.to_unit(config))
        values.append(float(value))
    if not rows:
        return np.empty((0, len(space))), np.empty(0)
    return np.stack(rows), np.asarray(values, dtype=float)


def _inside(config: Mapping[str, Any], space: Space) -> bool:
    """Whether every active parameter ``config`` sets lies in its domain (a trial of a wider
    space, run before it was narrowed, is left out rather than clipped to the bounds)."""
    return all(
        space[n].contains(config[n])
        for n in space.names
        if n in config and space.is_active(n, config)
    )


class _Cdf:
    """The uniform measure of the unit cube seen along one parameter: ``F(x)`` is the share of
    the parameter's values with coordinate ``<= x`` (continuous for a float, a step function
    over the values of a choice or an int)."""

    def __init__(self, p: Param) -> None:
        self.points: np.ndarray | None = None
        self.cum: np.ndarray | None = None
        if isinstance(p, Categorical):
            k = len(p.options)
            self.points = (np.arange(k) + 0.5) / k
            weights = np.full(k, 1.0 / k)
        elif isinstance(p, Int) and p.n_values <= _MAX_DISCRETE:
            values = np.arange(p.low, p.high + 1, p.step, dtype=float)
            if p.log:
                a, b = p._a, p._b
                self.points = (np.log(values) - a) / (b - a)
                weights = (np.log(values + 0.5) - np.log(values - 0.5)) / (b - a)
            else:
                k = len(values)
                self.points = (np.arange(k) + 0.5) / k
                weights = np.full(k, 1.0 / k)
        else:
            return
        self.cum = np.concatenate([[0.0], np.cumsum(weights / weights.sum())])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.points is None or self.cum is None:
            return np.clip(x, 0.0, 1.0)
        return self.cum[np.searchsorted(self.points, x, side="right")]


def _tree_main_effects(tree: Any, cdfs: Sequence[_Cdf]) -> np.ndarray | None:
    """Fraction of one fitted tree's variance each parameter's main effect explains.

    Boxes are half-open ``(lo, hi]`` (scikit-learn sends ``x <= threshold`` left). ``None``
    when the tree predicts a constant.
    """
    d = len(cdfs)
    left, right = tree.children_left, tree.children_right
    feature, threshold = tree.feature, tree.threshold
    n = tree.node_count
    lo = np.full((n, d), -1.0)
    hi = np.full((n, d), 2.0)
    frontier = np.array([0])
    while frontier.size:  # one pass per depth level: parents are set before their children
        internal = frontier[left[frontier] != -1]
        if not internal.size:
            break
        lc, rc, f, th = left[internal], right[internal], feature[internal], threshold[internal]
        lo[lc], hi[lc] = lo[internal], hi[internal]
        lo[rc], hi[rc] = lo[internal], hi[internal]
        hi[lc, f] = np.minimum(hi[internal, f], th)
        lo[rc, f] = np.maximum(lo[internal, f], th)
        frontier = np.concatenate([lc, rc])
    leaves = np.flatnonzero(left == -1)
    lo, hi = lo[leaves], hi[leaves]
    pred = tree.value[leaves, 0, 0]
    meas = np.stack([cdfs[j](hi[:, j]) - cdfs[j](lo[:, j]) for j in range(d)], axis=1)
    vol = meas.prod(axis=1)
    total = vol.sum()
    if total <= 0:
        return None
    vol = vol / total
    mean = float(vol @ pred)
    var = float(vol @ (pred - mean) ** 2)
    if var <= 1e-300:
        return None
    out = np.zeros(d)
    split_nodes = left != -1
    for j in range(d):
        cuts = threshold[split_nodes & (feature == j)]
        if not cuts.size:
            continue  # the tree ignores j: its marginal is constant
        edges = np.unique(np.concatenate([[-1.0, 2.0], cuts]))
        cdf = cdfs[j](edges)
        weights = np.diff(cdf)
        keep = weights > 0
        a, b, w = edges[:-1][keep], edges[1:][keep], weights[keep]
        covers = (lo[:, j, None] <= a[None, :]) & (hi[:, j, None] >= b[None, :])
        others = np.prod(np.delete(meas, j, axis=1), axis=1) / total
        marginal = (pred * others) @ covers
        out[j] = float(w @ (marginal - mean) ** 2) / var
    return out

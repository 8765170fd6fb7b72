"""A vectorized view of the unit-cube transform for model-based samplers.

:class:`Encoder` turns points of ``[0, 1]^d`` (one coordinate per parameter, as
:meth:`Space.to_unit` writes them) into model features, many points at a time:

* numeric parameters (floats, ints) keep their coordinate, ints snapped to the centre of their
  bin (so the model sees exactly the values a trial can take); an inactive one is imputed 0.5;
* categorical parameters become the index of their option, ``-1`` when inactive;
* every conditional numeric parameter adds an "active" indicator, modelled as a two-valued
  categorical, so the model can tell "inactive" from "imputed at 0.5".

Conditions are evaluated on whole arrays, so candidates are encoded without a Python loop over
points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunecraft.space import Categorical, Int, Space
from tunecraft.space._params import _choice_key

__all__ = ["Encoder", "Features"]


@dataclass(frozen=True)
class Features:
    """Model features of ``m`` points.

    Attributes:
        cont: ``(m, n_cont)`` numeric coordinates in ``[0, 1]``, inactive ones at 0.5.
        cat: ``(m, n_cat)`` int codes: option indices (``-1`` inactive) then active indicators.
        active: ``(m, d)`` which parameters each point activates.
    """

    cont: np.ndarray
    cat: np.ndarray
    active: np.ndarray


class Encoder:
    """Vectorized encoding of a :class:`Space` for the GP and TPE samplers.

    Args:
        space: The search space.
    """

    def __init__(self, space: Space) -> None:
        self.space = space
        params = [space[n] for n in space.names]
        self.d = len(params)
        self.is_cat = np.array([isinstance(p, Categorical) for p in params], dtype=bool)
        self.num_idx = np.flatnonzero(~self.is_cat)
        self.cat_idx = np.flatnonzero(self.is_cat)
        self.n_options = np.array(
            [len(p.options) if isinstance(p, Categorical) else 0 for p in params], dtype=int
        )
        self.cond_num_idx = np.array([i for i in self.num_idx if params[i].condition], dtype=int)
        self.n_cont = len(self.num_idx)
        #: Number of values of each categorical feature (options, then 2 for indicators).
        self.cat_sizes = np.concatenate(
            [self.n_options[self.cat_idx], np.full(len(self.cond_num_idx), 2, dtype=int)]
        ).astype(int)
        self.n_cat = len(self.cat_sizes)
        self._cache: dict[tuple[int, int], tuple[dict[str, Any], np.ndarray]] = {}
        # Integer parameters: how to snap a coordinate to the centre of its bin.
        self._ints = [(i, p) for i, p in enumerate(params) if isinstance(p, Int)]
        # Conditions as (param index, [(parent index, allowed codes)]).
        index = {n: i for i, n in enumerate(space.names)}
        self._conditions: list[tuple[int, list[tuple[int, np.ndarray]]]] = []
        for i, p in enumerate(params):
            if not p.condition:
                continue
            parts = []
            for parent, values in p.condition.items():
                j = index[parent]
                parts.append((j, self._allowed_codes(params[j], values)))
            self._conditions.append((i, parts))

    # -- codes of parents --------------------------------------------------------------------
    @staticmethod
    def _allowed_codes(parent: Any, values: Sequence[Any]) -> np.ndarray:
        if isinstance(parent, Categorical):
            keys = {_choice_key(v) for v in values}
            return np.array(
                [k for k, o in enumerate(parent.options) if _choice_key(o) in keys], dtype=float
            )
        return np.array(sorted(int(v) for v in values), dtype=float)

    def _codes(self, j: int, u: np.ndarray) -> np.ndarray:
        """The value (int parent) or option index (categorical parent) of coordinates ``u``."""
        p = self.space[self.space.names[j]]
        if isinstance(p, Categorical):
            k = len(p.options)
            return np.minimum(k - 1, np.floor(np.clip(u, 0, 1) * k))
        assert isinstance(p, Int)
        return self._int_values(p, u)

    @staticmethod
    def _int_values(p: Int, u: np.ndarray) -> np.ndarray:
        u = np.clip(u, 0.0, 1.0)
        if p.log:
            v = np.rint(np.exp(p._a + u * (p._b - p._a)))
            return np.clip(v, p.low, p.high)
        k = np.minimum(p.n_values - 1, np.floor(u * p.n_values))
        return p.low + k * p.step

    # -- the transform -----------------------------------------------------------------------
    def snap(self, u: np.ndarray) -> np.ndarray:
        """Coordinates with every int and categorical moved to the centre of its bin."""
        u = np.clip(np.array(u, dtype=float), 0.0, 1.0)
        for i, p in self._ints:
            v = self._int_values(p, u[:, i])
            if p.log:
                u[:, i] = (np.log(v) - p._a) / (p._b - p._a)
            else:
                u[:, i] = ((v - p.low) / p.step + 0.5) / p.n_values
        for c in self.cat_idx:
            n_opt = int(self.n_options[c])
            u[:, c] = (np.minimum(n_opt - 1, np.floor(u[:, c] * n_opt)) + 0.5) / n_opt
        return u

    def active(self, u: np.ndarray) -> np.ndarray:
        """Which parameters points ``u`` (``(m, d)``, no nan needed) activate."""
        act = np.ones(u.shape, dtype=bool)
        for i, parts in self._conditions:  # parents come before children
            for j, allowed in parts:
                act[:, i] &= act[:, j] & np.isin(self._codes(j, u[:, j]), allowed)
        return act

    def features(self, u: np.ndarray, active: np.ndarray | None = None) -> Features:
        """Features of points ``u`` (``(m, d)``); nan coordinates count as inactive."""
        u = np.atleast_2d(np.asarray(u, dtype=float))
        if active is None:
            active = ~np.isnan(u) & self.active(np.nan_to_num(u, nan=0.5))
        filled = self.snap(np.where(active, u, 0.5))
        cont = np.where(active[:, self.num_idx], filled[:, self.num_idx], 0.5)
        cat = np.empty((u.shape[0], self.n_cat), dtype=np.int64)
        nc = len(self.cat_idx)
        if nc:
            codes = np.minimum(
                self.n_options[self.cat_idx] - 1,
                np.floor(filled[:, self.cat_idx] * self.n_options[self.cat_idx]),
            ).astype(np.int64)
            cat[:, :nc] = np.where(active[:, self.cat_idx], codes, -1)
        if len(self.cond_num_idx):
            cat[:, nc:] = active[:, self.cond_num_idx].astype(np.int64)
        return Features(cont=cont, cat=cat, active=active)

    def encode_configs(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(n, d)`` unit coordinates of configs, ``nan`` where a parameter is inactive."""
        if not configs:
            return np.empty((0, self.d))
        return np.stack([self.space.to_unit(c) for c in configs])

    def encode_trials(self, trials: Sequence[Any]) -> np.ndarray:
        """Like :meth:`encode_configs` for finished trials, with each trial's encoding cached
        (keyed by its id and number, checked against its config), so a suggestion does not
        re-encode the whole history in Python."""
        if not trials:
            return np.empty((0, self.d))
        rows = []
        for t in trials:
            key = (t.trial_id, t.number)
            hit = self._cache.get(key)
            if hit is None or hit[0] != t.config:
                hit = (dict(t.config), self.space.to_unit(t.config))
                self._cache[key] = hit
            rows.append(hit[1])
        return np.stack(rows)

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        """The config of one point (inactive coordinates ignored)."""
        u = np.where(np.isnan(u), 0.5, np.clip(u, 0.0, 1.0))
        return self.space.from_unit(u)

"""Exhaustive grid search."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tunecraft._validation import check_int
from tunecraft.exceptions import InvalidParameterError, SamplerExhaustedError
from tunecraft.samplers._base import History, Sampler
from tunecraft.space import Space

__all__ = ["GridSampler"]


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


class GridSampler(Sampler):
    """Every point of a grid, each once; the study stops when the grid is used up.

    Args:
        grid: ``None`` to build the grid from the space (every option of each choice and
            ``n_points`` values of each numeric parameter), a list of configs, or a dict
            ``{name: [values]}`` whose product is the grid.
        n_points: Values per numeric parameter when the grid comes from the space.
        shuffle: Visit the points in a seeded random order instead of the grid's order.
        seed: Seeds the shuffle.

    Points already tried, running or enqueued in the study are skipped, so parallel workers and
    a resumed study do not repeat them; of two workers that take the same point at the same
    moment the second moves on to the next (:attr:`~tunecraft.samplers.Sampler.avoids_twins`),
    or, when none is left, ends as an ask after the grid's end does (its trial is failed).
    """

    avoids_twins = True  # two workers with one history take the same next point

    def __init__(
        self,
        grid: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]] | None = None,
        *,
        n_points: int = 5,
        shuffle: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.n_points = check_int(n_points, "n_points", "GridSampler", low=1)
        self.shuffle = bool(shuffle)
        self._grid_spec = grid
        self._cache: tuple[Space, list[dict[str, Any]], list[str]] | None = None

    def points(self, space: Space) -> list[dict[str, Any]]:
        """The grid for ``space``, in visiting order."""
        if self._cache is not None and (self._cache[0] is space or self._cache[0] == space):
            return self._cache[1]
        spec = self._grid_spec
        # the space's own grid holds valid configs in the space's order; only a grid the user
        # gave is validated (a config at a time, which took most of the time of a large grid)
        from_space = spec is None
        if spec is None:
            points = space.grid(self.n_points)  # type: ignore[arg-type]
        elif isinstance(spec, Mapping):
            points = [{}]
            for name, values in spec.items():
                if name not in space:
                    raise InvalidParameterError(
                        f"GridSampler(grid=...): unknown parameter '{name}'; the space has "
                        f"{', '.join(space.names)}."
                    )
                if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                    raise InvalidParameterError(
                        f"GridSampler(grid=...): values of '{name}' must be a list."
                    )
                points = [{**p, name: v} for p in points for v in values]
            points = [{k: v for k, v in p.items() if space.is_active(k, p)} for p in points]
        else:
            points = [dict(p) for p in spec]
        seen: set[str] = set()
        unique, keys = [], []
        for p in points:
            config = p if from_space else space.validate(p)
            key = _key(config)
            if key not in seen:
                seen.add(key)
                unique.append(config)
                keys.append(key)
        if self.shuffle:
            order = np.random.default_rng(self._entropy).permutation(len(unique))
            unique, keys = [unique[i] for i in order], [keys[i] for i in order]
        self._cache = (space, unique, keys)
        return unique

    def _next(self, space: Space, history: History) -> dict[str, Any] | None:
        """The first point no trial (finished, running or waiting) has used."""
        points = self.points(space)
        assert self._cache is not None
        memo = ("GridSampler.used", id(self))
        used = history.memo.get(memo)
        if used is None:  # once per history: is_exhausted and suggest of one ask share it
            used = history.memo[memo] = {_key(t.config) for t in history.trials}
        for point, key in zip(points, self._cache[2], strict=True):
            if key not in used:
                return point
        return None

    def is_exhausted(self, space: Space, history: History) -> bool:
        return self._next(space, history) is None

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        point = self._next(space, history)
        if point is None:
            raise SamplerExhaustedError(
                f"The grid of {len(self.points(space))} points is exhausted."
            )
        return dict(point)

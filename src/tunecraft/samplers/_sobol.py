"""Scrambled Sobol quasi-random search."""

from __future__ import annotations

import warnings
from typing import Any

from tunecraft.samplers._base import History, Sampler
from tunecraft.space import Space

__all__ = ["SobolSampler"]


class SobolSampler(Sampler):
    """Points of a scrambled Sobol sequence (scipy), one per trial number.

    Trial ``n`` gets point ``n`` of the sequence, so parallel workers and a resumed study keep
    covering the cube evenly instead of repeating its first points. Categorical and integer
    parameters take the bin their coordinate falls in; conditional parameters use their own
    coordinate when active.

    Args:
        seed: Seeds the scrambling.
        scramble: Use Owen scrambling (recommended; without it the first point is the origin).
    """

    def __init__(self, *, seed: int | None = None, scramble: bool = True) -> None:
        super().__init__(seed=seed)
        self.scramble = bool(scramble)
        self._engine: Any = None
        self._engine_key: tuple[int, ...] | None = None
        self._position = 0

    def _point(self, dim: int, index: int) -> Any:
        from scipy.stats import qmc

        if self._engine_key != (dim,) or index < self._position:
            self._engine = qmc.Sobol(dim, scramble=self.scramble, seed=self._entropy)
            self._engine_key = (dim,)
            self._position = 0
        if index > self._position:
            self._engine.fast_forward(index - self._position)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "balance properties" for n=1
            point = self._engine.random(1)[0]
        self._position = index + 1
        return point

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        return space.from_unit(self._point(len(space), number))

    def warm_up(self, space: Space, history: History) -> None:
        # scipy.stats takes most of a second (more on a busy machine) to import the first
        # time: without this, the first trial's duration included it.
        from scipy.stats import qmc  # noqa: F401

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_engine=None, _engine_key=None, _position=0)
        return state

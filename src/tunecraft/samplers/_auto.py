"""The default sampler: picks an algorithm from the space and the study's progress."""

from __future__ import annotations

from typing import Any

from tunecraft.samplers._base import History, Sampler
from tunecraft.samplers._sobol import SobolSampler
from tunecraft.space import Space

__all__ = ["AutoSampler"]


class AutoSampler(Sampler):
    """The sampler a study uses when none is named.

    Rule (documented so results can be explained): every trial is drawn from a scrambled Sobol
    sequence, which covers the space more evenly than independent random draws for the same
    number of trials. Model-based samplers will take over after the quasi-random start once they
    are registered; :meth:`choose` is where that rule lives.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._sobol = SobolSampler(seed=self._entropy)

    def choose(self, space: Space, history: History) -> Sampler:
        """The sampler that proposes the next config."""
        return self._sobol

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        return self.choose(space, history).suggest(space, history, number)

"""Uniform random search."""

from __future__ import annotations

from typing import Any

from tunecraft.samplers._base import History, Sampler
from tunecraft.space import Space

__all__ = ["RandomSampler"]


class RandomSampler(Sampler):
    """Independent uniform draws in the unit-cube encoding (log-uniform for log parameters).

    Example:
        >>> import tunecraft as tc
        >>> study = tc.Study({"x": tc.uniform(0, 1)}, sampler=tc.make_sampler("random", seed=0))
    """

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        return space.sample(self.rng(number))

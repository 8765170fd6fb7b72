"""Samplers: random, Sobol, grid and the automatic choice, built by name with make_sampler."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tunecraft._registry import Registry
from tunecraft.samplers._auto import AutoSampler
from tunecraft.samplers._base import History, Sampler
from tunecraft.samplers._gp import GPSampler
from tunecraft.samplers._grid import GridSampler
from tunecraft.samplers._random import RandomSampler
from tunecraft.samplers._sobol import SobolSampler
from tunecraft.samplers._tpe import TPESampler

__all__ = [
    "AutoSampler",
    "GPSampler",
    "GridSampler",
    "History",
    "RandomSampler",
    "Sampler",
    "SobolSampler",
    "TPESampler",
    "available_samplers",
    "make_sampler",
    "register_sampler",
]

_REGISTRY: Registry[Sampler] = Registry(
    "sampler", "The 'name' parameter of make_sampler must be one of {known}, got {name}."
)


def register_sampler(name: str, factory: Callable[..., Sampler]) -> None:
    """Make ``make_sampler(name, seed=s, options=o)`` build ``factory(seed=s, **o)``."""
    _REGISTRY.register(name, factory)


def available_samplers() -> list[str]:
    """Names :func:`make_sampler` accepts."""
    return _REGISTRY.names()


def make_sampler(
    name: str, *, seed: int | None = None, options: Mapping[str, Any] | None = None
) -> Sampler:
    """Build a sampler by name.

    Args:
        name: One of :func:`available_samplers` (``"random"``, ``"sobol"``, ``"grid"``,
            ``"auto"``...).
        seed: Seeds the sampler's generator.
        options: Keyword arguments of the sampler's class (not mutated), for example
            ``{"n_points": 3}`` for ``"grid"``.

    Example:
        >>> import tunecraft as tc
        >>> tc.make_sampler("sobol", seed=0)
        SobolSampler(seed=0)
    """
    return _REGISTRY.make(name, seed=seed, options=options)


register_sampler("random", RandomSampler)
register_sampler("sobol", SobolSampler)
register_sampler("grid", GridSampler)
register_sampler("auto", AutoSampler)
register_sampler("gp", GPSampler)
register_sampler("tpe", TPESampler)

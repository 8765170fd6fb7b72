"""Schedulers: stop, pause and resume trials on their intermediate values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tunecraft._registry import Registry
from tunecraft.schedulers._auto import AutoScheduler, RungCheck
from tunecraft.schedulers._base import Decision, Resume, Scheduler
from tunecraft.schedulers._halving import ASHAScheduler, SuccessiveHalvingScheduler
from tunecraft.schedulers._hyperband import HyperbandScheduler
from tunecraft.schedulers._median import MedianScheduler, PercentileScheduler
from tunecraft.schedulers._pbt import PBTScheduler

__all__ = [
    "ASHAScheduler",
    "AutoScheduler",
    "Decision",
    "HyperbandScheduler",
    "MedianScheduler",
    "PBTScheduler",
    "PercentileScheduler",
    "Resume",
    "RungCheck",
    "Scheduler",
    "SuccessiveHalvingScheduler",
    "available_schedulers",
    "make_scheduler",
    "register_scheduler",
]

_REGISTRY: Registry[Scheduler] = Registry(
    "scheduler",
    "The 'scheduler' parameter must be None, a Scheduler or one of: {known}; got {name}.",
)


def register_scheduler(name: str, factory: Callable[..., Scheduler]) -> None:
    """Make ``make_scheduler(name, seed=s, options=o)`` build ``factory(seed=s, **o)``."""
    _REGISTRY.register(name, factory)


def available_schedulers() -> list[str]:
    """Names :func:`make_scheduler` accepts."""
    return _REGISTRY.names()


def make_scheduler(
    name: str, *, seed: int | None = None, options: Mapping[str, Any] | None = None
) -> Scheduler:
    """Build a scheduler by name (``options`` are its keyword arguments, not mutated)."""
    return _REGISTRY.make(name, seed=seed, options=options)


register_scheduler("median", MedianScheduler)
register_scheduler("percentile", PercentileScheduler)
register_scheduler("halving", SuccessiveHalvingScheduler)
register_scheduler("asha", ASHAScheduler)
register_scheduler("hyperband", HyperbandScheduler)


def _bohb(**options: Any) -> Scheduler:
    """Model-based Hyperband: :class:`HyperbandScheduler` with ``model_based=True``."""
    return HyperbandScheduler(**{"model_based": True, **options})


register_scheduler("bohb", _bohb)
register_scheduler("pbt", PBTScheduler)
register_scheduler("auto", AutoScheduler)

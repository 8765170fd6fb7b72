"""Schedulers: stop, pause and resume trials on their intermediate values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tunecraft.exceptions import InvalidParameterError
from tunecraft.schedulers._base import Decision, Resume, Scheduler
from tunecraft.schedulers._halving import ASHAScheduler, SuccessiveHalvingScheduler
from tunecraft.schedulers._hyperband import HyperbandScheduler
from tunecraft.schedulers._median import MedianScheduler, PercentileScheduler
from tunecraft.schedulers._pbt import PBTScheduler

__all__ = [
    "ASHAScheduler",
    "Decision",
    "HyperbandScheduler",
    "MedianScheduler",
    "PBTScheduler",
    "PercentileScheduler",
    "Resume",
    "Scheduler",
    "SuccessiveHalvingScheduler",
    "available_schedulers",
    "make_scheduler",
    "register_scheduler",
]

_REGISTRY: dict[str, Callable[..., Scheduler]] = {}


def register_scheduler(name: str, factory: Callable[..., Scheduler]) -> None:
    """Make ``make_scheduler(name, ...)`` build ``factory(seed=..., **options)``."""
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"Scheduler names must be non-empty str, got {name!r}.")
    _REGISTRY[name.lower()] = factory


def available_schedulers() -> list[str]:
    """Names :func:`make_scheduler` accepts."""
    return sorted(_REGISTRY)


def make_scheduler(
    name: str, *, seed: int | None = None, options: Mapping[str, Any] | None = None
) -> Scheduler:
    """Build a scheduler by name (``options`` are its keyword arguments, not mutated)."""
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        known = ", ".join(repr(n) for n in available_schedulers()) or "none registered yet"
        raise InvalidParameterError(
            f"The 'scheduler' parameter must be None, a Scheduler or one of: {known}; "
            f"got {name!r}."
        )
    try:
        return _REGISTRY[name.lower()](seed=seed, **dict(options or {}))
    except TypeError as exc:
        raise InvalidParameterError(f"make_scheduler({name!r}): {exc}.") from None


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

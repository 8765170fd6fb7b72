"""Argument checks shared by every public entry point: one message style everywhere.

Messages read: ``The 'n_trials' parameter of Study.optimize must be an int >= 1, got 0.``
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from tunecraft.exceptions import InvalidParameterError


def _fail(name: str, owner: str, must: str, value: Any, exc: type[Exception]) -> None:
    raise exc(f"The '{name}' parameter of {owner} must be {must}, got {value!r}.")


def check_int(
    value: Any,
    name: str,
    owner: str,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """Check an int argument (bool is rejected) and its range."""
    if value is None and allow_none:
        return None
    must = (
        "an int"
        + (f" >= {low}" if low is not None else "")
        + (f" <= {high}" if high is not None else "")
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, owner, must, value, TypeError)
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(name, owner, must, value, InvalidParameterError)
    return int(value)


def check_float(
    value: Any,
    name: str,
    owner: str,
    *,
    low: float | None = None,
    low_inclusive: bool = True,
    allow_none: bool = False,
) -> float | None:
    """Check a finite real argument and an optional lower bound."""
    if value is None and allow_none:
        return None
    bound = ""
    if low is not None:
        bound = f" {'>=' if low_inclusive else '>'} {low}"
    must = f"a finite number{bound}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, owner, must, value, TypeError)
    value = float(value)
    if not math.isfinite(value):
        _fail(name, owner, must, value, InvalidParameterError)
    if low is not None and (value < low or (not low_inclusive and value == low)):
        _fail(name, owner, must, value, InvalidParameterError)
    return value


def check_choice(value: Any, name: str, owner: str, allowed: tuple[Any, ...]) -> Any:
    """Check that ``value`` is one of ``allowed``."""
    if value not in allowed:
        must = "one of " + ", ".join(repr(a) for a in allowed)
        _fail(name, owner, must, value, InvalidParameterError)
    return value

"""Search spaces: parameter domains, conditions, the unit-cube transform, notation."""

from tunecraft.space._notation import parse
from tunecraft.space._params import (
    Categorical,
    Float,
    Int,
    Param,
    choice,
    integer,
    loguniform,
    uniform,
)
from tunecraft.space._space import Space

__all__ = [
    "Categorical",
    "Float",
    "Int",
    "Param",
    "Space",
    "choice",
    "integer",
    "loguniform",
    "parse",
    "uniform",
]

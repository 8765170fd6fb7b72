"""Parameter types: one class a type, options instead of siblings.

Every parameter maps its values to one coordinate of the unit interval and back. That map is
the single transform every sampler uses, so samplers never branch on parameter types:

* a float is linear in ``[low, high]`` or, with ``log=True``, linear in ``[log low, log high]``;
* an int is cut into equal bins, one per allowed value (in log space when ``log=True``), and a
  value encodes to the centre of its bin;
* a choice is cut into one bin per option, in the order given.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

from tunecraft.exceptions import InvalidParameterError

__all__ = ["Categorical", "Float", "Int", "Param", "choice", "integer", "loguniform", "uniform"]

ChoiceValue: TypeAlias = str | int | float | bool | None
Condition: TypeAlias = Mapping[str, tuple[ChoiceValue, ...]]

_ALLOWED_CHOICE_TYPES = (str, int, float, bool, type(None))


def _fmt(x: float) -> str:
    """Format a bound the way people write it: ``1e-05``, ``0.1``, ``3``."""
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e15):
        return str(int(x))
    return repr(float(x))


def _finite_real(value: Any, what: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: {name} must be a real number, got {value!r}.")
    if not math.isfinite(float(value)):
        raise InvalidParameterError(f"{what}: {name} must be finite, got {value!r}.")
    return float(value)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.float64(0.1)`` -> ``0.1``, as
    ``np.linspace`` and ``np.arange`` give them); any other value unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _choice_key(value: ChoiceValue) -> tuple[str, ChoiceValue]:
    """A key that tells ``True`` from ``1`` and ``1`` from ``1.0`` (a numpy scalar counts as
    the Python value it holds)."""
    value = _plain(value)
    return (type(value).__name__, value)


class Param(ABC):
    """A hyperparameter's domain. Instances are immutable and compare by value.

    A parameter may be conditional: ``condition`` maps the name of another parameter to the
    values for which this one is active (``tc.uniform(0.5, 0.99).when(optimizer="sgd")``).
    """

    condition: Condition | None

    @abstractmethod
    def to_unit(self, value: Any) -> float:
        """Encode ``value`` to a coordinate in ``[0, 1]``."""

    @abstractmethod
    def from_unit(self, u: float) -> Any:
        """Decode a coordinate in ``[0, 1]`` to a value of the domain."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in the domain (with the right type)."""

    @abstractmethod
    def grid(self, n_points: int) -> list[Any]:
        """At most ``n_points`` values spread over the domain (all values of a choice)."""

    @abstractmethod
    def notation(self) -> str:
        """The domain in the notation people write, such as ``log-uniform(1e-05, 0.01)``."""

    @abstractmethod
    def narrow(self, values: Sequence[Any], margin: float) -> Param:
        """A domain around ``values``, widened by ``margin`` of this width, inside this one."""

    @abstractmethod
    def _replace_condition(self, condition: Condition | None) -> Param:
        """A copy of this parameter with another condition."""

    @property
    def n_values(self) -> float:
        """Number of distinct values (``inf`` for a float)."""
        return math.inf

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw a value uniformly in the unit-cube encoding."""
        return self.from_unit(float(rng.random()))

    def when(self, **condition: ChoiceValue | Iterable[ChoiceValue]) -> Param:
        """Make the parameter active only when other parameters take given values.

        Example:
            >>> import tunecraft as tc
            >>> space = tc.Space({
            ...     "optimizer": tc.choice(["sgd", "adam"]),
            ...     "momentum": tc.uniform(0.5, 0.99).when(optimizer="sgd"),
            ... })

        A list or tuple of values means "any of these".
        """
        if not condition:
            raise InvalidParameterError("when(): give at least one parent=value condition.")
        parsed: dict[str, tuple[ChoiceValue, ...]] = {}
        for parent, values in condition.items():
            if isinstance(values, (list, tuple, set, frozenset)):
                vals = tuple(_plain(v) for v in values)
            else:
                vals = (_plain(values),)
            if not vals:
                raise InvalidParameterError(
                    f"when({parent}=...): give at least one value of '{parent}'."
                )
            parsed[parent] = vals
        merged = dict(self.condition or {})
        merged.update(parsed)
        return self._replace_condition(merged)

    def _condition_eq(self, other: Param) -> bool:
        a = {k: tuple(_choice_key(v) for v in vs) for k, vs in (self.condition or {}).items()}
        b = {k: tuple(_choice_key(v) for v in vs) for k, vs in (other.condition or {}).items()}
        return a == b

    def __repr__(self) -> str:
        cond = ""
        if self.condition:
            cond = ".when(" + ", ".join(f"{k}={list(v)!r}" for k, v in self.condition.items())
            cond += ")"
        return f"<{self.notation()}{cond}>"


class Float(Param):
    """A real-valued parameter in ``[low, high]``, linear or log-scaled.

    Prefer the constructors :func:`uniform` and :func:`loguniform`.
    """

    def __init__(
        self, low: float, high: float, *, log: bool = False, condition: Condition | None = None
    ) -> None:
        what = f"{'loguniform' if log else 'uniform'}(low={low!r}, high={high!r})"
        self.low = _finite_real(low, what, "low")
        self.high = _finite_real(high, what, "high")
        if self.low >= self.high:
            raise InvalidParameterError(f"{what}: low must be < high.")
        if log and self.low <= 0:
            raise InvalidParameterError(f"{what}: low must be > 0 for a log scale.")
        if not math.isfinite(self.high - self.low):
            raise InvalidParameterError(f"{what}: high - low must be a finite number.")
        self.log = bool(log)
        self.condition = dict(condition) if condition else None
        if log:
            self._a, self._b = math.log(self.low), math.log(self.high)
            if self._a >= self._b:  # bounds a few ulps apart: no room on the log axis
                raise InvalidParameterError(f"{what}: high must be further above low.")
        else:
            self._a, self._b = self.low, self.high

    def to_unit(self, value: Any) -> float:
        x = math.log(value) if self.log else float(value)
        return min(1.0, max(0.0, (x - self._a) / (self._b - self._a)))

    def from_unit(self, u: float) -> float:
        u = min(1.0, max(0.0, float(u)))
        x = self._a + u * (self._b - self._a)
        v = math.exp(x) if self.log else x
        return min(self.high, max(self.low, v))

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        return self.low <= float(value) <= self.high

    def grid(self, n_points: int) -> list[Any]:
        if n_points == 1:
            return [self.from_unit(0.5)]
        # dict.fromkeys: a range a few ulps wide has fewer distinct values than points
        return list(dict.fromkeys(self.from_unit(i / (n_points - 1)) for i in range(n_points)))

    def notation(self) -> str:
        kind = "log-uniform" if self.log else "uniform"
        return f"{kind}({_fmt(self.low)}, {_fmt(self.high)})"

    def narrow(self, values: Sequence[Any], margin: float) -> Float:
        us = [self.to_unit(v) for v in values]
        lo, hi = max(0.0, min(us) - margin), min(1.0, max(us) + margin)
        if hi - lo < 1e-9:  # one value and no margin: keep a sliver around it
            lo, hi = max(0.0, lo - 1e-3), min(1.0, hi + 1e-3)
        # Round to 10 significant digits so bounds read as people write them (3, not
        # 3.0000000000000004), only outwards (the configs stay inside), then clip to this range.
        exact_low, exact_high = self.from_unit(lo), self.from_unit(hi)
        new_low, new_high = float(f"{exact_low:.10g}"), float(f"{exact_high:.10g}")
        new_low = max(self.low, new_low if new_low <= exact_low else exact_low)
        new_high = min(self.high, new_high if new_high >= exact_high else exact_high)
        new_low, new_high = min(new_low, *values), max(new_high, *values)  # despite round-off
        if new_low >= new_high:
            new_low, new_high = self.low, self.high
        return Float(new_low, new_high, log=self.log, condition=self.condition)

    def _replace_condition(self, condition: Condition | None) -> Float:
        return Float(self.low, self.high, log=self.log, condition=condition)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Float)
            and (self.low, self.high, self.log) == (other.low, other.high, other.log)
            and self._condition_eq(other)
        )

    def __hash__(self) -> int:
        return hash(("float", self.low, self.high, self.log))


class Int(Param):
    """An integer parameter in ``[low, high]`` (both inclusive), with a step or a log scale.

    Prefer the constructor :func:`integer`.
    """

    def __init__(
        self,
        low: int,
        high: int,
        *,
        log: bool = False,
        step: int = 1,
        condition: Condition | None = None,
    ) -> None:
        what = f"integer(low={low!r}, high={high!r}"
        what += (", log=True" if log else "") + (f", step={step!r}" if step != 1 else "") + ")"
        for name, v in (("low", low), ("high", high), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{what}: {name} must be an int, got {v!r}.")
        self.low, self.high, self.step = int(low), int(high), int(step)
        if self.low >= self.high:
            raise InvalidParameterError(f"{what}: low must be < high.")
        if self.step < 1:
            raise InvalidParameterError(f"{what}: step must be >= 1.")
        if (self.high - self.low) % self.step:
            raise InvalidParameterError(
                f"{what}: step must divide high - low = {self.high - self.low}."
            )
        if log and self.low <= 0:
            raise InvalidParameterError(f"{what}: low must be > 0 for a log scale.")
        if log and self.step != 1:
            raise InvalidParameterError(f"{what}: a log scale needs step=1.")
        self.log = bool(log)
        self.condition = dict(condition) if condition else None
        self._n = (self.high - self.low) // self.step + 1
        if self.log:
            # Bin edges at half-integers in log space: each integer owns its share of the log axis.
            self._a, self._b = math.log(self.low - 0.5), math.log(self.high + 0.5)

    @property
    def n_values(self) -> float:
        return self._n

    def to_unit(self, value: Any) -> float:
        if self.log:
            return min(1.0, max(0.0, (math.log(value) - self._a) / (self._b - self._a)))
        k = (int(value) - self.low) / self.step
        return min(1.0, max(0.0, (k + 0.5) / self._n))

    def from_unit(self, u: float) -> int:
        u = min(1.0, max(0.0, float(u)))
        if self.log:
            v = round(math.exp(self._a + u * (self._b - self._a)))
            return min(self.high, max(self.low, v))
        k = min(self._n - 1, int(u * self._n))
        return self.low + k * self.step

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        v = int(value)
        return self.low <= v <= self.high and (v - self.low) % self.step == 0

    def grid(self, n_points: int) -> list[Any]:
        if n_points >= self._n:
            return [self.low + k * self.step for k in range(self._n)]
        if n_points == 1:
            return [self.from_unit(0.5)]
        out: list[int] = []
        for i in range(n_points):
            u = i / (n_points - 1)
            v = self.from_unit(u) if self.log else self.low + round(u * (self._n - 1)) * self.step
            if v not in out:
                out.append(v)
        return out

    def notation(self) -> str:
        args = f"{self.low}, {self.high}"
        if self.log:
            return f"log-int({args})"
        if self.step != 1:
            args += f", step={self.step}"
        return f"int({args})"

    def narrow(self, values: Sequence[Any], margin: float) -> Int:
        us = [self.to_unit(v) for v in values]
        lo_v = self.from_unit(max(0.0, min(us) - margin))
        hi_v = self.from_unit(min(1.0, max(us) + margin))
        lo_v, hi_v = min(lo_v, min(values)), max(hi_v, max(values))
        if lo_v >= hi_v:  # a single value: keep one step on each side inside the bounds
            lo_v, hi_v = max(self.low, lo_v - self.step), min(self.high, hi_v + self.step)
        return Int(lo_v, hi_v, log=self.log, step=self.step, condition=self.condition)

    def _replace_condition(self, condition: Condition | None) -> Int:
        return Int(self.low, self.high, log=self.log, step=self.step, condition=condition)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Int)
            and (self.low, self.high, self.log, self.step)
            == (other.low, other.high, other.log, other.step)
            and self._condition_eq(other)
        )

    def __hash__(self) -> int:
        return hash(("int", self.low, self.high, self.log, self.step))


class Categorical(Param):
    """A choice among options (str, int, float, bool or None), in the order given.

    Prefer the constructor :func:`choice`.
    """

    def __init__(self, options: Sequence[ChoiceValue], *, condition: Condition | None = None):
        if isinstance(options, (str, bytes)) or not isinstance(options, Iterable):
            raise TypeError(f"choice(options={options!r}): options must be a list of values.")
        opts = tuple(_plain(o) for o in options)
        what = f"choice(options={list(opts)!r})"
        if not opts:
            raise InvalidParameterError(f"{what}: options must not be empty.")
        keys = []
        for o in opts:
            if not isinstance(o, _ALLOWED_CHOICE_TYPES):
                raise TypeError(
                    f"{what}: options must be str, int, float, bool or None, "
                    f"got {type(o).__name__} {o!r}."
                )
            if isinstance(o, float) and not math.isfinite(o):
                raise InvalidParameterError(f"{what}: options must be finite, got {o!r}.")
            keys.append(_choice_key(o))
        if len(set(keys)) != len(keys):
            dup = next(o for o, k in zip(opts, keys, strict=True) if keys.count(k) > 1)
            raise InvalidParameterError(f"{what}: options must be distinct, {dup!r} repeats.")
        self.options = opts
        self._index = {k: i for i, k in enumerate(keys)}
        self.condition = dict(condition) if condition else None

    @property
    def n_values(self) -> float:
        return len(self.options)

    def index(self, value: Any) -> int:
        """Position of ``value`` among the options."""
        try:
            return self._index[_choice_key(value)]
        except (KeyError, TypeError):
            raise InvalidParameterError(
                f"{value!r} is not one of the options {list(self.options)!r}."
            ) from None

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.options)

    def from_unit(self, u: float) -> ChoiceValue:
        u = min(1.0, max(0.0, float(u)))
        return self.options[min(len(self.options) - 1, int(u * len(self.options)))]

    def contains(self, value: Any) -> bool:
        try:
            return _choice_key(value) in self._index
        except TypeError:
            return False

    def grid(self, n_points: int) -> list[Any]:
        return list(self.options)

    def notation(self) -> str:
        return "choice(" + ", ".join(_choice_repr(o) for o in self.options) + ")"

    def narrow(self, values: Sequence[Any], margin: float) -> Categorical:
        seen = {_choice_key(v) for v in values}
        kept = [o for o in self.options if _choice_key(o) in seen]
        return Categorical(kept or self.options, condition=self.condition)

    def _replace_condition(self, condition: Condition | None) -> Categorical:
        return Categorical(self.options, condition=condition)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Categorical)
            and [_choice_key(o) for o in self.options] == [_choice_key(o) for o in other.options]
            and self._condition_eq(other)
        )

    def __hash__(self) -> int:
        return hash(("choice", tuple(_choice_key(o) for o in self.options)))


def _choice_repr(value: ChoiceValue) -> str:
    """Write an option so that :func:`tunecraft.space.parse` reads back the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    from tunecraft.space._notation import needs_quotes

    if not needs_quotes(value):
        return value
    # Escape only what the parser unescapes (backslash and the quote): repr() would also write
    # \n or \t, which the parser reads back as the letters n and t.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def uniform(low: float, high: float) -> Float:
    """A float sampled uniformly in ``[low, high]``.

    Example:
        >>> import tunecraft as tc
        >>> tc.uniform(0.0, 0.1)
        <uniform(0, 0.1)>
    """
    return Float(low, high, log=False)


def loguniform(low: float, high: float) -> Float:
    """A float in ``[low, high]`` sampled uniformly on a log scale (``low > 0``).

    Example:
        >>> import tunecraft as tc
        >>> tc.loguniform(1e-5, 1e-2)
        <log-uniform(1e-05, 0.01)>
    """
    return Float(low, high, log=True)


def integer(low: int, high: int, *, log: bool = False, step: int = 1) -> Int:
    """An int in ``[low, high]``, both ends inclusive, on a grid of ``step`` or a log scale.

    Example:
        >>> import tunecraft as tc
        >>> tc.integer(1, 8)
        <int(1, 8)>
    """
    return Int(low, high, log=log, step=step)


def choice(options: Sequence[ChoiceValue]) -> Categorical:
    """One of ``options`` (str, int, float, bool or None), order kept.

    Example:
        >>> import tunecraft as tc
        >>> tc.choice([32, 64, 128])
        <choice(32, 64, 128)>
    """
    return Categorical(options)

"""The search space: named parameters, their conditions, and the unit-cube transform."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tunecraft.exceptions import InvalidParameterError
from tunecraft.space._notation import parse
from tunecraft.space._params import Categorical, Int, Param, _choice_key, _plain

__all__ = ["Space"]

_CONDITIONAL_KEYS = {"distribution", "when"}


class Space(Mapping[str, Param]):
    """An ordered mapping of parameter names to domains.

    Parameters are kept in an order where every parent comes before the parameters conditioned
    on it; the unit-cube encoding has one coordinate per parameter in that order
    (:attr:`names`). An inactive parameter encodes to ``nan`` and is absent from a config.

    Args:
        params: ``{name: domain}``; a domain is a :class:`Param` (``tc.uniform(0, 1)``) or a
            string in the notation (``"uniform(0, 1)"``).

    Example:
        >>> import numpy as np, tunecraft as tc
        >>> space = tc.Space({"lr": tc.loguniform(1e-5, 1e-2), "layers": tc.integer(1, 8)})
        >>> config = space.sample(np.random.default_rng(0))
        >>> space.contains(config)
        True
    """

    def __init__(self, params: Mapping[str, Param | str]) -> None:
        if isinstance(params, Space):
            params = dict(params.items())
        if not isinstance(params, Mapping):
            raise TypeError(
                f"Space(params=...) must be a dict of name -> domain, got {type(params).__name__}."
            )
        if not params:
            raise InvalidParameterError("Space(params=...): a space needs at least one parameter.")
        resolved: dict[str, Param] = {}
        for name, p in params.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"Space: parameter names must be non-empty str, got {name!r}.")
            if isinstance(p, str):
                try:
                    p = parse(p)
                except InvalidParameterError as exc:
                    raise InvalidParameterError(f"Space: parameter '{name}': {exc}") from None
            if not isinstance(p, Param):
                raise TypeError(
                    f"Space: parameter '{name}' must be a domain such as tc.uniform(0, 1), "
                    f"got {p!r}."
                )
            resolved[name] = p
        self._params = {n: resolved[n] for n in _topological_order(resolved)}
        self.names: tuple[str, ...] = tuple(self._params)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.is_conditional = any(p.condition for p in self._params.values())

    # -- Mapping -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return self.names == other.names and all(self[n] == other[n] for n in self.names)

    def __hash__(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        return f"Space({self.to_dict()!r})"

    # -- conditions ----------------------------------------------------------------------------
    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether parameter ``name`` is active given the (partial) ``config`` of its parents."""
        cond = self._params[name].condition
        if not cond:
            return True
        for parent, values in cond.items():
            if parent not in config:
                return False
            key = _choice_key(config[parent])
            if key not in {_choice_key(v) for v in values}:
                return False
        return True

    def active_mask(self, config: Mapping[str, Any]) -> np.ndarray:
        """A boolean vector over :attr:`names`: which parameters ``config`` activates."""
        return np.array([self.is_active(n, config) for n in self.names], dtype=bool)

    # -- sampling and the transform --------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw a config uniformly in the unit-cube encoding; inactive parameters are left out."""
        return self.from_unit(rng.random(len(self.names)))

    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """Encode a config to a point of ``[0, 1]^d`` (``nan`` where a parameter is inactive)."""
        out = np.full(len(self.names), np.nan)
        for i, (name, p) in enumerate(self._params.items()):
            if name in config and self.is_active(name, config):
                out[i] = p.to_unit(config[name])
        return out

    def from_unit(self, x: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Decode a point of ``[0, 1]^d`` to a config; coordinates of inactive parameters are
        ignored (``nan`` is allowed there)."""
        x = np.asarray(x, dtype=float)
        if x.shape != (len(self.names),):
            raise InvalidParameterError(
                f"Space.from_unit: expected a vector of length {len(self.names)}, got shape "
                f"{x.shape}."
            )
        config: dict[str, Any] = {}
        for name, p, u in zip(self.names, self._params.values(), x.tolist(), strict=True):
            if not self.is_active(name, config):
                continue
            if math.isnan(u):
                raise InvalidParameterError(
                    f"Space.from_unit: coordinate of active parameter '{name}' is nan."
                )
            config[name] = p.from_unit(u)
        return config

    # -- checks --------------------------------------------------------------------------------
    def contains(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` has exactly the active parameters, each inside its domain."""
        return self._problem(config) is None

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return a copy of ``config`` in the space's order, numpy scalars turned into the
        Python values they hold, or raise naming what is wrong."""
        problem = self._problem(config)
        if problem:
            raise InvalidParameterError(f"Config {dict(config)!r} is not in the space: {problem}.")
        return {n: _plain(config[n]) for n in self.names if n in config}

    def _problem(self, config: Mapping[str, Any]) -> str | None:
        if not isinstance(config, Mapping):
            return f"expected a dict, got {type(config).__name__}"
        unknown = [k for k in config if k not in self._params]
        if unknown:
            return f"unknown parameter '{unknown[0]}'"
        for name, p in self._params.items():
            active = self.is_active(name, config)
            if active and name not in config:
                return f"'{name}' is missing"
            if not active and name in config:
                return f"'{name}' is inactive for this config and must be left out"
            if active and not p.contains(config[name]):
                return f"'{name}'={config[name]!r} is outside {p.notation()}"
        return None

    # -- grids and narrowing ---------------------------------------------------------------------
    def grid(self, n_points: int = 5) -> list[dict[str, Any]]:
        """Every combination of the parameters' grids (``n_points`` per numeric parameter),
        with inactive parameters left out and no combination repeated."""
        if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
            raise InvalidParameterError(
                f"The 'n_points' parameter of Space.grid must be an int >= 1, got {n_points!r}."
            )
        configs: list[dict[str, Any]] = [{}]
        for name, p in self._params.items():
            values = p.grid(n_points)
            nxt: list[dict[str, Any]] = []
            for c in configs:
                if self.is_active(name, c):
                    nxt.extend({**c, name: v} for v in values)
                else:
                    nxt.append(c)
            configs = nxt
        return configs

    def narrow(self, configs: Sequence[Mapping[str, Any]], *, margin: float = 0.1) -> Space:
        """A space around ``configs`` (for example the best trials), inside this one.

        Numeric ranges span the values seen, widened on each side by ``margin`` of this space's
        width in the unit-cube encoding (so on a log scale for log parameters); choices keep the
        options seen. A parameter no config sets keeps its domain.

        Example:
            >>> import tunecraft as tc
            >>> space = tc.Space({"x": tc.uniform(0, 10)})
            >>> space.narrow([{"x": 4.0}, {"x": 6.0}], margin=0.1)["x"]
            <uniform(3, 7)>
        """
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float))
            or not (0 <= margin <= 1)
        ):
            raise InvalidParameterError(
                f"The 'margin' parameter of Space.narrow must be a number in [0, 1], "
                f"got {margin!r}."
            )
        configs = list(configs)
        if not configs:
            raise InvalidParameterError(
                "The 'configs' parameter of Space.narrow must hold at least one config, got []."
            )
        for c in configs:
            self.validate(c)
        new: dict[str, Param] = {}
        for name, p in self._params.items():
            values = [c[name] for c in configs if name in c]
            p = p.narrow(values, float(margin)) if values else p
            if p.condition:
                # Keep only the parent values the narrowed parents still take; a parameter whose
                # parent no longer takes any of them can never be active and is dropped.
                cond = {
                    parent: tuple(v for v in vs if new[parent].contains(v))
                    for parent, vs in p.condition.items()
                    if parent in new
                }
                if len(cond) < len(p.condition) or not all(cond.values()):
                    continue
                p = p._replace_condition(cond)
            new[name] = p
        return Space(new)

    # -- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{name: "log-uniform(1e-05, 0.01)"}``; a conditional parameter becomes
        ``{"distribution": ..., "when": {parent: [values]}}``."""
        out: dict[str, Any] = {}
        for name, p in self._params.items():
            if p.condition:
                out[name] = {
                    "distribution": p.notation(),
                    "when": {k: list(v) for k, v in p.condition.items()},
                }
            else:
                out[name] = p.notation()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        """Read the form :meth:`to_dict` writes (and YAML files hold)."""
        if not isinstance(data, Mapping):
            raise InvalidParameterError(
                f"A space must be a mapping of name -> domain, got {type(data).__name__}."
            )
        params: dict[str, Param] = {}
        for name, spec in data.items():
            if isinstance(spec, Mapping):
                unknown = set(spec) - _CONDITIONAL_KEYS
                if any(isinstance(k, str) and k.strip().endswith(")") for k in unknown):
                    raise InvalidParameterError(
                        f"Space: parameter '{name}': inside {{...}} YAML splits at each comma; "
                        "quote the domain (distribution: 'uniform(0, 1)') or write the mapping "
                        "one key a line."
                    )
                if unknown:
                    raise InvalidParameterError(
                        f"Space: parameter '{name}' has unknown key '{sorted(unknown)[0]}'; "
                        "allowed keys are 'distribution' and 'when'."
                    )
                if "distribution" not in spec:
                    raise InvalidParameterError(
                        f"Space: parameter '{name}' needs a 'distribution' such as "
                        "'uniform(0, 1)'."
                    )
                try:
                    p = parse(spec["distribution"])
                except InvalidParameterError as exc:
                    raise InvalidParameterError(f"Space: parameter '{name}': {exc}") from None
                when = spec.get("when")
                if when is not None:
                    if not isinstance(when, Mapping) or not when:
                        raise InvalidParameterError(
                            f"Space: parameter '{name}': 'when' must map a parent to its values."
                        )
                    p = p.when(**{str(k): v for k, v in when.items()})
                params[str(name)] = p
            else:
                params[str(name)] = spec
        return cls(params)

    def to_json(self) -> str:
        """The space as JSON text."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Space:
        """Read a space written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        """The space as YAML text."""
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, text: str) -> Space:
        """Read a space from YAML text."""
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidParameterError(f"Space: invalid YAML: {exc}".splitlines()[0]) from None
        return cls.from_dict(data)


def _topological_order(params: Mapping[str, Param]) -> list[str]:
    """Order names so parents come first (keeping the given order otherwise); check conditions."""
    for name, p in params.items():
        for parent, values in (p.condition or {}).items():
            if parent not in params:
                raise InvalidParameterError(
                    f"Space: parameter '{name}' is conditioned on '{parent}', which is not in the"
                    " space."
                )
            if parent == name:
                raise InvalidParameterError(f"Space: parameter '{name}' is conditioned on itself.")
            parent_p = params[parent]
            if not isinstance(parent_p, (Categorical, Int)):
                raise InvalidParameterError(
                    f"Space: parameter '{name}' is conditioned on '{parent}', which must be a"
                    " choice or an int to be compared with given values."
                )
            for v in values:
                if not parent_p.contains(v):
                    raise InvalidParameterError(
                        f"Space: parameter '{name}' is conditioned on {parent}={v!r}, which "
                        f"{parent_p.notation()} never takes."
                    )
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, path: tuple[str, ...]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = " -> ".join((*path, n))
            raise InvalidParameterError(f"Space: conditions form a cycle: {cycle}.")
        state[n] = 1
        for parent in params[n].condition or {}:
            visit(parent, (*path, n))
        state[n] = 2
        order.append(n)

    for n in params:
        visit(n, ())
    return order

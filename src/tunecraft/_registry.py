"""Name -> factory registries, shared by samplers and schedulers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from tunecraft.exceptions import InvalidParameterError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories by lower-case name; ``make`` calls ``factory(seed=seed, **options)``.

    Args:
        kind: What the registry holds (``"sampler"``), for messages.
        unknown: Message for an unknown name, formatted with ``known`` and ``name``.
    """

    def __init__(self, kind: str, unknown: str) -> None:
        self.kind = kind
        self._unknown = unknown
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T]) -> None:
        """Make ``make(name, ...)`` build ``factory(seed=..., **options)``."""
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(
                f"{self.kind.capitalize()} names must be non-empty str, got {name!r}."
            )
        self._factories[name.lower()] = factory

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def make(self, name: str, *, seed: int | None, options: Mapping[str, Any] | None) -> T:
        """Build by name. Unknown names and options are ``InvalidParameterError``s; a
        ``TypeError`` raised by the factory itself (a bad seed type, say) passes through."""
        if not isinstance(name, str) or name.lower() not in self._factories:
            known = ", ".join(repr(n) for n in self.names()) or "none registered yet"
            raise InvalidParameterError(self._unknown.format(known=known, name=repr(name)))
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(
                f"The 'options' parameter of make_{self.kind} must be a dict, got {options!r}."
            )
        kwargs = dict(options or {})
        factory = self._factories[name.lower()]
        try:
            inspect.signature(factory).bind(seed=seed, **kwargs)
        except TypeError as exc:
            raise InvalidParameterError(
                f"make_{self.kind}({name!r}, options={kwargs!r}): {str(exc).rstrip('.')}."
            ) from None
        return factory(seed=seed, **kwargs)

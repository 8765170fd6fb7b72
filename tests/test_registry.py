"""The name registries behind make_sampler and make_scheduler."""

from __future__ import annotations

from typing import Any

import pytest

from tunecraft._registry import Registry
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers import make_sampler
from tunecraft.schedulers import make_scheduler


class _Thing:
    def __init__(self, *, seed: int | None = None, size: int = 1) -> None:
        if not isinstance(size, int):
            raise TypeError("size must be an int")
        self.seed, self.size = seed, size


def test_make_builds_with_seed_and_options_without_mutating_them() -> None:
    reg: Registry[_Thing] = Registry("thing", "unknown {name}; known: {known}")
    reg.register("Thing", _Thing)
    options: dict[str, Any] = {"size": 3}
    thing = reg.make("THING", seed=7, options=options)
    assert (thing.seed, thing.size) == (7, 3)
    assert options == {"size": 3}
    assert reg.names() == ["thing"]


def test_unknown_names_and_options_are_bad_input_but_inner_type_errors_pass() -> None:
    reg: Registry[_Thing] = Registry("thing", "unknown {name}; known: {known}")
    with pytest.raises(InvalidParameterError, match="unknown 'x'; known: none registered yet"):
        reg.make("x", seed=None, options=None)
    reg.register("thing", _Thing)
    with pytest.raises(InvalidParameterError, match=r"make_thing\('thing'.*colour"):
        reg.make("thing", seed=None, options={"colour": "red"})
    with pytest.raises(TypeError, match="size must be an int") as info:
        reg.make("thing", seed=None, options={"size": "big"})
    assert not isinstance(info.value, InvalidParameterError)
    with pytest.raises(TypeError, match="'options' parameter of make_thing"):
        reg.make("thing", seed=None, options=[("size", 2)])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="non-empty str"):
        reg.register("", _Thing)


def test_samplers_and_schedulers_share_the_rules() -> None:
    with pytest.raises(InvalidParameterError, match="'name' parameter of make_sampler"):
        make_sampler("nope")
    with pytest.raises(InvalidParameterError, match="'scheduler' parameter must be None"):
        make_scheduler("nope")
    with pytest.raises(InvalidParameterError, match=r"make_scheduler\('asha'.*bogus"):
        make_scheduler("asha", options={"bogus": 1})

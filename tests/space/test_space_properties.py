"""Property tests: the unit-cube transform over randomly generated spaces."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import tunecraft as tc
from tunecraft.space import Categorical, Float, Int

_BOUND = 1e6


@st.composite
def floats(draw: st.DrawFn) -> Float:
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(1e-12, _BOUND))
        high = draw(st.floats(low, _BOUND * 10).filter(lambda h: math.log(h) > math.log(low)))
        return tc.loguniform(low, high)
    low = draw(st.floats(-_BOUND, _BOUND))
    high = draw(st.floats(low, _BOUND * 2).filter(lambda h: h > low))
    return tc.uniform(low, high)


@st.composite
def integers(draw: st.DrawFn) -> Int:
    if draw(st.booleans()):
        low = draw(st.integers(1, 10**6))
        return tc.integer(low, low + draw(st.integers(1, 10**6)), log=True)
    low = draw(st.integers(-(10**6), 10**6))
    step = draw(st.integers(1, 50))
    return tc.integer(low, low + step * draw(st.integers(1, 10**4)), step=step)


OPTIONS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


@st.composite
def choices(draw: st.DrawFn) -> Categorical:
    opts = draw(
        st.lists(OPTIONS, min_size=1, max_size=6, unique_by=lambda o: (type(o).__name__, o))
    )
    return tc.choice(opts)


@st.composite
def spaces(draw: st.DrawFn) -> tc.Space:
    """1-6 parameters; some conditioned on an earlier choice or int."""
    n = draw(st.integers(1, 6))
    params: dict[str, Any] = {}
    for i in range(n):
        p = draw(st.one_of(floats(), integers(), choices()))
        parents = [k for k, v in params.items() if isinstance(v, (Categorical, Int))]
        if parents and draw(st.booleans()):
            parent = draw(st.sampled_from(parents))
            pp = params[parent]
            values = pp.options if isinstance(pp, Categorical) else (pp.low, pp.high)
            chosen = draw(
                st.lists(
                    st.sampled_from(values),
                    min_size=1,
                    unique_by=lambda o: (type(o).__name__, o),
                )
            )
            p = p.when(**{parent: chosen})
        params[f"p{i}"] = p
    return tc.Space(params)


def _same(a: dict[str, Any], b: dict[str, Any], space: tc.Space) -> bool:
    if set(a) != set(b):
        return False
    for k, v in a.items():
        if isinstance(space[k], Float):
            if not (type(b[k]) is float and math.isclose(v, b[k], rel_tol=1e-9, abs_tol=1e-12)):
                return False
        elif type(v) is not type(b[k]) or v != b[k]:
            return False
    return True


@given(spaces(), st.integers(0, 2**32 - 1))
def test_from_unit_of_to_unit_gives_the_config_back(space: tc.Space, seed: int) -> None:
    config = space.sample(np.random.default_rng(seed))
    assert space.contains(config)
    back = space.from_unit(space.to_unit(config))
    assert _same(config, back, space), (config, back)


@given(spaces(), st.data())
def test_to_unit_of_from_unit_stays_in_the_unit_cube(space: tc.Space, data: st.DataObject) -> None:
    u = data.draw(st.lists(st.floats(0, 1), min_size=len(space), max_size=len(space)))
    config = space.from_unit(u)
    x = space.to_unit(config)
    for name, xi in zip(space.names, x, strict=True):
        if name in config:
            assert 0.0 <= xi <= 1.0
        else:
            assert math.isnan(xi)
    # and decoding again is stable: the encoding of a value decodes to that value
    assert _same(config, space.from_unit(x), space)


@given(spaces(), st.data())
def test_from_unit_of_any_point_is_in_the_space(space: tc.Space, data: st.DataObject) -> None:
    u = data.draw(
        st.lists(st.floats(-2, 3, allow_nan=False), min_size=len(space), max_size=len(space))
    )
    config = space.from_unit(u)
    assert space.contains(config), (u, config)
    for name in space.names:
        assert (name in config) == space.is_active(name, config)


@given(spaces())
def test_every_grid_point_is_in_the_space_and_unique(space: tc.Space) -> None:
    grid = space.grid(2)
    assert all(space.contains(c) for c in grid)
    keys = [tuple((k, type(v).__name__, v) for k, v in c.items()) for c in grid]
    assert len(set(keys)) == len(keys)


@given(spaces(), st.integers(0, 2**32 - 1), st.floats(0, 1))
def test_narrow_is_inside_the_original_space(space: tc.Space, seed: int, margin: float) -> None:
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(3)]
    narrow = space.narrow(configs, margin=margin)
    assert set(narrow.names) <= set(space.names)
    for c in configs:
        assert narrow.contains(c)
    for c in [narrow.sample(rng) for _ in range(5)]:
        assert space.contains(c)


@given(spaces())
def test_serialization_round_trips(space: tc.Space) -> None:
    assert tc.Space.from_json(space.to_json()) == space
    assert tc.Space.from_yaml(space.to_yaml()) == space

"""Parameter domains: constructors, the unit-interval transform, membership, grids."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

import tunecraft as tc
from tunecraft.space import Categorical, Float, Int


def test_constructors_build_one_class_per_type_with_options() -> None:
    u, lu = tc.uniform(0, 0.1), tc.loguniform(1e-5, 1e-2)
    assert isinstance(u, Float) and not u.log and (u.low, u.high) == (0.0, 0.1)
    assert isinstance(lu, Float) and lu.log and (lu.low, lu.high) == (1e-5, 1e-2)
    i = tc.integer(1, 8)
    assert isinstance(i, Int) and (i.low, i.high, i.step, i.log) == (1, 8, 1, False)
    assert tc.integer(0, 12, step=4).n_values == 4
    assert tc.integer(1, 64, log=True).log
    c = tc.choice([32, 64, 128, 256])
    assert isinstance(c, Categorical) and c.options == (32, 64, 128, 256)


def test_repr_uses_the_notation() -> None:
    assert repr(tc.loguniform(1e-5, 1e-2)) == "<log-uniform(1e-05, 0.01)>"
    assert repr(tc.uniform(0, 0.1)) == "<uniform(0, 0.1)>"
    assert repr(tc.integer(1, 8)) == "<int(1, 8)>"
    assert repr(tc.integer(0, 10, step=2)) == "<int(0, 10, step=2)>"
    assert repr(tc.integer(1, 8, log=True)) == "<log-int(1, 8)>"
    assert repr(tc.choice([32, 64, 128, 256])) == "<choice(32, 64, 128, 256)>"
    assert repr(tc.uniform(0, 1).when(opt="sgd")) == "<uniform(0, 1).when(opt=['sgd'])>"


def test_params_compare_by_value_including_condition() -> None:
    assert tc.uniform(0, 1) == tc.uniform(0.0, 1.0)
    assert tc.uniform(0, 1) != tc.loguniform(0.5, 1)
    assert tc.integer(1, 8) != tc.integer(1, 8, log=True)
    assert tc.choice([1, True]) != tc.choice([True, 1])
    assert tc.choice([1]) != tc.choice([1.0])
    assert tc.uniform(0, 1).when(a="x") != tc.uniform(0, 1).when(a="y")
    assert tc.uniform(0, 1).when(a="x") == tc.uniform(0, 1).when(a=["x"])


def test_integer_bounds_are_inclusive_and_respect_step() -> None:
    p = tc.integer(2, 10, step=4)
    assert p.grid(100) == [2, 6, 10]
    assert [p.from_unit(u) for u in (0.0, 0.34, 0.67, 1.0)] == [2, 6, 10, 10]
    assert p.contains(6) and p.contains(np.int64(10))
    assert not p.contains(4) and not p.contains(6.0) and not p.contains(True)
    assert not p.contains(14)


def test_float_contains_checks_type_and_bounds() -> None:
    p = tc.uniform(-1, 1)
    assert p.contains(-1) and p.contains(1.0) and p.contains(np.float32(0.5))
    assert not p.contains(1.0001) and not p.contains(True) and not p.contains("0.5")
    assert not p.contains(None)


def test_choice_tells_bools_ints_floats_and_none_apart() -> None:
    p = tc.choice([1, True, 1.5, None, "1"])
    assert p.n_values == 5
    assert [p.index(v) for v in (1, True, 1.5, None, "1")] == [0, 1, 2, 3, 4]
    assert not p.contains(1.0) and not p.contains(False) and not p.contains(["1"])
    with pytest.raises(ValueError, match=r"not one of the options"):
        p.index(2)


def test_choice_maps_one_bin_per_option_in_order() -> None:
    p = tc.choice(["a", "b", "c", "d"])
    assert [p.to_unit(o) for o in "abcd"] == [0.125, 0.375, 0.625, 0.875]
    assert [p.from_unit(u) for u in (0.0, 0.26, 0.5, 0.99, 1.0)] == ["a", "b", "c", "d", "d"]
    assert p.grid(2) == ["a", "b", "c", "d"]  # every option, whatever n_points


def test_loguniform_is_linear_in_log_space() -> None:
    p = tc.loguniform(1e-4, 1.0)
    assert p.from_unit(0.5) == pytest.approx(1e-2)
    assert p.to_unit(1e-3) == pytest.approx(0.25)
    assert p.grid(5) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    draws = [p.sample(np.random.default_rng(i)) for i in range(400)]
    assert statistics.median(math.log10(d) for d in draws) == pytest.approx(-2, abs=0.3)


def test_log_integer_gives_each_value_its_share_of_the_log_axis() -> None:
    p = tc.integer(1, 1000, log=True)
    rng = np.random.default_rng(0)
    draws = [p.sample(rng) for _ in range(2000)]
    assert all(type(d) is int and 1 <= d <= 1000 for d in draws)
    small = sum(d <= 10 for d in draws) / len(draws)
    assert small == pytest.approx(math.log(10.5 / 0.5) / math.log(1000.5 / 0.5), abs=0.05)
    assert p.from_unit(0.0) == 1 and p.from_unit(1.0) == 1000


def test_from_unit_clamps_out_of_range_coordinates() -> None:
    assert tc.uniform(0, 1).from_unit(-0.5) == 0.0
    assert tc.uniform(0, 1).from_unit(1.5) == 1.0
    assert tc.integer(1, 3).from_unit(7.0) == 3
    assert tc.choice(["x", "y"]).from_unit(-1.0) == "x"


def test_numeric_grids_span_the_domain() -> None:
    assert tc.uniform(0, 1).grid(3) == [0.0, 0.5, 1.0]
    assert tc.uniform(0, 1).grid(1) == [0.5]
    assert tc.integer(0, 100).grid(3) == [0, 50, 100]
    assert tc.integer(1, 3).grid(10) == [1, 2, 3]  # never more points than values
    log_grid = tc.integer(1, 100, log=True).grid(3)
    assert log_grid[0] == 1 and log_grid[-1] == 100 and 5 <= log_grid[1] <= 15


def test_when_merges_conditions_and_accepts_lists() -> None:
    p = tc.uniform(0, 1).when(opt=["sgd", "rmsprop"]).when(layers=2)
    assert p.condition == {"opt": ("sgd", "rmsprop"), "layers": (2,)}
    assert tc.uniform(0, 1).condition is None  # when() returned a copy


def test_numpy_scalars_count_as_the_python_values_they_hold() -> None:
    """``choice(list(np.linspace(...)))`` kept numpy floats, whose notation
    ``choice(np.float64(0.1), ...)`` read back as strings; ``np.int64(2)`` was "outside"
    ``choice(1, 2, 3)`` and ``np.arange`` options a TypeError."""
    c = tc.choice(list(np.linspace(0.1, 0.3, 3)))
    assert c.notation() == "choice(0.1, 0.2, 0.3)"
    assert all(type(o) is float for o in c.options)
    assert tc.Space.from_yaml(tc.Space({"c": c}).to_yaml())["c"].options == (0.1, 0.2, 0.3)
    assert tc.choice(np.arange(3)).options == (0, 1, 2)
    assert tc.choice([np.True_, np.str_("a")]).options == (True, "a")
    ints = tc.choice([1, 2, 3])
    assert ints.contains(np.int64(2)) and ints.index(np.int64(3)) == 2
    assert not ints.contains(np.float64(2.0)) and not ints.contains(np.True_)
    space = tc.Space({"c": ints, "n": tc.integer(1, 8), "m": tc.uniform(0, 1).when(c=np.int64(1))})
    config = space.validate({"c": np.int64(1), "n": np.int64(4), "m": np.float32(0.5)})
    assert config == {"c": 1, "n": 4, "m": 0.5}
    assert [type(v) for v in config.values()] == [int, int, float]
    assert space.to_dict()["m"]["when"] == {"c": [1]}

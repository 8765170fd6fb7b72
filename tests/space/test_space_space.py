"""The Space: sampling, conditions, the unit-cube transform, membership, grids, narrowing."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError


@pytest.fixture
def space() -> tc.Space:
    return tc.Space(
        {
            "momentum": tc.uniform(0.5, 0.99).when(optimizer="sgd"),  # before its parent
            "optimizer": tc.choice(["sgd", "adam"]),
            "lr": tc.loguniform(1e-5, 1e-2),
            "layers": tc.integer(1, 4),
            "width": tc.integer(8, 256, log=True).when(layers=[2, 3, 4]),
        }
    )


def test_parents_come_before_children(space: tc.Space) -> None:
    assert space.names.index("optimizer") < space.names.index("momentum")
    assert space.names.index("layers") < space.names.index("width")
    assert set(space.names) == {"momentum", "optimizer", "lr", "layers", "width"}
    assert space.is_conditional and not tc.Space({"x": tc.uniform(0, 1)}).is_conditional


def test_string_domains_are_parsed() -> None:
    space = tc.Space({"lr": "log-uniform(1e-5, 1e-2)", "n": "int(1, 8)"})
    assert space["lr"] == tc.loguniform(1e-5, 1e-2)
    assert space["n"] == tc.integer(1, 8)


def test_sample_gives_configs_in_the_space_with_active_params_only(space: tc.Space) -> None:
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(200)]
    assert all(space.contains(c) for c in configs)
    for c in configs:
        assert ("momentum" in c) == (c["optimizer"] == "sgd")
        assert ("width" in c) == (c["layers"] >= 2)
    assert {c["optimizer"] for c in configs} == {"sgd", "adam"}
    assert space.sample(np.random.default_rng(5)) == space.sample(np.random.default_rng(5))


def test_to_unit_marks_inactive_params_nan_and_from_unit_ignores_them(space: tc.Space) -> None:
    config = {"optimizer": "adam", "lr": 1e-3, "layers": 1}
    x = space.to_unit(config)
    assert x.shape == (5,)
    inactive = {"momentum", "width"}
    for name, u in zip(space.names, x, strict=True):
        assert math.isnan(u) == (name in inactive)
    decoded = space.from_unit(x)  # nan allowed where inactive
    assert decoded["optimizer"] == "adam" and decoded["layers"] == 1
    assert decoded["lr"] == pytest.approx(1e-3)
    assert set(decoded) == set(config)


def test_from_unit_rejects_wrong_shapes_and_nan_for_active_params(space: tc.Space) -> None:
    with pytest.raises(InvalidParameterError, match=r"length 5"):
        space.from_unit([0.5, 0.5])
    x = np.full(5, 0.5)
    x[space.names.index("lr")] = np.nan
    with pytest.raises(InvalidParameterError, match=r"'lr' is nan"):
        space.from_unit(x)


def test_active_mask(space: tc.Space) -> None:
    mask = space.active_mask({"optimizer": "sgd", "layers": 1})
    assert dict(zip(space.names, mask.tolist(), strict=True)) == {
        "optimizer": True,
        "momentum": True,
        "lr": True,
        "layers": True,
        "width": False,
    }


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"optimizer": "adam", "lr": 1e-3, "layers": 1}, None),
        ({"optimizer": "sgd", "lr": 1e-3, "layers": 1, "momentum": 0.9}, None),
        ({"optimizer": "sgd", "lr": 1e-3, "layers": 1}, "'momentum' is missing"),
        (
            {"optimizer": "adam", "lr": 1e-3, "layers": 1, "momentum": 0.9},
            "'momentum' is inactive",
        ),
        ({"optimizer": "adam", "lr": 1.0, "layers": 1}, "'lr'=1.0 is outside log-uniform"),
        ({"optimizer": "adam", "lr": 1e-3, "layers": 1.0}, "'layers'=1.0 is outside int"),
        ({"optimizer": "adam", "lr": 1e-3, "layers": 1, "depth": 3}, "unknown parameter 'depth'"),
        ({"optimizer": "rmsprop", "lr": 1e-3, "layers": 1}, "'optimizer'='rmsprop' is outside"),
    ],
)
def test_contains_and_validate(space: tc.Space, config: dict, problem: str | None) -> None:
    assert space.contains(config) == (problem is None)
    if problem is None:
        validated = space.validate(config)
        assert validated == config and list(validated) == [n for n in space.names if n in config]
    else:
        with pytest.raises(InvalidParameterError, match=problem):
            space.validate(config)


def test_contains_rejects_non_mappings(space: tc.Space) -> None:
    assert not space.contains([("lr", 1e-3)])  # type: ignore[arg-type]


def test_grid_is_every_combination_without_inactive_params() -> None:
    space = tc.Space(
        {
            "opt": tc.choice(["sgd", "adam"]),
            "momentum": tc.uniform(0, 0.9).when(opt="sgd"),
            "layers": tc.integer(1, 2),
        }
    )
    grid = space.grid(n_points=3)
    keys = {tuple(sorted(c.items())) for c in grid}
    assert len(grid) == len(keys) == 3 * 2 + 2
    assert all(space.contains(c) for c in grid)
    assert {c["momentum"] for c in grid if "momentum" in c} == {0.0, 0.45, 0.9}
    assert {"opt": "adam", "layers": 2} in grid
    with pytest.raises(InvalidParameterError, match=r"'n_points' parameter of Space.grid"):
        space.grid(0)


def test_space_is_a_read_only_mapping(space: tc.Space) -> None:
    assert len(space) == 5 and "lr" in space and list(space) == list(space.names)
    assert space == tc.Space(dict(space.items()))
    assert space != tc.Space({"lr": tc.loguniform(1e-5, 1e-2)})
    assert tc.Space(space) == space


# -- narrowing ------------------------------------------------------------------------------------
def test_narrow_spans_the_values_with_a_margin_of_the_width() -> None:
    space = tc.Space({"x": tc.uniform(0, 10), "n": tc.integer(0, 100)})
    narrow = space.narrow([{"x": 4.0, "n": 40}, {"x": 6.0, "n": 50}], margin=0.1)
    assert narrow["x"] == tc.uniform(3, 7)
    n = narrow["n"]
    assert n.low <= 40 and n.high >= 50 and n.low >= 25 and n.high <= 65


def test_narrow_stays_inside_the_original_bounds() -> None:
    space = tc.Space(
        {"x": tc.uniform(0, 1), "lr": tc.loguniform(1e-5, 1e-1), "n": tc.integer(1, 8, step=1)}
    )
    narrow = space.narrow(
        [{"x": 0.0, "lr": 1e-1, "n": 1}, {"x": 0.05, "lr": 5e-2, "n": 8}], margin=0.5
    )
    assert narrow["x"].low == 0.0 and narrow["x"].high <= 1.0
    assert narrow["lr"].high == pytest.approx(1e-1) and narrow["lr"].high <= 1e-1
    assert narrow["lr"].low >= 1e-5
    assert (narrow["n"].low, narrow["n"].high) == (1, 8)


def test_narrow_log_params_in_log_space() -> None:
    space = tc.Space({"lr": tc.loguniform(1e-6, 1.0)})  # 6 decades
    narrow = space.narrow([{"lr": 1e-3}], margin=0.1)  # 0.6 decade each side, not 0.1 linear
    assert narrow["lr"].log
    assert math.log10(narrow["lr"].low) == pytest.approx(-3.6)
    assert math.log10(narrow["lr"].high) == pytest.approx(-2.4)


def test_narrow_keeps_step_and_grid_of_integers() -> None:
    space = tc.Space({"b": tc.integer(16, 256, step=16)})
    narrow = space.narrow([{"b": 64}, {"b": 128}], margin=0.0)
    assert narrow["b"] == tc.integer(64, 128, step=16)
    single = space.narrow([{"b": 16}], margin=0.0)["b"]
    assert (single.low, single.high, single.step) == (16, 32, 16)


def test_narrow_choices_keep_the_options_seen_in_order() -> None:
    space = tc.Space({"c": tc.choice(["a", "b", "c", "d"])})
    assert space.narrow([{"c": "d"}, {"c": "b"}])["c"] == tc.choice(["b", "d"])


def test_narrow_single_float_value_without_margin_keeps_a_sliver() -> None:
    space = tc.Space({"x": tc.uniform(0, 1)})
    x = space.narrow([{"x": 1.0}], margin=0.0)["x"]
    assert x.low < x.high == 1.0 and x.contains(1.0)


def test_narrow_conditional_children_follow_their_narrowed_parents() -> None:
    space = tc.Space(
        {
            "opt": tc.choice(["sgd", "adam", "rmsprop"]),
            "momentum": tc.uniform(0.0, 1.0).when(opt=["sgd", "rmsprop"]),
            "nesterov": tc.choice([True, False]).when(opt="sgd"),
            "beta2": tc.loguniform(0.9, 0.999).when(opt="adam"),
            "layers": tc.integer(1, 4),
        }
    )
    configs = [
        {"opt": "sgd", "momentum": 0.5, "nesterov": True, "layers": 2},
        {"opt": "rmsprop", "momentum": 0.7, "layers": 3},
    ]
    narrow = space.narrow(configs, margin=0.0)
    assert narrow["opt"] == tc.choice(["sgd", "rmsprop"])
    assert "beta2" not in narrow  # its parent no longer takes 'adam'
    assert narrow["momentum"].condition == {"opt": ("sgd", "rmsprop")}
    assert (narrow["momentum"].low, narrow["momentum"].high) == pytest.approx((0.5, 0.7))
    assert narrow["nesterov"] == tc.choice([True]).when(opt="sgd")
    assert all(narrow.contains(c) for c in configs)


def test_narrow_drops_only_the_unreachable_condition_values() -> None:
    space = tc.Space(
        {
            "layers": tc.integer(1, 8),
            "width": tc.integer(8, 64).when(layers=[1, 2, 7, 8]),
        }
    )
    narrow = space.narrow([{"layers": 1, "width": 16}, {"layers": 3}], margin=0.0)
    assert (narrow["layers"].low, narrow["layers"].high) == (1, 3)
    assert narrow["width"].condition == {"layers": (1, 2)}


def test_narrow_rejects_bad_arguments() -> None:
    space = tc.Space({"x": tc.uniform(0, 1)})
    with pytest.raises(InvalidParameterError, match=r"'configs' parameter of Space.narrow"):
        space.narrow([])
    with pytest.raises(InvalidParameterError, match=r"'margin' parameter of Space.narrow"):
        space.narrow([{"x": 0.5}], margin=1.5)
    with pytest.raises(InvalidParameterError, match=r"'x'=2 is outside"):
        space.narrow([{"x": 2}])

"""Importance: known important parameters ranked first, exact fANOVA on single trees."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tunecraft as tc
from tunecraft.analysis import METHODS, Importance, importance
from tunecraft.analysis._importance import _Cdf, _tree_main_effects
from tunecraft.trial import FrozenTrial, TrialState


def _pairs(space, f, n, seed=0):
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    return [(c, f(c)) for c in configs]


SIX = tc.Space({f"x{i}": tc.uniform(0, 1) for i in range(6)})


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_function_ranks_known_parameters(method, seed):
    pairs = _pairs(SIX, lambda c: 10 * c["x0"] + c["x1"], 80, seed)
    imp = importance(pairs, SIX, method=method, seed=seed, n_trees=32)
    assert imp.ranking[0] == "x0"
    assert imp["x0"] > 0.9
    assert math.isclose(sum(imp.values()), 1.0)
    assert all(imp[f"x{i}"] < 0.02 for i in range(2, 6))
    assert imp.method == method
    assert list(imp.values()) == sorted(imp.values(), reverse=True)


def test_nonlinear_and_log_scale():
    # lr matters on its log scale (a bowl around 1e-3), wd barely, the rest not at all
    space = tc.Space(
        {
            "lr": tc.loguniform(1e-6, 1.0),
            "wd": tc.loguniform(1e-6, 1e-1),
            "noise_a": tc.uniform(0, 1),
            "noise_b": tc.integer(1, 8),
        }
    )

    def f(c):
        return (math.log10(c["lr"]) + 3) ** 2 + 0.3 * math.log10(c["wd"])

    imp = importance(_pairs(space, f, 100), space)
    assert imp.ranking[:2] == ["lr", "wd"]
    assert imp["noise_a"] + imp["noise_b"] < 0.05
    assert 0.0 < imp.explained <= 1.0 + 1e-9


def test_categorical_parameter():
    space = tc.Space(
        {
            "opt": tc.choice(["sgd", "adam", "rmsprop"]),
            "x": tc.uniform(0, 1),
            "z": tc.uniform(0, 1),
        }
    )
    pairs = _pairs(
        space, lambda c: {"sgd": 3.0, "adam": 0.0, "rmsprop": 1.0}[c["opt"]] + c["x"], 90
    )
    imp = importance(pairs, space)
    assert imp.ranking == ["opt", "x", "z"]


def test_conditional_parameters_are_handled():
    space = tc.Space(
        {
            "opt": tc.choice(["sgd", "adam"]),
            "momentum": tc.uniform(0.0, 0.99).when(opt="sgd"),
            "beta": tc.uniform(0.8, 0.999).when(opt="adam"),
            "x": tc.uniform(0, 1),
        }
    )

    def f(c):
        return 5 * (c["momentum"] - 0.9) ** 2 if c["opt"] == "sgd" else 0.5 + 0 * c["beta"]

    pairs = _pairs(space, f, 120)
    for method in METHODS:
        imp = importance(pairs, space, method=method)
        assert set(imp) == set(space.names)
        assert imp["momentum"] > imp["beta"]
        assert imp["momentum"] > imp["x"]


def test_frozen_trials_keep_only_complete_finite():
    space = tc.Space({"a": tc.uniform(0, 1), "b": tc.uniform(0, 1)})
    rng = np.random.default_rng(0)
    trials = []
    for i in range(40):
        c = space.sample(rng)
        trials.append(FrozenTrial(i, TrialState.COMPLETE, c, value=5 * c["a"] + c["b"]))
    trials.append(FrozenTrial(40, TrialState.FAILED, {"a": 0.1, "b": 0.1}))
    trials.append(FrozenTrial(41, TrialState.PRUNED, {"a": 0.9, "b": 0.1}, value=1e9))
    trials.append(FrozenTrial(42, TrialState.COMPLETE, {"a": 0.9, "b": 0.1}, value=math.inf))
    imp = importance(trials, space, n_trees=16)
    assert imp.n_trials == 40
    assert imp.ranking == ["a", "b"]


def test_trials_outside_the_space_are_left_out():
    """Trials of the wider space explored before narrowing: left out (as narrow_space does),
    neither clipped to the narrowed bounds nor a crash on an option it no longer offers."""
    wide = tc.Space({"a": tc.uniform(0, 10), "c": tc.choice(["x", "y", "z"])})
    narrow = tc.Space({"a": tc.uniform(0, 1), "c": tc.choice(["x", "y"])})
    inside = _pairs(narrow, lambda c: c["a"] + (c["c"] == "y"), 40, seed=1)
    outside = [(c, 100.0 * c["a"]) for c, _ in _pairs(wide, lambda c: 0.0, 40, seed=2)]
    outside = [(c, v) for c, v in outside if not narrow.contains(c)]
    extra = [({**c, "unused": 3}, v) for c, v in inside]  # keys the space does not name
    imp = importance(inside + outside, narrow, n_trees=16)
    assert imp.n_trials == 40
    assert dict(imp) == dict(importance(extra, narrow, n_trees=16))
    with pytest.raises(ValueError, match="inside the space, got 0"):
        importance(outside, narrow)


def test_rank_target_resists_outliers():
    space = tc.Space({"a": tc.uniform(0, 1), "b": tc.uniform(0, 1)})
    # b causes rare huge failures (b > 0.97); a drives the ordinary values
    pairs = _pairs(space, lambda c: c["a"] + (1e6 if c["b"] > 0.97 else 0.0), 100, seed=3)
    assert importance(pairs, space, n_trees=16).ranking[0] == "b"
    assert importance(pairs, space, n_trees=16, target="rank").ranking[0] == "a"


def test_deterministic_for_a_seed():
    pairs = _pairs(SIX, lambda c: c["x0"] * c["x1"] + c["x2"], 50)
    a = importance(pairs, SIX, seed=3, n_trees=16)
    b = importance(pairs, SIX, seed=3, n_trees=16)
    assert dict(a) == dict(b)
    assert dict(a) != dict(importance(pairs, SIX, seed=4, n_trees=16))


def test_constant_objective_gives_equal_shares():
    imp = importance([(c, 1.0) for c, _ in _pairs(SIX, lambda c: 0, 10)], SIX)
    assert all(math.isclose(v, 1 / 6) for v in imp.values())


def test_round_trip_and_std():
    imp = importance(_pairs(SIX, lambda c: c["x0"], 30), SIX, n_trees=8)
    back = Importance.from_dict(imp.to_dict())
    assert dict(back) == dict(imp) and back.method == imp.method and back.std == imp.std
    assert set(imp.std) == set(SIX.names) and all(s >= 0 for s in imp.std.values())


@pytest.mark.parametrize(
    "param",
    [
        tc.uniform(0, 1),
        tc.loguniform(1e-3, 1.0),
        tc.integer(1, 5),
        tc.integer(1, 20, log=True),
        tc.choice(["a", "b", "c"]),
    ],
)
def test_tree_decomposition_is_exact(param):
    """The marginal variance from the tree's boxes equals a brute-force one over a grid."""
    from sklearn.tree import DecisionTreeRegressor

    space = tc.Space({"p": param, "q": tc.uniform(0, 1)})
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(60)]
    x = np.stack([space.to_unit(c) for c in configs])
    y = np.sin(5 * x[:, 0]) + x[:, 1] ** 2 + 0.5 * x[:, 0] * x[:, 1]
    tree = DecisionTreeRegressor(random_state=0, max_depth=6).fit(x, y)
    got = _tree_main_effects(tree.tree_, [_Cdf(space["p"]), _Cdf(space["q"])])

    # brute force: the measure of the unit cube, discrete parameters at their values
    if isinstance(param, (tc.space.Categorical, tc.space.Int)):
        values = param.grid(10_000)
        pts = np.array([param.to_unit(v) for v in values])
        if isinstance(param, tc.space.Int) and param.log:
            w = np.array([math.log(v + 0.5) - math.log(v - 0.5) for v in values])
        else:
            w = np.ones(len(values))
        w = w / w.sum()
    else:
        pts = (np.arange(1000) + 0.5) / 1000
        w = np.full(1000, 1 / 1000)
    qs = (np.arange(1000) + 0.5) / 1000
    grid = tree.predict(np.column_stack([np.repeat(pts, len(qs)), np.tile(qs, len(pts))]))
    grid = grid.reshape(len(pts), len(qs))
    mean = w @ grid.mean(axis=1)
    total = w @ ((grid - mean) ** 2).mean(axis=1)
    var_p = w @ (grid.mean(axis=1) - mean) ** 2
    var_q = ((w @ grid - mean) ** 2).mean()
    assert got is not None
    np.testing.assert_allclose(got, [var_p / total, var_q / total], atol=5e-3)


def test_bad_input():
    pairs = _pairs(SIX, lambda c: c["x0"], 5)
    with pytest.raises(ValueError, match="'method' parameter of importance"):
        importance(pairs, SIX, method="shap")
    with pytest.raises(ValueError, match="at least 2 complete trials"):
        importance(pairs[:1], SIX)
    with pytest.raises(TypeError, match="'trials' parameter"):
        importance([1, 2], SIX)
    with pytest.raises(ValueError, match="'direction'"):
        importance(pairs, SIX, direction="up")


def test_analysis_is_not_imported_by_tunecraft():
    import subprocess
    import sys

    code = (
        "import sys, tunecraft; "
        "print('tunecraft.analysis' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

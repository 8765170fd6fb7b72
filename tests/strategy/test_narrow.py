"""Narrowing: never excludes a known optimum, fixes what does not matter, handles conditions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tunecraft as tc
from tunecraft.analysis import importance
from tunecraft.strategy._narrow import Narrowing, narrow_space
from tunecraft.trial import FrozenTrial, TrialState

SPACE = tc.Space(
    {
        "lr": tc.loguniform(1e-5, 1.0),
        "layers": tc.integer(1, 8),
        "act": tc.choice(["relu", "tanh", "gelu"]),
        "width": tc.integer(16, 1024, log=True),
        "noise_a": tc.uniform(0.0, 1.0),
        "noise_b": tc.choice([True, False]),
    }
)


def _optimum(rng):
    """An optimum away from the edges of the unit cube (each term then has a clear effect)."""
    opt = {k: SPACE[k].from_unit(rng.uniform(0.2, 0.8)) for k in ("lr", "width")}
    return {**opt, "act": str(rng.choice(["relu", "tanh", "gelu"]))}


def _objective(opt):
    """A cone around ``opt`` on the unit-cube scale (log for lr and width), plus a penalty for
    the wrong activation; layers, noise_a and noise_b do not matter."""
    u_opt = {k: SPACE[k].to_unit(v) for k, v in opt.items() if k != "act"}

    def f(c):
        cone = sum(abs(SPACE[k].to_unit(c[k]) - u) for k, u in u_opt.items())
        return cone + (0.0 if c["act"] == opt["act"] else 0.35)

    return f


@pytest.mark.parametrize("seed", range(12))
def test_never_excludes_the_optimum(seed):
    """fANOVA on 80 random trials, then narrowing: the optimum stays reachable."""
    rng = np.random.default_rng(seed)
    opt = _optimum(rng)
    f = _objective(opt)
    pairs = [(c, f(c)) for c in (SPACE.sample(rng) for _ in range(80))]
    imp = importance(pairs, SPACE, seed=seed, n_trees=32)
    n = narrow_space(SPACE, pairs, imp)
    # lr and width matter most and are searched; a fixed activation is the optimal one
    assert set(n.fixed) <= {"layers", "noise_a", "noise_b", "act"}
    for name, value in opt.items():
        if name in n.space.names:
            assert n.space[name].contains(value), (name, value, n.space[name])
    searched = {k: opt.get(k, n.space[k].from_unit(0.5)) for k in n.space.names}
    best = n.complete(searched)
    assert SPACE.contains(best)
    assert f(best) == 0.0
    assert len(n.space) < len(SPACE)


@pytest.mark.parametrize("seed", range(20))
def test_narrowing_keeps_the_optimum_given_the_importance(seed):
    """With the true importance, every parameter type narrows around the optimum."""
    rng = np.random.default_rng(seed)
    opt = {k: SPACE[k].from_unit(rng.uniform(0.05, 0.95)) for k in ("lr", "layers", "width")}
    opt["act"] = str(rng.choice(["relu", "tanh", "gelu"]))
    u_opt = {k: SPACE[k].to_unit(v) for k, v in opt.items() if k != "act"}

    def f(c):
        return sum(abs(SPACE[k].to_unit(c[k]) - u) for k, u in u_opt.items()) + (
            c["act"] != opt["act"]
        )

    pairs = [(c, f(c)) for c in (SPACE.sample(rng) for _ in range(40))]
    imp = {"lr": 0.25, "layers": 0.25, "width": 0.25, "act": 0.25, "noise_a": 0.0, "noise_b": 0}
    n = narrow_space(SPACE, pairs, imp)
    assert set(n.fixed) == {"noise_a", "noise_b"}
    for name, value in opt.items():
        assert n.space[name].contains(value), (name, value, n.space[name])
    assert f(n.complete(opt)) == 0.0


def test_trials_tied_with_the_top_are_kept():
    """Quantized values (an accuracy that is 1.0 or 0.0): every trial as good as the last of
    the top defines the ranges, not only those the stable sort happened to put first."""
    space = tc.Space({"x": tc.uniform(0, 1), "c": tc.choice(["a", "b", "c", "d"])})
    xs = np.linspace(0.0, 1.0, 20)
    pairs = [({"x": float(x), "c": "abcd"[i % 4]}, float(x >= 0.5)) for i, x in enumerate(xs)]
    n = narrow_space(space, pairs, None, direction="maximize", margin=0.0)
    # 10 trials with x >= 0.5 score 1.0; the top 25% is 5 of them, ties bring in the rest
    assert n.settings["n_top"] == 10
    assert n.space["x"].low == pytest.approx(xs[10]) and n.space["x"].high == 1.0
    assert n.space["c"].options == ("a", "b", "c", "d")
    # all values equal: nothing tells the trials apart, the ranges span all of them
    flat = narrow_space(space, [(c, 0.5) for c, _ in pairs], None, margin=0.0)
    assert flat.settings["n_top"] == len(pairs)
    assert (flat.space["x"].low, flat.space["x"].high) == (0.0, 1.0)


def test_fixed_params_and_reasons():
    space = tc.Space(
        {"x": tc.uniform(0, 10), "y": tc.loguniform(1e-4, 1.0), "z": tc.integer(0, 9)}
    )
    rng = np.random.default_rng(0)
    pairs = [(c, (c["x"] - 3) ** 2) for c in (space.sample(rng) for _ in range(40))]
    best = min(pairs, key=lambda p: p[1])[0]
    n = narrow_space(space, pairs, {"x": 0.9, "y": 0.02, "z": 0.08}, min_importance=0.05)
    assert list(n.space.names) == ["x", "z"]
    assert n.fixed == {"y": best["y"]}
    assert n.reasons["y"].startswith(f"fixed at best value {best['y']!r}: importance 0.020 < 0.05")
    assert n.reasons["x"].startswith("narrowed to [")
    assert "top 25% (10 trials)" in n.reasons["x"]
    assert n.space["x"].low >= 0 and n.space["x"].high <= 10
    assert n.space["x"].high - n.space["x"].low < 10
    full = n.complete({"x": 3.0, "z": 4})
    assert full == {"x": 3.0, "y": best["y"], "z": 4}
    assert space.contains(full)


def test_spread_fixes_only_the_confidently_unimportant():
    space = tc.Space(
        {"x": tc.uniform(0, 10), "y": tc.loguniform(1e-4, 1.0), "z": tc.integer(0, 9)}
    )
    rng = np.random.default_rng(0)
    pairs = [(c, (c["x"] - 3) ** 2) for c in (space.sample(rng) for _ in range(40))]
    imp = {"x": 0.9, "y": 0.02, "z": 0.03}
    # y's share is small and sure, z's is small but could be 0.13: only y is fixed
    n = narrow_space(space, pairs, imp, min_importance=0.05, spread={"y": 0.01, "z": 0.1})
    assert set(n.fixed) == {"y"}
    assert "importance 0.020 + spread 0.010 < 0.05" in n.reasons["y"]
    assert "z" in n.space.names and "spread 0.100 is too large" in n.reasons["z"]
    assert n.settings["spread"] is True
    # without the spread both are fixed, as before
    assert set(narrow_space(space, pairs, imp, min_importance=0.05).fixed) == {"y", "z"}
    with pytest.raises(TypeError, match="'spread' parameter of narrow_space"):
        narrow_space(space, pairs, imp, spread=[0.1])
    with pytest.raises(ValueError, match=r"spread\['z'\]"):
        narrow_space(space, pairs, imp, spread={"z": -0.1})


def test_defaults_keep_and_no_importance():
    space = tc.Space({"x": tc.uniform(0, 1), "y": tc.uniform(0, 1), "w": tc.uniform(0, 1)})
    rng = np.random.default_rng(1)
    pairs = [(c, c["x"]) for c in (space.sample(rng) for _ in range(20))]
    imp = {"x": 0.9, "y": 0.05, "w": 0.05}
    n = narrow_space(space, pairs, imp, min_importance=0.1, defaults={"y": 0.25}, keep=["w"])
    assert n.fixed == {"y": 0.25}
    assert n.reasons["y"].startswith("fixed at default value 0.25")
    assert "w" in n.space.names and "kept on request" in n.reasons["w"]
    # a default outside the domain is not used
    n2 = narrow_space(space, pairs, imp, min_importance=0.1, defaults={"y": 7.0})
    assert n2.fixed["y"] != 7.0
    # without importance nothing is fixed
    n3 = narrow_space(space, pairs, None)
    assert n3.fixed == {} and set(n3.space.names) == {"x", "y", "w"}
    # importance all tiny: the most important one is still searched
    n4 = narrow_space(space, pairs, {"x": 0.01, "y": 0.0, "w": 0.0}, min_importance=0.5)
    assert list(n4.space.names) == ["x"]


def test_maximize_narrows_around_the_largest_values():
    space = tc.Space({"x": tc.uniform(0, 1)})
    pairs = [({"x": i / 19}, i / 19) for i in range(20)]
    up = narrow_space(space, pairs, None, direction="maximize", margin=0.0)
    down = narrow_space(space, pairs, None, direction="minimize", margin=0.0)
    assert up.space["x"].low > 0.7 and down.space["x"].high < 0.3


def _cond_space():
    return tc.Space(
        {
            "opt": tc.choice(["sgd", "adam"]),
            "momentum": tc.uniform(0.0, 0.99).when(opt="sgd"),
            "beta2": tc.uniform(0.9, 0.9999).when(opt="adam"),
            "lr": tc.loguniform(1e-4, 1e-1),
        }
    )


def _cond_pairs(f, n=60, seed=0):
    space = _cond_space()
    rng = np.random.default_rng(seed)
    return [(c, f(c)) for c in (space.sample(rng) for _ in range(n))]


def test_fixed_parent_drops_the_inactive_branch():
    space = _cond_space()
    pairs = _cond_pairs(lambda c: (math.log10(c["lr"]) + 2) ** 2 + (c["opt"] == "sgd"))
    imp = {"opt": 0.02, "momentum": 0.3, "beta2": 0.3, "lr": 0.38}
    n = narrow_space(space, pairs, imp)
    assert n.fixed["opt"] == "adam"
    assert "momentum" not in n.space.names and "momentum" not in n.fixed
    assert n.reasons["momentum"] == "dropped: never active, 'opt' is fixed at 'adam'"
    # beta2's condition always holds now: it is an ordinary parameter of the new space
    assert n.space["beta2"].condition is None
    full = n.complete({"beta2": 0.95, "lr": 0.01})
    assert full == {"opt": "adam", "beta2": 0.95, "lr": 0.01} and space.contains(full)


def test_fixed_child_is_added_only_when_active():
    space = _cond_space()
    pairs = _cond_pairs(lambda c: (math.log10(c["lr"]) + 2) ** 2 + 0.1 * (c["opt"] == "sgd"))
    imp = {"opt": 0.3, "momentum": 0.01, "beta2": 0.01, "lr": 0.68}
    n = narrow_space(space, pairs, imp, top_quantile=1.0)
    assert set(n.fixed) == {"momentum", "beta2"}
    assert set(n.space["opt"].options) == {"sgd", "adam"}
    sgd = n.complete({"opt": "sgd", "lr": 0.01})
    adam = n.complete({"opt": "adam", "lr": 0.01})
    assert sgd == {"opt": "sgd", "momentum": n.fixed["momentum"], "lr": 0.01}
    assert adam == {"opt": "adam", "beta2": n.fixed["beta2"], "lr": 0.01}
    assert space.contains(sgd) and space.contains(adam)


def test_narrowed_parent_drops_children_of_lost_choices():
    space = _cond_space()
    pairs = _cond_pairs(lambda c: (c["opt"] == "sgd") * 10 + (math.log10(c["lr"]) + 2) ** 2)
    n = narrow_space(space, pairs, {"opt": 0.6, "momentum": 0.1, "beta2": 0.1, "lr": 0.2})
    assert n.space["opt"].options == ("adam",)
    assert "momentum" not in n.space.names
    assert n.space["beta2"].condition == {"opt": ("adam",)}
    for config in n.space.grid(3):
        assert space.contains(n.complete(config))


def test_round_trip_through_json():
    space = _cond_space()
    pairs = _cond_pairs(lambda c: (math.log10(c["lr"]) + 2) ** 2)
    n = narrow_space(space, pairs, {"opt": 0.02, "momentum": 0.3, "beta2": 0.3, "lr": 0.38})
    back = Narrowing.from_dict(json.loads(json.dumps(n.to_dict())))
    assert back == n
    assert back.complete({"beta2": 0.95, "lr": 0.01}) == n.complete({"beta2": 0.95, "lr": 0.01})
    with pytest.raises(ValueError, match="not a stored narrowing"):
        Narrowing.from_dict({"space": {"x": "uniform(0, 1)"}})


def test_project_and_frozen_trials():
    space = tc.Space({"x": tc.uniform(0, 10), "y": tc.uniform(0, 1)})
    rng = np.random.default_rng(0)
    trials = [
        FrozenTrial(i, TrialState.COMPLETE, c, value=(c["x"] - 5) ** 2)
        for i, c in enumerate(space.sample(rng) for _ in range(30))
    ]
    trials.append(FrozenTrial(30, TrialState.FAILED, {"x": 9.0, "y": 0.5}))
    trials.append(FrozenTrial(31, TrialState.PRUNED, {"x": 0.0, "y": 0.5}, value=-100.0))
    n = narrow_space(space, trials, {"x": 0.95, "y": 0.05}, min_importance=0.1)
    assert n.settings["n_trials"] == 30
    assert n.project({"x": 5.0, "y": 0.9}) == {"x": 5.0}
    assert n.project({"x": 0.0, "y": 0.9}) is None
    assert "x" in n.describe() and "y" in n.describe()


def test_bad_input():
    space = tc.Space({"x": tc.uniform(0, 1)})
    pairs = [({"x": 0.5}, 1.0)]
    with pytest.raises(ValueError, match="'top_quantile' parameter of narrow_space"):
        narrow_space(space, pairs, None, top_quantile=0)
    with pytest.raises(ValueError, match="'margin' parameter of narrow_space"):
        narrow_space(space, pairs, None, margin=2)
    with pytest.raises(ValueError, match="'keep' parameter"):
        narrow_space(space, pairs, None, keep=["nope"])
    with pytest.raises(ValueError, match="at least one complete trial"):
        narrow_space(space, [({"x": 5.0}, 1.0)], None)
    with pytest.raises(ValueError, match="'direction'"):
        narrow_space(space, pairs, None, direction="down")
    with pytest.raises(ValueError, match="not searched in the narrowed space"):
        narrow_space(space, pairs, None).complete({"q": 1})


@pytest.mark.parametrize("share", [math.nan, "0.5", None])
def test_a_share_that_is_not_a_number_is_refused(share):
    """A NaN share was neither fixed nor compared (the parameter silently stayed searched);
    a string crashed in float() without naming the parameter."""
    space = tc.Space({"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)})
    pairs = [({"x": i / 9, "y": 0.5}, i / 9) for i in range(10)]
    with pytest.raises(ValueError, match=r"'importance' parameter of narrow_space .* for 'y'"):
        narrow_space(space, pairs, {"x": 0.9, "y": share})


def test_the_parameter_kept_as_the_most_important_says_so():
    space = tc.Space({f"x{i}": tc.uniform(0, 1) for i in range(3)})
    pairs = [({f"x{i}": j / 9 for i in range(3)}, j / 9) for j in range(10)]
    n = narrow_space(space, pairs, {"x0": 0.02, "x1": 0.04, "x2": 0.01})
    assert set(n.fixed) == {"x0", "x2"}
    assert n.reasons["x1"].endswith(
        "(importance 0.040, kept: the most important parameter is always searched)"
    )


@pytest.mark.parametrize(("top_quantile", "n_trials", "n_top"), [(0.07, 100, 7), (0.28, 25, 7)])
def test_top_quantile_is_not_rounded_up_by_round_off(top_quantile, n_trials, n_top):
    space = tc.Space({"x": tc.uniform(0, 1)})
    pairs = [({"x": i / n_trials}, float(i)) for i in range(n_trials)]
    n = narrow_space(space, pairs, None, top_quantile=top_quantile)
    assert n.settings["n_top"] == n_top

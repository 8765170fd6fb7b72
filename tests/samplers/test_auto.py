"""The automatic choice between Sobol, GP and TPE."""

from __future__ import annotations

import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers import AutoSampler, GPSampler, History, SobolSampler, TPESampler
from tunecraft.trial import FrozenTrial, TrialState


def _history(space: tc.Space, n: int) -> History:
    import numpy as np

    rng = np.random.default_rng(0)
    trials = [
        FrozenTrial(number=i, state=TrialState.COMPLETE, config=space.sample(rng), value=float(i))
        for i in range(n)
    ]
    return History(trials, "minimize")


def test_small_numeric_space_starts_with_sobol_then_uses_the_gp() -> None:
    space = tc.Space({"x": tc.uniform(0, 1), "y": tc.loguniform(1e-3, 1)})
    auto = AutoSampler(seed=0)
    assert isinstance(auto.choose(space, _history(space, 0)), SobolSampler)
    assert isinstance(auto.choose(space, _history(space, 4)), SobolSampler)
    assert isinstance(auto.choose(space, _history(space, 5)), GPSampler)


def test_conditional_spaces_use_the_gp() -> None:
    space = tc.Space({"opt": tc.choice(["sgd", "adam"]), "m": tc.uniform(0, 1).when(opt="sgd")})
    assert isinstance(AutoSampler(seed=0).choose(space, _history(space, 10)), GPSampler)


def test_large_or_categorical_spaces_use_tpe() -> None:
    wide = tc.Space({f"x{i}": tc.uniform(0, 1) for i in range(20)})
    assert isinstance(AutoSampler(seed=0).choose(wide, _history(wide, 12)), TPESampler)
    cats = tc.Space(
        {f"c{i}": tc.choice(["a", "b", "c"]) for i in range(5)} | {"x": tc.uniform(0, 1)}
    )
    assert isinstance(AutoSampler(seed=0).choose(cats, _history(cats, 12)), TPESampler)


def test_switches_from_gp_to_tpe_mid_study() -> None:
    space = tc.Space({"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)})
    auto = AutoSampler(seed=0, max_gp_trials=12)
    assert isinstance(auto.choose(space, _history(space, 11)), GPSampler)
    assert isinstance(auto.choose(space, _history(space, 12)), TPESampler)
    study = tc.Study(space, sampler=auto)
    study.optimize(lambda t: (t.config["x"] - 0.5) ** 2 + t.config["y"], n_trials=16)
    assert study.best_value < 0.1


def test_auto_options_are_validated() -> None:
    with pytest.raises(InvalidParameterError, match="'max_gp_dims' parameter of AutoSampler"):
        AutoSampler(max_gp_dims=0)
    with pytest.raises(InvalidParameterError, match="'max_cat_share'"):
        AutoSampler(max_cat_share=101)


def test_study_uses_auto_by_default() -> None:
    study = tc.Study({"x": tc.uniform(0, 1)})
    assert isinstance(study.sampler, AutoSampler)

"""The multivariate TPE sampler."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers import History, TPESampler
from tunecraft.trial import FrozenTrial, TrialState


def _sphere_regret(sampler: str, seed: int, n: int = 60) -> float:
    space = {f"x{i}": tc.uniform(-5, 5) for i in range(3)}
    study = tc.Study(space, sampler=tc.make_sampler(sampler, seed=seed))
    study.optimize(lambda t: sum((v - 1.0) ** 2 for v in t.config.values()), n_trials=n)
    return study.best_value


def test_tpe_beats_random_search_on_a_sphere() -> None:
    seeds = range(5)
    tpe = statistics.median(_sphere_regret("tpe", s) for s in seeds)
    rnd = statistics.median(_sphere_regret("random", s) for s in seeds)
    assert tpe < rnd / 2


def test_tpe_handles_log_int_and_categorical_parameters() -> None:
    space = {
        "lr": tc.loguniform(1e-6, 1.0),
        "n": tc.integer(1, 1000, log=True),
        "k": tc.choice(["a", "b", "c", "d"]),
    }

    def objective(t: tc.Trial) -> float:
        c = t.config
        return (
            (math.log10(c["lr"]) + 4) ** 2
            + (math.log10(c["n"]) - 2) ** 2
            + (0.0 if c["k"] == "b" else 1.0)
        )

    study = tc.Study(space, sampler=tc.make_sampler("tpe", seed=0))
    study.optimize(objective, n_trials=80)
    later = [t.config["k"] for t in study.trials[40:]]
    assert later.count("b") > 0.5 * len(later)
    assert study.best_value < 0.5


def test_tpe_models_conditional_parameters() -> None:
    space = {
        "booster": tc.choice(["linear", "tree"]),
        "alpha": tc.loguniform(1e-4, 1.0).when(booster="linear"),
        "depth": tc.integer(1, 10).when(booster="tree"),
        "eta": tc.uniform(0, 1).when(booster="tree"),
    }

    def objective(t: tc.Trial) -> float:
        c = t.config
        if c["booster"] == "linear":
            return 1.0 + abs(math.log10(c["alpha"]) + 2)
        return abs(c["depth"] - 6) / 5 + abs(c["eta"] - 0.3)

    study = tc.Study(space, sampler=tc.make_sampler("tpe", seed=1))
    study.optimize(objective, n_trials=50)
    later = study.trials[20:]
    assert sum(t.config["booster"] == "tree" for t in later) > 0.6 * len(later)
    depths = [t.config["depth"] for t in later if "depth" in t.config]
    assert statistics.median(depths) in (5, 6, 7)


def test_tpe_spreads_a_batch_over_running_trials() -> None:
    space = {"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)}
    study = tc.Study(space, sampler=tc.make_sampler("tpe", seed=0))
    study.optimize(lambda t: (t.config["x"] - 0.3) ** 2 + (t.config["y"] - 0.6) ** 2, n_trials=15)
    batch = [study.ask().config for _ in range(6)]
    keys = {tuple(sorted(c.items())) for c in batch}
    assert len(keys) == 6
    pts = np.array([[c["x"], c["y"]] for c in batch])
    assert np.linalg.norm(pts[:, None] - pts[None], axis=-1)[np.triu_indices(6, 1)].min() > 1e-3


def test_tpe_options_are_validated() -> None:
    with pytest.raises(InvalidParameterError, match="'gamma' parameter of TPESampler"):
        TPESampler(gamma=1.5)
    with pytest.raises(InvalidParameterError, match="'gamma'"):
        TPESampler(gamma=0.0)
    with pytest.raises(InvalidParameterError, match="'n_candidates'"):
        TPESampler(n_candidates=0)
    sampler = tc.make_sampler("tpe", seed=0, options={"n_startup_trials": 5, "gamma": 0.2})
    assert isinstance(sampler, TPESampler)
    assert (sampler.n_startup_trials, sampler.gamma) == (5, 0.2)


def _history_with(extra_state: TrialState | None, extra: dict) -> History:
    rng = np.random.default_rng(0)
    trials = []
    for i in range(20):
        x, y = rng.random(2)
        value = (x - 0.3) ** 2 + (y - 0.6) ** 2
        trials.append(
            FrozenTrial(number=i, state=TrialState.COMPLETE, config={"x": x, "y": y}, value=value)
        )
    if extra_state is not None:
        trials.append(FrozenTrial(number=20, state=extra_state, config=extra))
    return History(trials, "minimize")


def test_paused_trials_are_not_repeated_but_not_counted_as_bad() -> None:
    space = tc.Space({"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)})
    sampler = TPESampler(seed=0)
    alone = sampler.suggest(space, _history_with(None, {}), 21)
    near = {"x": min(1.0, alone["x"] + 0.01), "y": alone["y"]}
    paused = _history_with(TrialState.PAUSED, near)
    running = _history_with(TrialState.RUNNING, near)
    assert [t.number for t in paused.pending] == [20] and paused.running == []
    assert [t.number for t in running.running] == [20]
    # a paused trial leaves the model alone; a running one joins the bad group
    assert sampler.suggest(space, paused, 21) == alone
    assert sampler.suggest(space, running, 21) != alone
    # and neither is proposed again
    for state in (TrialState.PAUSED, TrialState.RUNNING):
        assert sampler.suggest(space, _history_with(state, alone), 21) != alone


def test_adaptive_bandwidths_follow_the_data_and_stay_clipped() -> None:
    from tunecraft.samplers._tpe import _neighbour_bandwidths

    rng = np.random.default_rng(0)
    for k in (3, 10, 60, 300):
        obs = rng.random((k, 2))
        obs[0, 1] = np.nan  # inactive: its width is never used
        widths = _neighbour_bandwidths(obs)
        assert widths.shape == (k, 2)
        assert np.all(widths >= 1.0 / min(100, k + 2) - 1e-12) and np.all(widths <= 1.0)
    crowded = np.concatenate([np.full((20, 1), 0.5) + 1e-3 * np.arange(20)[:, None], [[0.95]]])
    widths = _neighbour_bandwidths(crowded)[:, 0]
    assert widths[-1] > 5 * np.median(widths[:-1])  # the lone point gets a wide kernel


def test_fixed_bandwidth_option() -> None:
    sampler = tc.make_sampler("tpe", seed=0, options={"bandwidth": 0.2})
    assert isinstance(sampler, TPESampler) and sampler.bandwidth == 0.2
    study = tc.Study({"x": tc.uniform(0, 1)}, sampler=sampler)
    study.optimize(lambda t: (t.config["x"] - 0.7) ** 2, n_trials=25)
    assert abs(study.best_config["x"] - 0.7) < 0.1
    with pytest.raises(InvalidParameterError, match="'bandwidth'"):
        TPESampler(bandwidth=0.0)

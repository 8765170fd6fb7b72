"""Behaviour specific to each built-in sampler and to make_sampler."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time

import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError, SamplerExhaustedError
from tunecraft.samplers import (
    AutoSampler,
    GridSampler,
    History,
    RandomSampler,
    SobolSampler,
    available_samplers,
)
from tunecraft.trial import TrialState


def _space() -> tc.Space:
    return tc.Space(
        {
            "opt": tc.choice(["sgd", "adam"]),
            "momentum": tc.uniform(0.0, 0.9).when(opt="sgd"),
            "layers": tc.integer(1, 3),
        }
    )


def _keys(configs: list[dict]) -> list[tuple]:
    return [tuple(sorted(c.items())) for c in configs]


# -- make_sampler ---------------------------------------------------------------------------------
def test_make_sampler_builds_each_registered_sampler() -> None:
    assert {"random", "sobol", "grid", "auto"} <= set(available_samplers())
    assert isinstance(tc.make_sampler("random", seed=0), RandomSampler)
    assert isinstance(tc.make_sampler("SOBOL", seed=0), SobolSampler)
    assert isinstance(tc.make_sampler("grid"), GridSampler)
    assert isinstance(tc.make_sampler("auto", seed=1), AutoSampler)
    assert tc.make_sampler("random", seed=5).seed == 5


def test_make_sampler_passes_options_without_mutating_them() -> None:
    options = {"n_points": 2, "shuffle": True}
    sampler = tc.make_sampler("grid", seed=0, options=options)
    assert isinstance(sampler, GridSampler)
    assert (sampler.n_points, sampler.shuffle) == (2, True)
    assert options == {"n_points": 2, "shuffle": True}


def test_make_sampler_rejects_unknown_names_and_bad_options() -> None:
    with pytest.raises(InvalidParameterError, match=r"'name' parameter of make_sampler.*'nope'"):
        tc.make_sampler("nope")
    with pytest.raises(TypeError, match=r"'options' parameter of make_sampler"):
        tc.make_sampler("random", options=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"bogus"):
        tc.make_sampler("random", options={"bogus": 1})
    with pytest.raises(InvalidParameterError, match=r"'seed' parameter of RandomSampler"):
        tc.make_sampler("random", seed=-1)
    with pytest.raises(TypeError, match=r"'seed' parameter of SobolSampler"):
        tc.make_sampler("sobol", seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"'n_points' parameter of GridSampler"):
        tc.make_sampler("grid", options={"n_points": 0})


# -- random and sobol -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["random", "sobol", "auto"])
def test_suggestion_depends_on_trial_number_not_call_order(name: str) -> None:
    space = _space()
    history = History([], "minimize")
    forward = tc.make_sampler(name, seed=11)
    backward = tc.make_sampler(name, seed=11)
    ahead = [forward.suggest(space, history, n) for n in range(6)]
    behind = [backward.suggest(space, history, n) for n in reversed(range(6))][::-1]
    assert ahead == behind
    assert len({c.get("momentum") for c in ahead if "momentum" in c}) > 1


@pytest.mark.parametrize("name", ["random", "sobol", "auto"])
def test_sampler_survives_pickling(name: str) -> None:
    space = _space()
    history = History([], "minimize")
    sampler = tc.make_sampler(name, seed=4)
    before = [sampler.suggest(space, history, n) for n in range(4)]
    clone = pickle.loads(pickle.dumps(sampler))
    assert [clone.suggest(space, history, n) for n in range(4)] == before


def test_unseeded_sampler_is_self_consistent_but_differs_between_instances() -> None:
    space = tc.Space({"x": tc.uniform(0, 1)})
    history = History([], "minimize")
    a, b = RandomSampler(), RandomSampler()
    assert a.suggest(space, history, 0) == a.suggest(space, history, 0)
    assert a.suggest(space, history, 0) != b.suggest(space, history, 0)


def test_sobol_covers_the_unit_interval_evenly() -> None:
    # The first 2**k points of a scrambled Sobol sequence put exactly one point in each of the
    # 2**k equal bins: better than random draws, which leave bins empty.
    space = tc.Space({"x": tc.uniform(0, 1)})
    history = History([], "minimize")
    sampler = SobolSampler(seed=0)
    xs = [sampler.suggest(space, history, n)["x"] for n in range(16)]
    assert sorted(int(x * 16) for x in xs) == list(range(16))


def test_auto_sampler_starts_with_sobol() -> None:
    sampler = AutoSampler(seed=0)
    assert isinstance(sampler.choose(_space(), History([], "minimize")), SobolSampler)


# -- grid -----------------------------------------------------------------------------------------
def test_grid_study_runs_every_point_once_and_stops_by_itself() -> None:
    space = _space()
    study = tc.Study(space, sampler=tc.make_sampler("grid", options={"n_points": 3}))
    study.optimize(lambda t: float(t.config["layers"]))  # no n_trials, no timeout
    configs = [t.config for t in study.trials]
    expected = space.grid(3)
    assert len(expected) == 3 * 3 + 3  # sgd: 3 momenta x 3 layers; adam: 3 layers
    assert len(configs) == len(expected)
    assert sorted(_keys(configs)) == sorted(_keys(expected))
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    with pytest.raises(SamplerExhaustedError):
        study.ask()
    assert len(study.trials) == len(expected)  # the refused ask left no trial behind


def test_grid_stops_before_n_trials_when_exhausted() -> None:
    study = tc.Study({"x": tc.choice([1, 2, 3])}, sampler="grid")
    study.optimize(lambda t: t.config["x"], n_trials=10)
    assert [t.config["x"] for t in study.trials] == [1, 2, 3]


def test_grid_skips_points_running_enqueued_or_failed() -> None:
    space = tc.Space({"x": tc.choice(["a", "b", "c", "d", "e"])})
    study = tc.Study(space, sampler="grid")
    running = study.ask()
    assert running.config == {"x": "a"}
    failed = study.ask()
    study.tell(failed, state="failed")
    study.enqueue({"x": "d"})
    sampler = study.sampler
    # The sampler sees the running, failed and waiting trials and proposes the next free point.
    assert sampler.suggest(space, study.history(), 3) == {"x": "c"}
    seen = [study.ask().config["x"] for _ in range(3)]
    assert seen == ["d", "c", "e"]  # the enqueued point first, then the free ones, no repeats
    with pytest.raises(SamplerExhaustedError):
        study.ask()
    study.tell(running, 1.0)


def test_grid_from_a_dict_of_values_and_from_a_list_of_configs() -> None:
    space = _space()
    by_values = GridSampler({"opt": ["sgd", "adam"], "momentum": [0.1, 0.5], "layers": [1]})
    points = by_values.points(space)
    # momentum is dropped where inactive, and the duplicate adam points collapse into one
    assert _keys(points) == _keys(
        [
            {"opt": "sgd", "momentum": 0.1, "layers": 1},
            {"opt": "sgd", "momentum": 0.5, "layers": 1},
            {"opt": "adam", "layers": 1},
        ]
    )
    listed = GridSampler([{"opt": "adam", "layers": 2}, {"opt": "adam", "layers": 2}])
    assert listed.points(space) == [{"opt": "adam", "layers": 2}]


def test_grid_rejects_points_outside_the_space() -> None:
    space = _space()
    with pytest.raises(InvalidParameterError, match=r"'layers'=7"):
        GridSampler([{"opt": "adam", "layers": 7}]).points(space)
    with pytest.raises(InvalidParameterError, match=r"values of 'layers' must be a list"):
        GridSampler({"opt": ["adam"], "layers": 2}).points(space)  # type: ignore[dict-item]


def test_shuffled_grid_depends_on_seed_but_covers_the_same_points() -> None:
    space = tc.Space({"x": tc.integer(0, 9), "y": tc.choice(["a", "b"])})
    a = GridSampler(shuffle=True, seed=0, n_points=10).points(space)
    b = GridSampler(shuffle=True, seed=1, n_points=10).points(space)
    assert a != b
    assert sorted(_keys(a)) == sorted(_keys(b)) == sorted(_keys(space.grid(10)))


def test_grid_of_numpy_values_runs_and_stores_python_values() -> None:
    """A grid written with numpy (``list(np.arange(1, 4))``) failed with "Object of type int64
    is not JSON serializable"."""
    import numpy as np

    space = {"n": tc.integer(1, 8), "x": tc.uniform(0, 1), "c": tc.choice([1, 2])}
    grid = {"n": list(np.arange(1, 4)), "x": list(np.linspace(0, 1, 2)), "c": [np.int64(2)]}
    study = tc.Study(space, sampler=tc.make_sampler("grid", options={"grid": grid}))
    study.optimize(lambda t: 0.0, n_trials=10)
    assert len(study.trials) == 6
    assert {(t.config["n"], t.config["x"]) for t in study.trials} == {
        (n, x) for n in (1, 2, 3) for x in (0.0, 1.0)
    }
    assert all(type(t.config["n"]) is int and type(t.config["c"]) is int for t in study.trials)


def test_grid_naming_a_parameter_the_space_lacks_says_so() -> None:
    sampler = GridSampler({"x": [0.5], "zz": [1]})
    space = tc.Space({"x": tc.uniform(0, 1)})
    with pytest.raises(InvalidParameterError, match=r"unknown parameter 'zz'; the space has x"):
        sampler.points(space)


def test_warm_up_runs_before_the_trials_clock_starts() -> None:
    """The first Sobol suggestion imported scipy.stats inside trial 0's clock (2 s of the
    demo's first trial, against 0.2 s for the others)."""

    warmed: list[float] = []

    class Slow(RandomSampler):
        def warm_up(self, space: tc.Space, history: History) -> None:
            time.sleep(0.5)  # a one-time cost, as an import is
            warmed.append(time.time())

    study = tc.Study({"x": tc.uniform(0, 1)}, sampler=Slow(seed=0))
    trial = study.ask()
    study.tell(trial, 1.0)
    record = study.trials[0]
    assert len(warmed) == 1 and record.datetime_start is not None
    assert record.datetime_start.timestamp() >= warmed[0]  # the clock started after it
    assert record.duration is not None and record.duration < 0.4  # seconds


@pytest.mark.parametrize(
    ("name", "module"),
    [("sobol", "scipy.stats"), ("auto", "scipy.stats"), ("gp", "scipy.optimize")],
)
def test_warm_up_imports_what_the_first_suggestion_needs(name: str, module: str) -> None:
    code = (
        f"import sys, tunecraft as tc; s = tc.make_sampler({name!r}, seed=0); "
        "space = tc.Space({'x': tc.uniform(0, 1)}); "
        "from tunecraft.samplers import History; "
        f"before = {module!r} in sys.modules; s.warm_up(space, History([], 'minimize')); "
        f"print(before, {module!r} in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "True"]

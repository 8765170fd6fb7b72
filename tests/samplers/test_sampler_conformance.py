"""Every built-in sampler through the public conformance suite."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import tunecraft as tc
from tunecraft.testing.samplers import SamplerConformance, check_other_seed_differs


class TestRandomSampler(SamplerConformance):
    spec = "random"


class TestSobolSampler(SamplerConformance):
    spec = "sobol"


class TestAutoSampler(SamplerConformance):
    spec = "auto"


class TestGridSampler(SamplerConformance):
    # Unshuffled, a grid visits its points in the same order whatever the seed; shuffled, the
    # seed picks the order.
    spec = "grid"
    options: ClassVar[dict[str, Any]] = {"n_points": 3, "shuffle": True}


def test_unshuffled_grid_ignores_the_seed() -> None:
    from tunecraft.testing.samplers import factory_from_spec

    with pytest.raises(AssertionError, match="gave the same"):
        check_other_seed_differs(factory_from_spec("grid", {"n_points": 3}))


class TestGPSampler(SamplerConformance):
    spec = "gp"


class TestTPESampler(SamplerConformance):
    spec = "tpe"


@pytest.mark.parametrize("sampler", ["gp", "tpe", "auto"])
def test_a_config_that_failed_is_not_proposed_again(sampler: str) -> None:
    # The objective fails right of x = 0.5, next to the best region: a model that ignored the
    # failures kept proposing the same failing point (10 times in 10 for the GP).
    space = {"x": tc.uniform(0.0, 1.0), "y": tc.uniform(0.0, 1.0)}

    def objective(trial: tc.Trial) -> float:
        x, y = trial.config["x"], trial.config["y"]
        if x > 0.5:
            raise ValueError("diverged")
        return (x - 0.45) ** 2 + 0.1 * y

    study = tc.Study(space, sampler=sampler, seed=0)
    for i in range(10):
        study.add_trial({"x": 0.05 * i, "y": 0.5}, (0.05 * i - 0.45) ** 2 + 0.05)
    study.optimize(objective, n_trials=15, catch=(ValueError,))
    new = study.trials[10:]
    failed = [t.config["x"] for t in new if t.state is tc.TrialState.FAILED]
    assert len(set(failed)) == len(failed)  # no failing point twice
    assert len(failed) <= 5
    assert sum(t.state is tc.TrialState.COMPLETE for t in new) >= 10

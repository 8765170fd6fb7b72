"""Every built-in scheduler through the conformance suite, and each usable by name."""

from __future__ import annotations

import pytest

import tunecraft as tc
from tunecraft.schedulers import (
    ASHAScheduler,
    AutoScheduler,
    HyperbandScheduler,
    MedianScheduler,
    PBTScheduler,
    PercentileScheduler,
    Scheduler,
    SuccessiveHalvingScheduler,
    available_schedulers,
    make_scheduler,
)
from tunecraft.testing.schedulers import SchedulerConformance

_FACTORIES = {
    "median": lambda: MedianScheduler(n_startup_trials=2),
    "percentile": lambda: PercentileScheduler(25.0, n_startup_trials=2),
    "halving": lambda: SuccessiveHalvingScheduler(min_resource=1, reduction_factor=3),
    "auto": lambda: AutoScheduler(max_resource=9),
    "auto-stopping": lambda: AutoScheduler(max_resource=9, variant="stopping", n_pairs=3),
    "auto-by-name": lambda: make_scheduler("auto"),
    "asha-stopping": lambda: ASHAScheduler(min_resource=1, max_resource=9),
    "asha-promotion": lambda: ASHAScheduler(max_resource=9, variant="promotion"),
    "asha-auto": lambda: ASHAScheduler(min_resource="auto", max_resource=9),
    "asha-model-based": lambda: ASHAScheduler(max_resource=9, model_based=True),
    "bohb": lambda: make_scheduler("bohb", options={"max_resource": 9}),
    "hyperband": lambda: HyperbandScheduler(min_resource=1, max_resource=9),
    "hyperband-promotion": lambda: HyperbandScheduler(max_resource=9, variant="promotion"),
    "pbt": lambda: PBTScheduler(perturbation_interval=3, seed=0),
}


class TestBuiltinSchedulers(SchedulerConformance):
    @pytest.fixture(params=sorted(_FACTORIES))
    def scheduler(self, request: pytest.FixtureRequest) -> Scheduler:
        return _FACTORIES[request.param]()


@pytest.mark.parametrize(
    "name", ["median", "percentile", "halving", "asha", "hyperband", "bohb", "pbt", "auto"]
)
def test_usable_by_name(name: str) -> None:
    assert name in available_schedulers()
    study = tc.Study({"x": tc.uniform(0, 1)}, scheduler=name, seed=0)
    assert isinstance(study.scheduler, Scheduler)
    assert type(study.scheduler) is type(make_scheduler(name))

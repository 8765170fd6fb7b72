"""The median and percentile stopping rules, step by step."""

from __future__ import annotations

import pytest

from tunecraft.schedulers import MedianScheduler, PercentileScheduler
from tunecraft.testing.schedulers import Scenario

C, S = "continue", "stop"


def _two_complete(sc: Scenario) -> Scenario:
    sc.reports(0, [1.0, 0.8, 0.6, 0.5], [C, C, C, C]).finish(0)  # nothing complete yet
    sc.reports(1, [0.9, 0.7, 0.5, 0.4], [C, C, C, C]).finish(1)
    return sc


def test_median_rule_with_warmup_and_startup() -> None:
    # Steps 1..4: warm-up ends at step 2, two complete trials before any stop.
    sc = _two_complete(Scenario(MedianScheduler(n_startup_trials=2, n_warmup_steps=2)))
    sc.report(2, step=1, value=5.0, expect=C)  # warm-up
    sc.report(2, step=2, value=1.5, expect=S)  # best 1.5 vs median(0.8, 0.7) = 0.75
    sc.report(3, step=1, value=0.1, expect=C)
    sc.report(3, step=2, value=0.9, expect=C)  # its best so far (0.1) counts
    sc.report(4, step=1, value=0.9, expect=C)
    sc.report(4, step=2, value=0.75, expect=C)  # equal to the median: not worse
    sc.report(4, step=3, value=0.7, expect=S)  # median(0.6, 0.5) = 0.55


def test_median_rule_waits_for_n_startup_trials() -> None:
    sc = Scenario(MedianScheduler(n_startup_trials=3))
    sc.reports(0, [0.1, 0.1], [C, C]).finish(0)
    sc.reports(1, [0.2, 0.2], [C, C]).finish(1)
    sc.reports(2, [9.0, 9.0], [C, C])  # only two complete


def test_n_min_trials_counts_complete_trials_that_reached_the_step() -> None:
    sc = _two_complete(Scenario(MedianScheduler(n_startup_trials=0, n_min_trials=3)))
    sc.reports(2, [9.0], [C]).finish(2)
    sc.reports(3, [9.5], [S])  # 3 reached step 1: median(1.0, 0.9, 9.0) = 1.0 < 9.5
    sc.report(4, step=5, value=9.0, expect=C)  # nobody else reached step 5


def test_interval_steps() -> None:
    sc = _two_complete(Scenario(MedianScheduler(n_startup_trials=1, interval_steps=2)))
    sc.reports(2, [5.0, 5.0], [C, S])  # judged at steps 0, 2, 4...: median 0.75 at step 2
    sc.reports(3, [0.1, 5.0, 5.0, 5.0], [C, C, C, C])  # its best (0.1) beats every median


def test_percentile_minimize_and_maximize() -> None:
    rule = PercentileScheduler(25.0, n_startup_trials=3)
    sc = Scenario(rule)
    for n, v in enumerate([0.1, 0.2, 0.3]):
        sc.reports(n, [v], [C]).finish(n)
    sc.reports(3, [0.18], [S])  # 25th percentile of 0.1, 0.2, 0.3 is 0.15
    sc.reports(4, [0.12], [C])

    sc = Scenario(PercentileScheduler(25.0, n_startup_trials=3), direction="maximize")
    for n, v in enumerate([0.1, 0.2, 0.3]):
        sc.reports(n, [v], [C]).finish(n)
    sc.reports(3, [0.22], [S])  # the best quarter lies above 0.25
    sc.reports(4, [0.28], [C])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"percentile": 101.0}, "The 'percentile' parameter of PercentileScheduler must be"),
        ({"n_warmup_steps": -1}, "The 'n_warmup_steps' parameter of PercentileScheduler must"),
        ({"interval_steps": 0}, "The 'interval_steps' parameter of PercentileScheduler must"),
        ({"n_min_trials": 0}, "The 'n_min_trials' parameter of PercentileScheduler must"),
    ],
)
def test_percentile_validates(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        PercentileScheduler(**kwargs)


def test_median_validates() -> None:
    with pytest.raises(ValueError, match="The 'n_startup_trials' parameter of MedianScheduler"):
        MedianScheduler(n_startup_trials=-1)

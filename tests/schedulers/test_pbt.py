"""Population-based training: who is replaced, by whom, and how the config is explored."""

from __future__ import annotations

import numpy as np
import pytest

import tunecraft as tc
from tunecraft.schedulers import PBTScheduler, Resume
from tunecraft.space import Space
from tunecraft.testing.schedulers import Scenario

C, P = "continue", "pause"
SPACE = Space({"x": tc.uniform(0.0, 1.0), "n": tc.integer(1, 8), "opt": tc.choice(["a", "b"])})


def _population(pbt: PBTScheduler) -> Scenario:
    sc = Scenario(pbt, space=SPACE)
    for n, x in enumerate([0.5, 0.6, 0.7, 0.8]):
        sc.start(n, {"x": x, "n": 4, "opt": "a"})
    sc.reports(0, [0.3, 0.1], [C, C])  # step 2: a population of 1 decides nothing
    sc.reports(1, [0.3, 0.2], [C, C])
    sc.reports(2, [0.3, 0.3], [C, C])
    sc.reports(3, [0.3, 0.9], [C, P])  # 4 at step 2: bottom quarter
    return sc


def test_bottom_trial_pauses_and_resumes_from_a_top_trial() -> None:
    pbt = PBTScheduler(perturbation_interval=2, resample_probability=0.0, seed=0)
    sc = _population(pbt)
    order = pbt.on_ask(SPACE, sc.history())
    assert order is not None
    assert (order.number, order.budget, order.checkpoint_from) == (3, 4, 0)
    assert order.config is not None
    # No resampling: each number is the donor's times 0.8 or 1.2 (ints on their grid).
    assert order.config["x"] in (pytest.approx(0.4), pytest.approx(0.6))
    assert order.config["n"] in (3, 5)
    assert order.config["opt"] == "a"
    assert pbt.on_ask(SPACE, sc.history()) == order  # deterministic
    sc.ask(order)
    assert sc.trial(3).config == order.config
    assert sc.trial(3).intermediate == {1: 0.3, 2: 0.9}  # its history stays
    sc.reports(3, [0.5, 0.4], [C, C])  # step 4: 0.4 ranks second of the one trial there


def test_explore_is_seeded() -> None:
    donor = {"x": 0.5, "n": 4, "opt": "a"}
    pbt = PBTScheduler(resample_probability=0.5, seed=3)

    def draws(p: PBTScheduler, seed: int) -> list[dict]:
        return [p.explore(SPACE, donor, np.random.default_rng([seed, i])) for i in range(20)]

    first = draws(pbt, 0)
    assert first == draws(PBTScheduler(resample_probability=0.5, seed=3), 0)
    assert first != draws(pbt, 1)
    assert all(SPACE.contains(c) for c in first)
    assert any(c["opt"] == "b" for c in first)  # categoricals are resampled sometimes
    assert donor == {"x": 0.5, "n": 4, "opt": "a"}  # not mutated


def test_pbt_order_depends_on_the_seed() -> None:
    orders = set()
    for seed in range(6):
        sc = _population(PBTScheduler(perturbation_interval=2, seed=seed))
        order = PBTScheduler(perturbation_interval=2, seed=seed).on_ask(SPACE, sc.history())
        assert isinstance(order, Resume)
        orders.add(tuple(sorted(order.config.items())))  # type: ignore[union-attr]
    assert len(orders) > 1


def test_top_and_middle_trials_continue() -> None:
    sc = _population(PBTScheduler(perturbation_interval=2, seed=0))
    sc.reports(0, [0.1, 0.05], [C, C])  # step 4: alone
    sc.report(4, step=2, value=0.25, expect=C)  # 5 at step 2, k = 1: 0.9 is the bottom
    sc.report(5, step=2, value=0.95, expect=P)  # now the bottom


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"perturbation_interval": 0}, "The 'perturbation_interval' parameter of PBT"),
        ({"quantile_fraction": 0.6}, "The 'quantile_fraction' parameter of PBT"),
        ({"resample_probability": 1.5}, "The 'resample_probability' parameter of PBT"),
        ({"perturbation_factors": ()}, "The 'perturbation_factors' parameter of PBT"),
        ({"perturbation_factors": (0.8, -1)}, "The 'perturbation_factors' parameter of PBT"),
        ({"min_population": 1}, "The 'min_population' parameter of PBT"),
    ],
)
def test_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PBTScheduler(**kwargs)


def test_irregular_steps_decide_at_the_first_report_past_each_multiple() -> None:
    pbt = PBTScheduler(perturbation_interval=4, min_population=2, seed=0)
    sc = Scenario(pbt, space=SPACE)
    for n, x in enumerate([0.5, 0.6]):
        sc.start(n, {"x": x, "n": 4, "opt": "a"})
    sc.report(0, step=3, value=0.1, expect=C)  # before the first multiple
    sc.report(0, step=5, value=0.1, expect=C)  # crosses 4: alone there, decides nothing
    sc.report(1, step=2, value=0.9, expect=C)
    sc.report(1, step=5, value=0.9, expect=P)  # crosses 4 at 5: the worse of two
    assert pbt.snapshot_at(sc.trial(1)) == 4
    order = pbt.on_ask(SPACE, sc.history())
    assert order is not None
    # The donor's state is asked for at the milestone; the next decision is at 8.
    assert (order.number, order.checkpoint_from, order.checkpoint_step, order.budget) == (
        1,
        0,
        4,
        8,
    )
    sc.ask(order)
    sc.report(1, step=7, value=0.2, expect=C)  # no multiple crossed since 5
    assert pbt.snapshot_at(sc.trial(1)) is None

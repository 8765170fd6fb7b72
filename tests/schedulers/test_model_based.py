"""ASHA's data-driven first rung and the model-based (BOHB-style) view samplers learn from."""

from __future__ import annotations

from typing import Any

import pytest

import tunecraft as tc
from tunecraft.samplers import History, Sampler
from tunecraft.schedulers import ASHAScheduler, HyperbandScheduler, make_scheduler
from tunecraft.schedulers._rungs import budget_view
from tunecraft.space import Space
from tunecraft.testing.schedulers import Scenario
from tunecraft.trial import FrozenTrial, TrialState

C, S = "continue", "stop"


def test_auto_min_resource_skips_rungs_that_rank_badly() -> None:
    asha = ASHAScheduler(min_resource="auto", max_resource=9, reduction_factor=3)
    sc = Scenario(asha)
    # Until 3 trials reach step 9 nothing is ranked, however bad it looks.
    sc.reports(0, [0.9, 0.6, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.1], [C] * 9)  # slow starter
    sc.reports(1, [0.1, 0.2, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [C] * 9)
    assert asha.chosen_min_resource(sc.history()) is None
    sc.reports(2, [0.5, 0.45, 0.35, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3], [C] * 9)
    # Step 1 ranks the three in reverse of step 9 (rho = -1); step 3 ranks them right.
    assert asha.chosen_min_resource(sc.history()) == 3
    sc.reports(3, [0.01, 0.02], [C, C])  # step 1 is no rung any more
    sc.reports(3, [0.9], [S])  # rung 3: 0.2, 0.5, 0.35, 0.9 -> k = 1


def test_auto_min_resource_without_any_reliable_rung_ranks_nothing() -> None:
    asha = ASHAScheduler(min_resource="auto", max_resource=3, reduction_factor=3)
    sc = Scenario(asha)
    for n, (early, final) in enumerate([(0.1, 0.9), (0.5, 0.5), (0.9, 0.1)]):
        sc.reports(n, [early, final, final], [C, C, C])
    assert asha.chosen_min_resource(sc.history()) is None
    sc.reports(3, [5.0, 5.0], [C, C])


def test_auto_min_resource_validation() -> None:
    with pytest.raises(ValueError, match="'min_resource' parameter of ASHA can be 'auto' only"):
        ASHAScheduler(min_resource="auto")
    with pytest.raises(ValueError, match="'min_correlation' parameter of ASHA"):
        ASHAScheduler(min_resource="auto", max_resource=9, min_correlation=1.5)
    with pytest.raises(ValueError, match="'n_full' parameter of ASHA"):
        ASHAScheduler(min_resource="auto", max_resource=9, n_full=2)
    with pytest.raises(TypeError, match="'model_based' parameter of Hyperband"):
        HyperbandScheduler(model_based=1)  # type: ignore[arg-type]


def _t(number: int, state: TrialState, inter: dict[int, float]) -> FrozenTrial:
    return FrozenTrial(number, state, {"x": number / 10}, intermediate=inter)


def test_budget_view_uses_the_highest_budget_with_enough_points() -> None:
    trials = [
        _t(0, TrialState.COMPLETE, {1: 0.5, 3: 0.4, 9: 0.3}),
        _t(1, TrialState.PRUNED, {1: 0.6, 3: 0.7}),
        _t(2, TrialState.PAUSED, {1: 0.2, 3: 0.1}),
        _t(3, TrialState.PAUSED, {1: 0.9}),
        _t(4, TrialState.RUNNING, {1: 0.3}),
        _t(5, TrialState.FAILED, {1: 0.3, 3: 0.3}),
    ]
    assert budget_view(trials, [1, 3, 9], min_points=4) is not None
    view = budget_view(trials, [1, 3, 9], min_points=3)
    assert view is not None
    # Budget 3 has 3 live points (0, 1, 2); budget 9 only one.
    assert [(t.state, t.value) for t in view] == [
        (TrialState.COMPLETE, 0.4),
        (TrialState.COMPLETE, 0.7),
        (TrialState.COMPLETE, 0.1),
        (TrialState.PRUNED, None),  # paused below the budget: not in flight, not in the model
        (TrialState.RUNNING, None),
        (TrialState.FAILED, None),
    ]
    assert view[0].intermediate == trials[0].intermediate
    assert budget_view(trials, [1, 3, 9], min_points=6) is None


class _Recorder(Sampler):
    """Random proposals; records what it was shown."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[list[tuple[int, float | None]]] = []

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        self.seen.append([(t.number, t.value) for t in history.complete])
        return space.sample(self.rng(number))


def test_study_hands_the_sampler_the_model_based_view() -> None:
    sampler = _Recorder()
    asha = ASHAScheduler(max_resource=9, model_based=True, min_points_in_model=2)
    study = tc.Study({"x": tc.uniform(0, 1)}, sampler=sampler, scheduler=asha)
    a = study.ask()
    a.report(0.5, step=1)
    study.tell(a, 0.5)
    b = study.ask()
    b.report(0.9, step=1)
    assert b.should_stop()
    study.tell(b)
    assert sampler.seen[-1] == [(0, 0.5)]  # b was proposed when only a had a result
    study.ask()
    assert sampler.seen[-1] == [(0, 0.5), (1, 0.9)]  # both at budget 1, pruned b included
    assert study.trials[1].state is TrialState.PRUNED  # the storage is untouched

    plain = _Recorder()
    study = tc.Study({"x": tc.uniform(0, 1)}, sampler=plain, scheduler=ASHAScheduler())
    for value in (0.5, 0.9):
        t = study.ask()
        t.report(value, step=1)
        study.tell(t, value)
    study.ask()
    assert plain.seen[-1] == [(0, 0.5)]  # without the view: complete trials only


def test_bohb_by_name() -> None:
    bohb = make_scheduler("bohb", options={"max_resource": 27})
    assert isinstance(bohb, HyperbandScheduler) and bohb.model_based
    assert not make_scheduler("hyperband").model_based  # type: ignore[attr-defined]

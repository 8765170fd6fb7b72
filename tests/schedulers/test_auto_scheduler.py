"""AutoScheduler: rungs chosen from the rank correlation between rungs, hand-written histories."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

import tunecraft as tc
from tunecraft.samplers import History
from tunecraft.schedulers import AutoScheduler, Resume, make_scheduler
from tunecraft.space import Space
from tunecraft.testing.schedulers import Scenario
from tunecraft.trial import FrozenTrial, TrialState

C, S, P = "continue", "stop", "pause"


def _done(sc: Scenario, number: int, curve: Mapping[int, float]) -> None:
    """Trial ``number`` reported ``curve`` (step -> value) and completed, no decisions asked."""
    sc.start(number)
    tid = sc.trial(number).trial_id
    for step, value in sorted(curve.items()):
        sc.storage.report(tid, step, value)
    sc.finish(number)


def _nine(step3_top: tuple[float, float, float]) -> list[dict[int, float]]:
    """Nine finished trials with values at steps 1, 3 and 9.

    Trials 0-2 are the top third at step 1 (0.1, 0.2, 0.3); at step 3 they score
    ``step3_top`` and are the top third there too; at step 9 they keep their step-3 order.
    The other six trail at every step.
    """
    curves = [{1: 0.1 * (n + 1), 3: 0.4 + 0.05 * n, 9: 0.4 + 0.05 * n} for n in range(9)]
    for n in range(3):
        curves[n][3] = step3_top[n]
        curves[n][9] = step3_top[n] / 2
    return curves


# At step 1 the three best rank in reverse of step 3 (rho = -1); step 3 ranks like step 9.
_MISLEADING = _nine((0.3, 0.2, 0.1))
_FAITHFUL = _nine((0.1, 0.2, 0.3))


def _stopping(**options: object) -> AutoScheduler:
    return AutoScheduler(max_resource=9, variant="stopping", n_pairs=3, **options)  # type: ignore[arg-type]


def test_a_rung_whose_ranking_misleads_is_no_longer_judged() -> None:
    auto = _stopping()
    sc = Scenario(auto)
    for n, curve in enumerate(_MISLEADING):
        _done(sc, n, curve)
    checks = {c.rung: c for c in auto.checks(sc.history())}
    # Each rung is checked on its top third (what it would promote) against the next level.
    assert (checks[1].reference, checks[1].n_pairs) == (3, 3)
    assert checks[1].correlation == pytest.approx(-1.0) and not checks[1].in_use
    assert (checks[3].reference, checks[3].n_pairs) == (9, 3)
    assert checks[3].correlation == pytest.approx(1.0) and checks[3].in_use
    assert auto.rungs_in_use(sc.history()) == [3]
    assert auto.chosen_min_resource(sc.history()) == 3
    # The worst value at step 1 no longer stops a trial; step 3 still judges.
    sc.reports(9, [0.95, 0.95], [C, C])
    sc.report(9, step=3, value=0.95, expect=S)


def test_a_rung_whose_ranking_predicts_stays_in_use() -> None:
    auto = _stopping()
    sc = Scenario(auto)
    for n, curve in enumerate(_FAITHFUL):
        _done(sc, n, curve)
    assert auto.rungs_in_use(sc.history()) == [1, 3]
    sc.report(9, step=1, value=0.95, expect=S)


def test_rungs_are_judged_until_there_are_enough_pairs() -> None:
    auto = _stopping()
    sc = Scenario(auto)
    for n, curve in enumerate(_MISLEADING[:7]):  # top third at step 1: two trials, too few
        _done(sc, n, curve)
    assert [(c.rung, c.n_pairs, c.correlation, c.in_use) for c in auto.checks(sc.history())] == [
        (1, 2, None, True),
        (3, 2, None, True),
    ]
    sc.report(7, step=1, value=0.95, expect=S)  # 8 at rung 1, top third still 2: no check


def test_a_dropped_middle_rung_widens_the_spacing() -> None:
    auto = AutoScheduler(max_resource=27, variant="stopping", n_pairs=3)
    sc = Scenario(auto)
    rest = [0.4, 0.5, 0.6]
    # Top third at step 1: trials 3-5, in the same order at step 9 (rung 1 predicts).
    # Top third at step 3: trials 0-2, in reverse order at step 9 (rung 3 misleads).
    # Only trials 6-8 got to step 27: rung 9 has no pair from its top third yet.
    step1 = [0.4, 0.5, 0.6, 0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    step3 = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    step9 = [0.3, 0.2, 0.1, 0.1, 0.2, 0.3, *rest]
    for n in range(9):
        curve = {1: step1[n], 3: step3[n], 9: step9[n]}
        if n >= 6:
            curve[27] = step9[n]
        _done(sc, n, curve)
    checks = auto.checks(sc.history())
    assert [(c.rung, c.reference, c.n_pairs, c.in_use) for c in checks] == [
        (1, 9, 3, True),  # checked against 9, the next level in use
        (3, 9, 3, False),
        (9, 27, 0, True),  # not checked yet: judged meanwhile
    ]
    assert checks[0].correlation == pytest.approx(1.0)
    assert checks[1].correlation == pytest.approx(-1.0)
    assert auto.rungs_in_use(sc.history()) == [1, 9]
    sc.reports(9, [0.05, 0.95, 0.95], [C, C, C])  # best at 1; worst at 3, which is no rung
    sc.reports(9, [0.95] * 5, [C] * 5)
    sc.report(9, step=9, value=0.95, expect=S)  # worst at rung 9


def test_promotion_resumes_trials_paused_at_a_rung_that_was_dropped() -> None:
    auto = AutoScheduler(max_resource=9, n_pairs=3)
    sc = Scenario(auto)
    curves = [{1: 0.4 + 0.05 * n, 3: 0.4 + 0.05 * n, 9: 0.4 + 0.05 * n} for n in range(8)]
    curves[0] = {1: 0.1, 3: 0.3, 9: 0.3}
    curves[1] = {1: 0.2, 3: 0.1, 9: 0.1}
    for n, curve in enumerate(curves):
        _done(sc, n, curve)
    sc.report(8, step=1, value=0.95, expect=P)  # rung 1 not checked yet: worst of nine
    sc.ask(None)  # the top third at rung 1 is finished, nothing paused to promote
    _done(sc, 9, {1: 0.15, 3: 0.2, 9: 0.2})  # step 1 now ranks its top third in reverse
    assert auto.rungs_in_use(sc.history()) == [3]
    sc.ask(Resume(8, budget=3))
    sc.report(8, step=2, value=0.6, expect=C)


def test_the_model_learns_only_from_levels_in_use() -> None:
    space = tc.space.Space({"x": tc.uniform(0, 1)})
    views = []
    for curves in (_MISLEADING, _FAITHFUL):
        auto = AutoScheduler(max_resource=9, n_pairs=3, min_points_in_model=10)
        sc = Scenario(auto)
        for n, curve in enumerate(curves):
            _done(sc, n, curve)
        sc.report(9, step=1, value=0.35)  # a tenth value at step 1 only
        views.append(auto.sampler_trials(space, sc.history()))
    # Step 1 has the only 10 results; it serves the model only while it is a rung in use.
    assert views[0] is None
    assert views[1] is not None
    assert [t.value for t in views[1]] == pytest.approx([0.1 * (n + 1) for n in range(9)] + [0.35])


def test_a_fixed_min_resource_fixes_the_rungs() -> None:
    auto = AutoScheduler(max_resource=9, min_resource=1, variant="stopping", n_pairs=3)
    sc = Scenario(auto)
    for n, curve in enumerate(_MISLEADING):
        _done(sc, n, curve)
    assert auto.rungs_in_use(sc.history()) == [1, 3]
    sc.report(9, step=1, value=0.95, expect=S)


def test_max_resource_auto_judges_nothing_before_a_trial_completes() -> None:
    auto = AutoScheduler(variant="stopping", n_pairs=3)
    sc = Scenario(auto)
    sc.reports(0, [0.5, 0.5], [C, C])
    sc.reports(1, [0.9, 0.9], [C, C])
    assert auto.checks(sc.history()) == []
    sc.reports(0, [0.5] * 7, [C] * 7).finish(0)  # 9 steps: max_resource becomes 9
    assert [c.rung for c in auto.checks(sc.history())] == [1, 3]
    sc.report(2, step=1, value=0.95, expect=S)


def test_by_name_with_the_options_the_pipeline_passes() -> None:
    auto = make_scheduler(
        "auto", seed=0, options={"max_resource": 52, "min_resource": None, "reduction_factor": 3}
    )
    assert isinstance(auto, AutoScheduler)
    assert auto.candidates(52) == [1, 3, 9, 27]
    study = tc.Study({"x": tc.uniform(0, 1)}, scheduler="auto", seed=0)
    assert isinstance(study.scheduler, AutoScheduler)


def _top_ranked(order: list[int], n_rest: int) -> list[dict[int, float]]:
    """Finished trials with values at steps 1, 3 and 9: the first ``len(order)`` lead at
    step 1 in their own order and at step 3 in ``order`` (ranks), then ``n_rest`` trail."""
    k = len(order)
    curves = [{1: 1e-3 * (n + 1), 3: 1e-3 * order[n], 9: 5e-4 * order[n]} for n in range(k)]
    curves += [{1: 0.5 + 0.01 * n, 3: 0.5 + 0.01 * n, 9: 0.5 + 0.01 * n} for n in range(n_rest)]
    return curves


def _rung_one(curves: list[dict[int, float]], **options: object) -> tuple[float, bool]:
    auto = AutoScheduler(max_resource=9, variant="stopping", **options)  # type: ignore[arg-type]
    sc = Scenario(auto)
    for n, curve in enumerate(curves):
        _done(sc, n, curve)
    check = next(c for c in auto.checks(sc.history()) if c.rung == 1)
    assert check.correlation is not None
    return check.correlation, check.in_use


def test_confidence_keeps_a_rung_that_few_pairs_only_seem_to_condemn() -> None:
    # six pairs with no correlation to speak of: the point estimate drops rung 1, but six
    # pairs cannot tell that from a correlation of 0.5, so a confident check keeps judging
    few = _top_ranked([3, 6, 1, 5, 2, 4], n_rest=12)
    rho, in_use = _rung_one(few, n_pairs=6, confidence=0.5)
    assert rho == pytest.approx(1 - 6 * 38 / 210) and not in_use
    assert _rung_one(few, n_pairs=6, confidence=0.8) == (pytest.approx(rho), True)
    assert _rung_one(few, n_pairs=6) == (pytest.approx(rho), True)  # the default, 0.9


def test_confidence_drops_a_rung_once_many_pairs_show_no_correlation() -> None:
    order = [(11 * i) % 61 + 1 for i in range(61)]  # a permutation of 1..61, rho ~ 0.05
    many = _top_ranked(order, n_rest=122)
    rho, in_use = _rung_one(many, n_pairs=6)  # the default, 0.9: bound ~0.22 < 0.3
    assert abs(rho) < 0.1 and not in_use
    assert _rung_one(many, n_pairs=6, confidence=0.8) == (pytest.approx(rho), False)
    # and a rung that predicts stays in use under any confidence
    faithful = _top_ranked(list(range(1, 24)), n_rest=46)
    assert _rung_one(faithful, n_pairs=6, confidence=0.95) == (pytest.approx(1.0), True)
    assert _rung_one(faithful, n_pairs=6, min_correlation=1.0) == (pytest.approx(1.0), True)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"reduction_factor": 1}, ValueError, "'reduction_factor' parameter of AutoScheduler"),
        ({"reduction_factor": 2.0}, TypeError, "'reduction_factor' parameter of AutoScheduler"),
        ({"max_resource": 1}, ValueError, "'max_resource' parameter of AutoScheduler"),
        ({"max_resource": "big"}, ValueError, "'max_resource' parameter of AutoScheduler"),
        ({"max_resource": 9, "min_resource": 9}, ValueError, "must be < max_resource"),
        ({"min_resource": 0}, ValueError, "'min_resource' parameter of AutoScheduler"),
        ({"variant": "eager"}, ValueError, "'variant' parameter of AutoScheduler"),
        ({"min_correlation": 1.5}, ValueError, "'min_correlation' parameter"),
        ({"min_correlation": -1.0}, ValueError, "'min_correlation' parameter"),
        ({"n_pairs": 2}, ValueError, "'n_pairs' parameter of AutoScheduler"),
        ({"confidence": 0.4}, ValueError, "'confidence' parameter of AutoScheduler"),
        ({"confidence": 1.0}, ValueError, "'confidence' parameter of AutoScheduler"),
        ({"model_based": 1}, TypeError, "'model_based' parameter of AutoScheduler"),
    ],
)
def test_bad_options(options: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        AutoScheduler(**options)  # type: ignore[arg-type]


def _slow_starter_curve(x: float, step: int) -> float:
    """Loss of config ``x`` after ``step`` epochs: at step 1 the order of ``x`` is reversed
    (high ``x`` looks worst), from step 3 on the high ``x`` are best (final loss ``1 - x``)."""
    w = 0.5 ** (step - 1) if step < 3 else 0.0
    return w * x + (1 - w) * (1 - x)


def _run(scheduler: AutoScheduler | object, tmp_path: object) -> tc.Study:
    study = tc.Study(
        {"x": tc.uniform(0, 1)},
        sampler=tc.make_sampler("random", seed=0),
        scheduler=scheduler,  # type: ignore[arg-type]
        artifact_dir=str(tmp_path),
    )

    def objective(trial: tc.Trial) -> float:
        start = (trial.last_step or 0) + 1 if trial.resumed else 1
        value = 1.0
        for step in range(start, 10):
            value = _slow_starter_curve(trial.config["x"], step)
            trial.report(value, step=step)
            if trial.should_stop():
                break
        return value

    study.optimize(objective, n_trials=45)
    return study


def test_a_study_keeps_the_slow_starters_that_epoch_one_would_discard(tmp_path: object) -> None:
    from tunecraft.schedulers import ASHAScheduler

    auto = AutoScheduler(max_resource=9)
    study = _run(auto, tmp_path)
    fixed = _run(ASHAScheduler(min_resource=1, max_resource=9, variant="promotion"), tmp_path)
    assert 1 not in auto.rungs_in_use(study.history())
    xs = sorted(t.config["x"] for t in study.trials)
    # Auto ends with one of the three best configurations sampled, trained to the end ...
    assert study.best_value == pytest.approx(1 - study.best_config["x"])
    assert study.best_config["x"] >= xs[-3]
    # ... where ranking at epoch 1 (same sampler, same seed) does worse.
    assert study.best_value < fixed.best_value


def test_spearman_with_ties_and_constant_values() -> None:
    from tunecraft.schedulers._halving import _spearman

    assert _spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert _spearman([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(1.5 / 3**0.5)
    assert _spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == -1.0  # undefined: no evidence


@pytest.mark.parametrize(("at_one", "resumed"), [(0.95, False), (0.0, True)])
def test_a_trial_paused_at_a_dropped_middle_rung_counts_as_paused_at_the_rung_below(
    at_one: float, resumed: bool
) -> None:
    # Steps 1 and 9 rank alike, step 3 reversed: rung 3 is dropped, rung 1 stays. Trial 9
    # went on from rung 1 and paused at rung 3. It now counts as paused at rung 1: promoted
    # to 9 when it ranks in rung 1's top, left paused otherwise (as ASHA leaves any trial
    # there that is not in the top).
    trials = [
        FrozenTrial(
            i,
            TrialState.COMPLETE,
            {"x": 0.5},
            value=0.1 * i,
            intermediate={1: 0.1 * i, 3: 1 - 0.1 * i, 9: 0.1 * i},
        )
        for i in range(9)
    ]
    trials.append(FrozenTrial(9, TrialState.PAUSED, {"x": 0.5}, intermediate={1: at_one, 3: 0.5}))
    sched = AutoScheduler(max_resource=9, n_pairs=3, confidence=0.5)
    history = History(trials, "minimize")
    assert sched.rungs_in_use(history) == [1]
    order = sched.on_ask(Space({"x": tc.uniform(0.0, 1.0)}), history)
    assert (order is not None) is resumed
    if order is not None:
        assert (order.number, order.budget) == (9, 9)

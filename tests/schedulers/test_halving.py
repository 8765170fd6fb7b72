"""ASHA (stopping and promotion) and synchronous successive halving, step by step."""

from __future__ import annotations

import pytest

from tunecraft.schedulers import ASHAScheduler, Resume, SuccessiveHalvingScheduler
from tunecraft.testing.schedulers import Scenario

C, S, P = "continue", "stop", "pause"


# -- ASHA, stopping variant -----------------------------------------------------------------------
def test_asha_stopping_keeps_the_top_of_each_rung() -> None:
    asha = ASHAScheduler(min_resource=1, reduction_factor=2)
    assert asha.rungs[:4] == [1, 2, 4, 8]
    sc = Scenario(asha)
    sc.report(0, step=1, value=0.5, expect=C)  # alone at rung 1
    sc.report(1, step=1, value=0.9, expect=S)  # k = max(1, 2 // 2) = 1: trial 0 is better
    sc.report(2, step=1, value=0.1, expect=C)  # best of 3
    sc.report(0, step=2, value=0.4, expect=C)  # alone at rung 2
    sc.report(2, step=2, value=0.45, expect=S)  # 2 at rung 2, k = 1: trial 0 is better
    sc.report(3, step=1, value=0.3, expect=C)  # 4 at rung 1, k = 2: 0.1 and 0.3
    sc.report(0, step=3, value=0.38, expect=C)  # no rung at step 3
    sc.report(3, step=2, value=0.35, expect=C)  # 3 at rung 2 (0.4, 0.45, 0.35), k = 1
    sc.expect_states({0: "running", 1: "pruned", 2: "pruned", 3: "running"})


def test_asha_keeps_a_trial_tied_with_the_best_unless_the_tie_is_the_rungs_worst() -> None:
    # Accuracy on a small fold ties often: a trial that ties the best of the rung was stopped
    # for arriving later, though nothing did better. A tie at the worst value of the rung
    # (runs that diverged all report the same error) is no evidence for it.
    sc = Scenario(ASHAScheduler(min_resource=1, reduction_factor=2))
    sc.report(0, step=1, value=0.0, expect=C)
    sc.report(1, step=1, value=0.5, expect=S)  # k = 1
    sc.report(2, step=1, value=0.0, expect=C)  # ties the best, and 0.5 is worse
    sc.report(3, step=1, value=0.1, expect=S)  # k = 2: the top two are 0.0
    sc.report(4, step=1, value=0.3, expect=S)  # k = 2
    sc.report(5, step=1, value=0.1, expect=S)  # k = 3: ties the third (0.1), not the best
    floor = Scenario(ASHAScheduler(min_resource=1, reduction_factor=2))
    floor.report(0, step=1, value=100.0, expect=C)  # alone
    floor.report(1, step=1, value=100.0, expect=S)  # tied, but at the rung's worst
    promo = Scenario(ASHAScheduler(min_resource=1, reduction_factor=2, variant="promotion"))
    promo.report(0, step=1, value=0.2, expect=P)  # alone: k = 0, nobody is promoted yet
    promo.report(1, step=1, value=0.1, expect=C)
    promo.report(2, step=1, value=0.1, expect=C)  # 3 at the rung, k = 1: tied with 0.1


def test_asha_ranks_a_trial_that_skips_steps_at_its_first_report_past_the_rung() -> None:
    sc = Scenario(ASHAScheduler(min_resource=1, reduction_factor=2))
    sc.report(0, step=1, value=0.5, expect=C)
    sc.report(0, step=2, value=0.4, expect=C)
    sc.report(1, step=1, value=0.2, expect=C)
    # Step 5 is trial 1's first report at or past rungs 2 and 4: ranked at both, with 0.01.
    sc.report(1, step=5, value=0.01, expect=C)
    sc.report(2, step=1, value=0.3, expect=S)  # 3 at rung 1, k = 1: 0.2 is better
    sc.report(3, step=1, value=0.6, expect=S)
    sc.report(4, step=1, value=0.1, expect=C)
    # Step 3 is trial 4's first report past rung 2: 0.4, 0.01 (trial 1's step 5), 0.3; k = 1.
    sc.report(4, step=3, value=0.3, expect=S)


def test_asha_maximize() -> None:
    sc = Scenario(ASHAScheduler(min_resource=2, reduction_factor=3), direction="maximize")
    sc.report(0, step=1, value=0.1, expect=C)  # below the first rung
    sc.report(0, step=2, value=0.5, expect=C)
    sc.report(1, step=2, value=0.9, expect=C)  # higher is better
    sc.report(2, step=2, value=0.2, expect=S)
    sc.report(3, step=2, value=0.7, expect=S)  # 4 at the rung, k = 1: only 0.9
    sc.report(4, step=2, value=0.8, expect=S)
    sc.report(5, step=2, value=0.85, expect=C)  # 6 at the rung, k = 2: 0.9 and 0.85


def test_asha_ignores_steps_at_and_past_max_resource() -> None:
    asha = ASHAScheduler(min_resource=1, max_resource=4, reduction_factor=2)
    assert asha.rungs == [1, 2]
    sc = Scenario(asha)
    sc.reports(0, [0.5, 0.4, 0.3, 0.2], [C, C, C, C])
    sc.reports(1, [0.45, 0.35], [C, C])  # the top of rungs 1 and 2
    sc.reports(1, [0.9, 0.9], [C, C])  # steps 3 and 4 are no rungs: nothing to decide


# -- ASHA, promotion variant ----------------------------------------------------------------------
def test_asha_promotion_pauses_then_promotes_when_the_rung_grows() -> None:
    asha = ASHAScheduler(min_resource=1, max_resource=4, reduction_factor=2, variant="promotion")
    sc = Scenario(asha)
    sc.report(0, step=1, value=0.5, expect=P)  # k = 1 // 2 = 0: nobody promoted yet
    sc.ask(None)
    sc.report(1, step=1, value=0.6, expect=P)  # k = 1: trial 0 is the top
    sc.ask(Resume(0, budget=2))  # trial 0, paused at rung 1, is now in the top half
    sc.expect_states({0: "running", 1: "paused"})
    sc.report(0, step=2, value=0.5, expect=P)  # alone at rung 2
    sc.ask(None)
    sc.report(2, step=1, value=0.1, expect=C)  # top of 3 at rung 1: promoted at once
    sc.report(2, step=2, value=0.9, expect=P)  # 2 at rung 2, k = 1: trial 0 is better
    sc.ask(Resume(0, budget=4))  # from the top rung, to max_resource
    sc.report(0, step=3, value=0.45, expect=C)
    sc.report(0, step=4, value=0.4, expect=C)
    sc.finish(0)
    sc.ask(None)  # trial 1 (rung 1: 3rd of 3) and trial 2 (rung 2: 2nd of 2) stay paused
    sc.expect_states({0: "complete", 1: "paused", 2: "paused"})


def test_asha_promotion_resumes_a_paused_trial_only_once() -> None:
    sc = Scenario(ASHAScheduler(reduction_factor=2, variant="promotion"))
    sc.report(0, step=1, value=0.2, expect=P)
    sc.report(1, step=1, value=0.3, expect=P)
    sc.ask(0)
    sc.ask(None)  # trial 0 now runs; trial 1 is not in the top half
    sc.report(2, step=1, value=0.4, expect=P)
    sc.report(3, step=1, value=0.5, expect=P)
    sc.ask(1)  # 4 at rung 1, k = 2: trials 0 and 1
    sc.ask(None)


# -- synchronous successive halving -------------------------------------------------------------
def test_sha_rungs_end_where_one_trial_would_be_left() -> None:
    assert SuccessiveHalvingScheduler(reduction_factor=2, bracket_size=8).rungs == [1, 2, 4]
    assert SuccessiveHalvingScheduler(reduction_factor=3).rungs == [1, 3]  # 9 -> 3 -> 1
    capped = SuccessiveHalvingScheduler(reduction_factor=2, bracket_size=8, max_resource=3)
    assert capped.rungs == [1, 2]


def test_sha_waits_for_the_whole_bracket_then_halves() -> None:
    sha = SuccessiveHalvingScheduler(min_resource=1, reduction_factor=2, bracket_size=4)
    sc = Scenario(sha)
    sc.report(0, step=1, value=0.4, expect=P)
    sc.report(1, step=1, value=0.3, expect=P)
    sc.report(2, step=1, value=0.9, expect=P)
    sc.ask(None)  # the bracket is not full
    sc.report(3, step=1, value=0.1, expect=P)
    assert sha.to_stop(sc.history()) == [0, 2]
    sc.ask(Resume(3, budget=2))  # best first; the losers are pruned on the way
    sc.expect_states({0: "pruned", 2: "pruned", 3: "running", 1: "paused"})
    sc.ask(Resume(1, budget=2))
    sc.ask(None)  # rung 2 is not complete
    sc.report(3, step=2, value=0.2, expect=P)
    sc.ask(None)  # trial 1 has not reached rung 2 yet
    sc.report(1, step=2, value=0.15, expect=P)
    sc.ask(Resume(1, budget=None))  # the survivor runs to the end
    sc.expect_states({3: "pruned", 1: "running"})
    sc.report(1, step=3, value=0.1, expect=C)
    sc.report(1, step=4, value=0.05, expect=C)
    sc.report(4, step=1, value=0.5, expect=P)  # the next bracket


def test_sha_counts_a_failed_trial_as_resolved() -> None:
    sc = Scenario(SuccessiveHalvingScheduler(reduction_factor=2, bracket_size=4))
    sc.report(0, step=1, value=0.4, expect=P)
    sc.report(1, step=1, value=0.3, expect=P)
    sc.start(2).finish(2, state="failed")
    sc.report(3, step=1, value=0.5, expect=P)
    sc.ask(Resume(1, budget=2))  # 3 values, k = 1
    sc.expect_states({0: "pruned", 3: "pruned", 2: "failed"})


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"reduction_factor": 1},
            "The 'reduction_factor' parameter of ASHA must be an int >= 2, got 1.",
        ),
        ({"min_resource": 0}, "The 'min_resource' parameter of ASHA must be an int >= 1, got 0."),
        (
            {"min_resource": 9, "max_resource": 9},
            "The 'min_resource' parameter of ASHA must be < max_resource (9), got 9.",
        ),
        ({"variant": "eager"}, "The 'variant' parameter of ASHA must be one of"),
    ],
)
def test_asha_validates(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ASHAScheduler(**kwargs)
    assert str(info.value).startswith(message)


def test_types_are_checked() -> None:
    with pytest.raises(TypeError, match="'reduction_factor' parameter of ASHA"):
        ASHAScheduler(reduction_factor=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'bracket_size' parameter of SuccessiveHalving"):
        SuccessiveHalvingScheduler(reduction_factor=3, bracket_size=2)

"""Hyperband: brackets, their weights, and ranking only within a bracket."""

from __future__ import annotations

import pytest

from tunecraft.schedulers import HyperbandScheduler, Resume
from tunecraft.testing.schedulers import Scenario

C, S, P = "continue", "stop", "pause"


def test_brackets_and_weights_follow_the_paper() -> None:
    hb = HyperbandScheduler(min_resource=1, max_resource=81, reduction_factor=3)
    assert hb.brackets(81) == [[1, 3, 9, 27], [3, 9, 27], [9, 27], [27], []]
    counts = [0] * 5
    for n in range(143):  # one full cycle: 81 + 34 + 15 + 8 + 5
        counts[hb.bracket_of(n, 81)] += 1
    assert counts == [81, 34, 15, 8, 5]
    # Interleaved, not in blocks: the first few trials already visit several brackets.
    assert len({hb.bracket_of(n, 81) for n in range(6)}) >= 3


def test_trials_compete_only_within_their_bracket() -> None:
    hb = HyperbandScheduler(min_resource=1, max_resource=9, reduction_factor=3)
    assert [hb.bracket_of(n, 9) for n in range(6)] == [0, 1, 0, 2, 0, 1]
    sc = Scenario(hb)
    sc.report(0, step=1, value=0.5, expect=C)  # bracket 0, rungs 1 and 3
    sc.report(1, step=1, value=0.9, expect=C)  # bracket 1: no rung at 1
    sc.report(1, step=3, value=0.8, expect=C)  # alone at its rung 3
    sc.report(2, step=1, value=0.7, expect=S)  # bracket 0: trial 0 is better
    sc.report(3, step=1, value=0.95, expect=C)  # bracket 2 never stops
    sc.report(3, step=3, value=0.1, expect=C)
    sc.report(4, step=1, value=0.4, expect=C)  # bracket 0: 3 at rung 1, k = 1
    # Bracket 1 at rung 3: 0.8 and 0.7; trial 3's 0.1 (bracket 2) does not count.
    sc.report(5, step=3, value=0.7, expect=C)
    sc.report(3, step=9, value=0.1, expect=C)


def test_auto_max_resource_waits_for_the_first_complete_trial() -> None:
    sc = Scenario(HyperbandScheduler(min_resource=1, reduction_factor=3))
    sc.reports(0, [0.5] * 9, [C] * 9)  # nothing known: nothing stopped
    sc.reports(1, [0.9] * 2, [C] * 2)
    sc.finish(0)  # max_resource becomes 9: brackets as above
    sc.reports(2, [0.9], [S])  # bracket 0 at rung 1: trial 0 (0.5) is better


def test_promotion_variant_resumes_within_the_bracket() -> None:
    hb = HyperbandScheduler(
        min_resource=1, max_resource=9, reduction_factor=3, variant="promotion"
    )
    sc = Scenario(hb)
    sc.report(0, step=1, value=0.5, expect=P)  # bracket 0
    sc.report(1, step=3, value=0.1, expect=P)  # bracket 1
    sc.report(2, step=1, value=0.6, expect=P)
    sc.report(3, step=1, value=0.9, expect=C)  # bracket 2
    sc.ask(None)
    sc.report(4, step=1, value=0.7, expect=P)  # bracket 0 at rung 1: 3 trials, k = 1
    sc.ask(Resume(0, budget=3))


def test_validation() -> None:
    with pytest.raises(ValueError, match="'max_resource' parameter of Hyperband must be an int"):
        HyperbandScheduler(max_resource="full")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'reduction_factor' parameter of Hyperband"):
        HyperbandScheduler(reduction_factor=1)
    with pytest.raises(ValueError, match="'min_resource' parameter of Hyperband must be <"):
        HyperbandScheduler(min_resource=10, max_resource=5)

"""The planner's arithmetic: shares, run counts, fidelities, rounding, impossible budgets."""

from __future__ import annotations

import json
import math

import pytest

from tunecraft.strategy import Budget, Plan, plan, race_sizes
from tunecraft.strategy._plan import EXPLORE_TARGET_RUNS


@pytest.mark.parametrize(
    ("text", "amount", "kind"),
    [
        (800, 800.0, "units"),
        (12.5, 12.5, "units"),
        ("800", 800.0, "units"),
        ("800 epochs", 800.0, "units"),
        ("1 epoch", 1.0, "units"),
        ("40 trials", 40.0, "trials"),
        ("40 runs", 40.0, "trials"),
        ("600s", 600.0, "seconds"),
        ("30 min", 1800.0, "seconds"),
        ("1.5h", 5400.0, "seconds"),
        ("2 hours", 7200.0, "seconds"),
    ],
)
def test_budget_parse(text: object, amount: float, kind: str) -> None:
    b = Budget.parse(text)  # type: ignore[arg-type]
    assert (b.amount, b.kind) == (amount, kind)


@pytest.mark.parametrize("bad", ["", "ten trials", "40 parsecs", "-3", "0 trials", 0, -1.0])
def test_budget_parse_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="budget"):
        Budget.parse(bad)  # type: ignore[arg-type]


def test_budget_parse_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="budget"):
        Budget.parse([40])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="budget"):
        Budget.parse(True)  # type: ignore[arg-type]


def test_default_plan_arithmetic() -> None:
    p = plan("40 trials", max_fidelity=20)
    assert p.budget == 800 and p.names == ["explore", "refine", "validate"]
    explore, refine, validate = p.phases
    # Explore: 10% = 80 epochs, about 25 runs -> 3 epochs each, 26 runs.
    assert (explore.fidelity, explore.runs) == (3, 26)
    assert explore.runs * explore.fidelity <= 0.1 * 800
    # Validate: 60% = 480 epochs, 5 finalists x 3 seeds x 20 epochs = 300.
    assert (p.n_finalists, p.n_seeds, validate.runs, validate.fidelity) == (5, 3, 15, 20)
    # Refine: 30% plus what explore and validate leave over, at full length.
    assert refine.fidelity == 20
    assert refine.allotted == pytest.approx(240 + (80 - 78) + (480 - 300))
    assert refine.runs == math.floor(refine.allotted / 20)
    assert p.cost == pytest.approx(800)


@pytest.mark.parametrize("budget", [100, 137, 400, 801, 5000, 20000])
@pytest.mark.parametrize("max_fidelity", [7, 20, 50])
def test_plans_spend_at_most_the_budget_with_integer_lengths(
    budget: int, max_fidelity: int
) -> None:
    try:
        p = plan(budget, max_fidelity=max_fidelity, n_seeds=1)
    except ValueError:
        return  # too small: checked by the next tests
    assert p.cost <= budget + 1e-9
    for row in p.phases:
        assert isinstance(row.fidelity, int) and 1 <= row.fidelity <= max_fidelity
        assert row.runs >= 1
    assert p.phase("validate").fidelity == max_fidelity
    explore = p.phase("explore")
    assert explore.fidelity <= max(1, max_fidelity // 3)
    if explore.fidelity > 1:  # the 25-run target sets the length
        assert explore.runs >= EXPLORE_TARGET_RUNS - 1


def test_shares_are_applied() -> None:
    p = plan(1000, max_fidelity=10, shares={"explore": 0.2, "refine": 0.4, "validate": 0.4})
    assert p.phase("explore").runs * p.phase("explore").fidelity <= 200
    assert p.phase("explore").runs * p.phase("explore").fidelity > 190
    assert p.phase("validate").cost == 5 * 3 * 10  # 400 allows 13 finalists; capped at 5
    same = plan(1000, max_fidelity=10, shares=(0.2, 0.4, 0.4))
    assert same == p


def test_fewer_finalists_when_the_budget_requires() -> None:
    p = plan(100, max_fidelity=20)  # validate: 60 epochs = 1 finalist x 3 seeds
    assert p.n_finalists == 1 and p.phase("validate").runs == 3
    p = plan(200, max_fidelity=20)  # 120 epochs = 2 finalists
    assert p.n_finalists == 2


def test_transfer_takes_its_runs_from_explore() -> None:
    base = plan(800, max_fidelity=20)
    p = plan(800, max_fidelity=20, n_transfer=4)
    assert p.names == ["transfer", "explore", "refine", "validate"]
    t, e = p.phase("transfer"), p.phase("explore")
    assert t.runs == 4 and t.fidelity == e.fidelity == base.phase("explore").fidelity
    assert t.runs + e.runs == base.phase("explore").runs
    # At most a third of the explore runs go to transferred configurations.
    many = plan(800, max_fidelity=20, n_transfer=100)
    assert many.phase("transfer").runs == base.phase("explore").runs // 3


def test_lr_range_test_row_comes_first_and_costs_nothing() -> None:
    p = plan(800, max_fidelity=20, lr_range_test=True)
    assert p.names[0] == "lr_range_test" and p.phases[0].cost == 0
    assert p.cost == pytest.approx(plan(800, max_fidelity=20).cost)


def test_float_fidelity_data_fraction() -> None:
    p = plan(10.0, max_fidelity=1.0, n_seeds=2, unit="fraction")
    assert p.phase("validate").fidelity == 1.0
    assert 0 < p.phase("explore").fidelity < 1.0
    assert p.cost <= 10.0 + 1e-9


def test_time_budget_uses_the_speed() -> None:
    p = plan("10 min", max_fidelity=20, seconds_per_unit=0.5)
    assert p.budget == pytest.approx(1200) and p.seconds == 600
    with pytest.raises(ValueError, match="seconds_per_unit"):
        plan("10 min", max_fidelity=20)


def test_impossible_budget_says_which_budget_suffices() -> None:
    with pytest.raises(ValueError) as info:
        plan(50, max_fidelity=20)
    message = str(info.value)
    assert "validate" in message and "100 epochs" in message and "5 full-length" in message
    assert "\n" not in message
    # The budget it names does suffice, and one unit less does not.
    plan(100, max_fidelity=20)
    with pytest.raises(ValueError):
        plan(99, max_fidelity=20)


def test_impossible_budget_for_explore() -> None:
    with pytest.raises(ValueError, match="explore") as info:
        plan(30, max_fidelity=4, min_fidelity=4, n_seeds=1)
    need = float(str(info.value).split("at least ")[1].split(" ")[0])
    plan(need, max_fidelity=4, min_fidelity=4, n_seeds=1)


def _suggested(**kwargs: object) -> float:
    budget = kwargs.pop("budget")
    with pytest.raises(ValueError) as info:
        plan(budget, **kwargs)  # type: ignore[arg-type]
    return float(str(info.value).split("at least ")[1].split(" ")[0])


@pytest.mark.parametrize("budget", [3, 9])
def test_suggested_budget_is_the_smallest_whole_one(budget: int) -> None:
    # 10 epochs fit (explore gets its one run of 1); the message named 11 (bisection stopped
    # half a unit short and rounded up).
    need = _suggested(budget=budget, max_fidelity=1)
    assert need == 10
    plan(need, max_fidelity=1)
    with pytest.raises(ValueError):
        plan(need - 1, max_fidelity=1)


def test_suggested_budget_is_rounded_up_for_a_float_fidelity() -> None:
    # The smallest budget is 0.5 / 0.6 = 0.8333...; "0.833" was printed, and did not fit.
    need = _suggested(budget=0.3, max_fidelity=0.5, n_seeds=1)
    assert need == pytest.approx(0.834)
    plan(need, max_fidelity=0.5, n_seeds=1)
    with pytest.raises(
        ValueError, match=r"needs 1 finalist\(s\) x 1 seeds x 0.5 = 0.5, it gets 0.49"
    ):
        plan(0.833, max_fidelity=0.5, n_seeds=1)


@pytest.mark.parametrize(
    "text", ["40 full-length trials", "40 full-length runs", "40 full trials"]
)
def test_budget_parse_reads_how_plans_write_trials(text: str) -> None:
    assert Budget.parse(text) == Budget(40.0, "trials")
    p = plan("40 trials", max_fidelity=20)
    assert p.requested == "40 full-length trials"
    assert plan(p.requested, max_fidelity=20) == p


@pytest.mark.parametrize(("unit", "text"), [("step", "1000 steps"), ("steps", "1000 step")])
def test_budget_parse_reads_the_unit_singular_or_plural(unit: str, text: str) -> None:
    assert Budget.parse(text, unit=unit) == Budget(1000.0, "units")
    assert plan(text, max_fidelity=100, unit=unit).budget == 1000


def test_budget_parse_reads_a_trailing_point() -> None:
    assert Budget.parse("5.") == Budget(5.0, "units")
    assert Budget.parse("2.e2 epochs") == Budget(200.0, "units")


def test_explicit_finalists_must_be_affordable() -> None:
    with pytest.raises(ValueError, match="3 finalist"):
        plan(100, max_fidelity=20, n_finalists=3)
    assert plan(300, max_fidelity=20, n_finalists=3).n_finalists == 3


@pytest.mark.parametrize(
    ("shares", "error"),
    [
        ({"explore": 0.5, "refine": 0.5, "validate": 0.5}, ValueError),
        ({"explore": 0.0, "refine": 0.4, "validate": 0.6}, ValueError),
        ({"explore": -0.1, "refine": 0.5, "validate": 0.6}, ValueError),
        ({"explore": 0.1, "refine": 0.9}, ValueError),
        ({"explore": 0.1, "refine": 0.3, "validate": 0.6, "extra": 0.0}, ValueError),
        ((0.1, 0.9), TypeError),
        ("0.1 0.3 0.6", TypeError),
    ],
)
def test_bad_shares(shares: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="shares"):
        plan(800, max_fidelity=20, shares=shares)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_fidelity": 0}, "max_fidelity"),
        ({"max_fidelity": 20, "min_fidelity": 30}, "min_fidelity"),
        ({"max_fidelity": 20, "n_seeds": 0}, "n_seeds"),
        ({"max_fidelity": 20, "n_finalists": 0}, "n_finalists"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan(800, **kwargs)  # type: ignore[arg-type]


def test_race_sizes_and_a_raced_plan_round_trip() -> None:
    assert race_sizes(4, 3) == (4, 1) and race_sizes(1, 3) is None and race_sizes(4, 1) is None
    p = plan("20 trials", max_fidelity=52, race=True)
    v = p.phase("validate")
    # 3 finalists x 1 run + 2 more seeds for the best: 5 runs; the other 7 of the 60% refine
    assert p.race == (3, 1) and p.n_finalists == 3 and v.runs == 5 and v.cost == 5 * 52
    assert p.phase("refine").allotted == pytest.approx(1040 - 104 - 5 * 52)
    table = p.table()
    assert "3+1x2=5" in table and "the best by it x 2 more seeds" in table
    assert "validate needs 25% of its 60% (3 finalists x 1 run, the best x 2 more" in table
    assert Plan.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    # an explicit number of finalists, raced: k + s - 1 runs; too many for the budget: why
    assert plan("20 trials", max_fidelity=52, race=True, n_finalists=5).phase("validate").runs == 7
    with pytest.raises(ValueError, match=r"needs 9 finalist\(s\) x 1 run \+ 2 more seeds x 52"):
        plan("10 trials", max_fidelity=52, race=True, n_finalists=9)
    # too small for a race of two (2 + 2 runs > 3.6): the one finalist gets every seed
    small = plan("6 trials", max_fidelity=52, race=True)
    assert small.race is None and small.n_finalists == 1 and small.phase("validate").runs == 3
    with pytest.raises(TypeError, match="'race' parameter of plan"):
        plan("20 trials", max_fidelity=52, race="yes")  # type: ignore[arg-type]


def test_table_and_round_trip() -> None:
    p = plan("40 trials", max_fidelity=20, n_transfer=2, lr_range_test=True)
    table = p.table()
    lines = table.splitlines()
    assert lines[0].startswith("Plan: 800 epochs")
    for name in p.names:
        assert any(line.startswith(name) for line in lines)
    assert "5x3=15" in table and lines[-2].startswith("total")
    assert Plan.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="no phase"):
        p.phase("nope")


def test_table_says_where_the_validation_surplus_goes() -> None:
    p = plan("40 trials", max_fidelity=20)  # validate asked 480, needs 5 x 3 x 20 = 300
    note = p.table().splitlines()[-1]
    assert note == p.surplus_note()
    assert "validate needs 38% of its 60%" in note
    assert "the other 180 epochs go to refine (30% -> 53%, with explore's rounding (2))" in note
    # The rows' shares are what each phase gets: cost / budget, adding up to 1.
    assert sum(r.share for r in p.phases) == pytest.approx(1.0)
    assert all(r.share == pytest.approx(r.cost / p.budget) for r in p.phases)
    assert p.phase("refine").share == pytest.approx(0.3 + 180 / 800 + (80 - 78) / 800)
    # No surplus, no note: 20 trials of 20 allow exactly 4 finalists x 3 seeds (240 of 240).
    exact = plan(400, max_fidelity=20)
    assert exact.surplus_note() == "" and exact.table().splitlines()[-1].startswith("total")
    # A plan stored before the shares were kept reads back and prints without the note.
    old = p.to_dict()
    del old["shares"], old["validation_cost"]
    assert Plan.from_dict(old).surplus_note() == ""


def test_validation_cost_is_what_a_final_run_costs() -> None:
    # Cross-validation with 5 folds as the fidelity: a holdout run is one fit.
    p = plan("30 trials", max_fidelity=5, unit="folds", validation_cost=1)
    validate = p.phase("validate")
    assert (p.n_finalists, validate.runs, validate.fidelity) == (5, 15, 5)
    assert validate.cost == validate.allotted == 15 * 1
    assert p.validation_run_cost == 1
    # What validation does not need goes to refine; the plan still spends the budget.
    full = plan("30 trials", max_fidelity=5, unit="folds")
    assert full.phase("validate").cost == 75 and full.validation_run_cost == 5
    assert p.phase("refine").allotted == pytest.approx(full.phase("refine").allotted + 60)
    assert p.cost == pytest.approx(150) and full.cost == pytest.approx(150)
    assert "folds each" in p.table() and "costs 1" in p.table()
    assert Plan.from_dict(p.to_dict()) == p
    # A cheap validation run makes a small budget possible; the error uses its cost.
    plan(40, max_fidelity=20, n_seeds=3, validation_cost=4)
    with pytest.raises(ValueError, match="3 seeds x 4 = 12"):
        plan(15, max_fidelity=20, n_seeds=3, validation_cost=4)
    with pytest.raises(ValueError, match="validation_cost"):
        plan(800, max_fidelity=20, validation_cost=0)

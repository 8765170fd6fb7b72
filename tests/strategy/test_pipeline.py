"""The budgeted pipeline end to end on toy objectives: phases, holdout isolation, resume."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.storage import MemoryStorage
from tunecraft.strategy import BudgetedSearch, PipelineError, TuneResult, tune
from tunecraft.strategy._pipeline import FINALIST_ATTR, WARM_ATTR
from tunecraft.trial import Trial, TrialState

SPACE = {
    "x": tc.uniform(0, 1),
    "y": tc.uniform(0, 1),
    "z": tc.uniform(0, 1),
}
MAX_FIDELITY = 9


def loss_of(config: dict[str, Any]) -> float:
    # x matters most, y a little, z hardly at all.
    return (config["x"] - 0.7) ** 2 + 0.2 * (config["y"] - 0.3) ** 2 + 0.002 * config["z"]


def make_objective(
    *,
    holdout_shift: float = 0.05,
    kill: Callable[[Trial], bool] | None = None,
    reverse_holdout: bool = False,
) -> Callable[[Trial], float]:
    def objective(trial: Trial) -> float:
        if kill is not None and kill(trial):
            raise KeyboardInterrupt  # a process killed in the middle of a run
        base = loss_of(trial.config)
        noise = 0.002 * ((trial.seed or 0) % 5)
        value = base
        for epoch in range(1, int(trial.budget or MAX_FIDELITY) + 1):
            value = base + 1.0 / epoch + noise
            trial.report(value, step=epoch, train=base / 2 + 1.0 / epoch)
            if trial.should_stop():
                break
        if trial.split == "holdout" and reverse_holdout:  # ranks configurations backwards
            return 10.0 - value
        if trial.split == "holdout":
            return value + holdout_shift * (1 + trial.config["z"])
        return value

    return objective


def run(storage: Any = None, name: str = "toy", **kwargs: Any) -> TuneResult:
    options: dict[str, Any] = {
        "budget": "20 trials",
        "max_fidelity": MAX_FIDELITY,
        "storage": storage if storage is not None else MemoryStorage(),
        "name": name,
        "seed": 0,
        "n_seeds": 2,
    }
    options.update(kwargs)
    objective = options.pop("objective", None) or make_objective()
    return tune(objective, SPACE, **options)


def search_record(storage: Any, name: str, phases: tuple[str, ...]) -> list[tuple[Any, ...]]:
    out = []
    for phase in phases:
        study = tc.load_study(f"{name}.{phase}", storage=storage)
        for t in study.trials:
            out.append((phase, t.number, t.state.value, sorted(t.config.items()), t.value))
    return out


# -- the whole run -----------------------------------------------------------------------------
def test_tune_runs_every_phase_and_validates_on_the_holdout() -> None:
    storage = MemoryStorage()
    result = run(storage)
    plan = result.plan
    assert plan.names == ["explore", "refine", "validate"]
    assert [n for n in result.spent] == plan.names
    assert result.spent["explore"].runs == plan.phase("explore").runs
    assert result.spent["validate"].runs == plan.phase("validate").runs
    # Refine spends its allotment, short of one explore-length run at most, never more.
    refine = result.spent["refine"].units
    assert plan.phase("refine").allotted - plan.phase("explore").fidelity < refine
    assert refine <= plan.phase("refine").allotted
    assert sum(s.units for s in result.spent.values()) <= plan.budget
    # Finalists: trained with the seeds the search never used, scored on the holdout; the
    # race gave every finalist one run and the best of them the other seed.
    assert plan.race == (3, 1) and plan.n_finalists == 3 and plan.phase("validate").runs == 4
    assert len(result.validation) == 3
    went_on = [f for f in result.validation if not f.raced_out]
    assert len(went_on) == 1 and result.validation[:1] == went_on
    for f in result.validation:
        assert f.seeds == ([1] if f.raced_out else [1, 2]) and len(f.values) == len(f.seeds)
        assert len(f.curves[1]) == MAX_FIDELITY
        assert f.train_curves[1][MAX_FIDELITY] < f.train_curves[1][1]
    for f in went_on:
        assert f.ci[0] <= f.mean <= f.ci[1] and set(f.curves) == {1, 2}
    # Those that went on were the best on their first run, by the validation metric.
    first = sorted(f.validation_values[0] for f in result.validation)
    assert [f.validation_values[0] for f in went_on] == first[:1]
    # The validation metric of the final runs chose (the holdout only scores the choice).
    assert result.selected_by == "validation" and not result.optimistic
    chosen_by = [f.validation_mean for f in went_on]
    assert None not in chosen_by and chosen_by == sorted(chosen_by)  # type: ignore[type-var]
    best = result.validation[0]
    assert best.validation_values == [best.curves[s][MAX_FIDELITY] for s in best.seeds]
    assert result.score == best.mean and result.best_config == best.config
    # The reported score is the holdout estimate, not the optimistic search value.
    assert result.search_value is not None and result.score > result.search_value
    assert abs(result.best_config["x"] - 0.7) < 0.15
    # Importance found x first and the narrowing is recorded.
    assert result.importance is not None and result.importance.method == "fanova"
    assert max(result.importance, key=result.importance.__getitem__) == "x"
    assert result.narrowing is not None and "x" in result.narrowing.space
    text = result.summary()
    assert "Final validation on the holdout" in text and "Holdout score" in text


def test_race_false_gives_every_finalist_every_seed() -> None:
    result = run(race=False)
    plan = result.plan
    assert plan.race is None and plan.phase("validate").runs == plan.n_finalists * 2
    assert len(result.validation) == plan.n_finalists
    assert all(f.seeds == [1, 2] and not f.raced_out for f in result.validation)
    assert "5x2=10" in plan.table()
    raced = run(name="raced").plan.table()
    assert "3+1x1=4" in raced and "3 finalists x 1 run, the best by it x 1 more seeds" in raced
    with pytest.raises(TypeError, match="'race' parameter of BudgetedSearch"):
        run(race="yes")


def choice_objective(trial: Trial) -> float:
    """One categorical ``c``, best at 2, a little noise across seeds."""
    value = 0.0
    for epoch in range(1, int(trial.budget or MAX_FIDELITY) + 1):
        value = abs(trial.config["c"] - 2) + 1.0 / epoch + 0.01 * (trial.seed or 0)
        trial.report(value, step=epoch)
    return value


def test_a_race_among_fewer_configurations_than_planned() -> None:
    """Two distinct configurations where the plan races three: both get a first run, the
    better the other seed; the run left over is not made."""

    result = tune(
        choice_objective,
        {"c": tc.choice([1, 2])},
        budget="20 trials",
        max_fidelity=MAX_FIDELITY,
        n_seeds=3,
        seed=0,
    )
    assert result.plan.race == (3, 1) and result.plan.phase("validate").runs == 5
    assert [(f.config, f.seeds, f.raced_out) for f in result.validation] == [
        ({"c": 2}, [1, 2, 3], False),
        ({"c": 1}, [1], True),
    ]
    assert result.spent["validate"].runs == 4 and result.best_config == {"c": 2}


def test_a_plan_with_the_earlier_wide_race_runs_as_it_did(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans stored before the race was narrowed spread k * s runs over more candidates than
    finalists (7 + 3 x 1 for 5 x 2); with no more distinct configurations than finalists they
    gave each every seed, and still do."""
    import tunecraft.strategy._plan as plan_module

    def wide(k: int, s: int) -> tuple[int, int] | None:
        kept = math.ceil(k / 2)
        return (k * s - kept * (s - 1), kept) if k >= 2 and s >= 2 else None

    monkeypatch.setattr(plan_module, "race_sizes", wide)

    result = tune(
        choice_objective,
        {"c": tc.choice([1, 2, 3, 4])},
        budget="20 trials",
        max_fidelity=MAX_FIDELITY,
        n_seeds=2,
        n_finalists=5,
        seed=0,
    )
    assert result.plan.race == (7, 3) and result.plan.phase("validate").runs == 10
    assert len(result.validation) == 4
    assert all(f.seeds == [1, 2] and not f.raced_out for f in result.validation)


def test_the_race_resumes_with_the_same_contenders() -> None:
    """Killed in the race's second round, a pipeline keeps the contenders it chose."""
    storage = MemoryStorage()
    calls = {"n": 0}
    inner = make_objective()

    def dies_in_round_two(trial: Trial) -> float:
        if trial.phase == "validate" and trial.seed == 2:
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt
        return inner(trial)

    with pytest.raises(KeyboardInterrupt):
        run(storage, objective=dies_in_round_two)
    stored = tc.load_study("toy.pipeline", storage=storage)
    journal = [t.user_attrs for t in stored.trials]
    assert any("contenders" in str(a) for a in journal)  # decided once, before round two
    again = run(storage)
    whole = run(MemoryStorage())
    assert [f.source for f in again.validation] == [f.source for f in whole.validation]
    assert [f.seeds for f in again.validation] == [f.seeds for f in whole.validation]
    assert again.best_config == whole.best_config


def test_a_finalist_whose_first_race_run_fails_is_not_a_contender() -> None:
    """The search's best configuration crashes in final validation: the race goes on with
    the others, the failure is reported on that finalist, and it cannot be chosen."""
    inner = make_objective()
    whole = run(MemoryStorage())
    best = whole.validation[0]
    bad = dict(next(f.config for f in whole.validation if f.source == best.source))

    def crashes_once_in_validation(trial: Trial) -> float:
        if trial.phase == "validate" and dict(trial.config) == bad:
            raise RuntimeError("CUDA out of memory")
        return inner(trial)

    result = run(MemoryStorage(), objective=crashes_once_in_validation)
    assert result.plan.race == (3, 1)
    failed = [f for f in result.validation if f.config == bad]
    assert len(failed) == 1 and failed[0].seeds == [] and math.isnan(failed[0].mean)
    assert failed[0].failures == ["RuntimeError: CUDA out of memory"]
    assert failed[0].flags == ["1 failed"] and result.validation[-1] is failed[0]
    assert result.best_config != bad and result.score is not None
    assert result.best_finalist is result.validation[0]
    assert "1 failed" in result.validation_table()
    # chosen on the holdout among two that ran: optimistic; among one that ran: not
    on_holdout = run(MemoryStorage(), objective=crashes_once_in_validation, select="holdout")
    assert on_holdout.optimistic

    def only_the_first_finalist_runs(trial: Trial) -> float:
        if trial.phase == "validate" and trial.user_attrs.get(FINALIST_ATTR) != 0:
            raise RuntimeError("CUDA out of memory")
        return inner(trial)

    one_left = run(MemoryStorage(), objective=only_the_first_finalist_runs, select="holdout")
    assert sum(1 for f in one_left.validation if f.values) == 1 and not one_left.optimistic
    went_on = [f for f in result.validation if not f.raced_out and f.config != bad]
    assert len(went_on) == 1 and went_on[0].seeds == [1, 2]
    assert [f.seeds for f in result.validation] == [[1, 2], [1], []]


def test_when_every_final_run_fails_the_result_falls_back_to_the_search() -> None:
    inner = make_objective()

    def no_holdout(trial: Trial) -> float:
        if trial.phase == "validate":
            raise ValueError("the holdout file is missing")
        return inner(trial)

    result = run(MemoryStorage(), objective=no_holdout)
    assert result.validation and all(not f.values for f in result.validation)
    assert result.best_finalist is None and result.score is None
    assert result.best_config and result.search_value is not None


def test_trials_carry_budget_seed_phase_and_split() -> None:
    seen: list[tuple[str | None, Any, Any, str]] = []
    inner = make_objective()

    def objective(trial: Trial) -> float:
        seen.append((trial.phase, trial.budget, trial.seed, trial.split))
        return inner(trial)

    result = run(objective=objective)
    plan = result.plan
    by_phase: dict[str | None, set[tuple[Any, Any, str]]] = {}
    for phase, budget, seed, split in seen:
        by_phase.setdefault(phase, set()).add((budget, seed, split))
    assert by_phase["explore"] == {(plan.phase("explore").fidelity, 0, "validation")}
    assert by_phase["refine"] == {(plan.phase("refine").fidelity, 0, "validation")}
    assert by_phase["validate"] == {(MAX_FIDELITY, 1, "holdout"), (MAX_FIDELITY, 2, "holdout")}


def test_holdout_never_influences_the_search() -> None:
    """Changing what the objective returns on the holdout leaves phases 0-2 identical."""
    a_store, b_store = MemoryStorage(), MemoryStorage()
    prior = [{"x": 0.5, "y": 0.5, "z": 0.5}, {"x": 0.9, "y": 0.1}]
    a = run(a_store, objective=make_objective(holdout_shift=0.05), prior=prior)
    b = run(b_store, objective=make_objective(reverse_holdout=True), prior=prior)
    phases = ("transfer", "explore", "refine")
    assert a.plan.names[0] == "transfer"
    assert search_record(a_store, "toy", phases) == search_record(b_store, "toy", phases)
    assert a.narrowing == b.narrowing and dict(a.importance or {}) == dict(b.importance or {})
    finalists_a = sorted(str(sorted(f.config.items())) for f in a.validation)
    finalists_b = sorted(str(sorted(f.config.items())) for f in b.validation)
    assert finalists_a == finalists_b  # the same finalists, chosen before the holdout
    assert a.score is not None and b.score is not None and a.score != b.score
    # select="validation" (the default): the holdout does not choose among them either.
    assert a.selected_by == b.selected_by == "validation"
    assert [f.source for f in a.validation] == [f.source for f in b.validation]
    assert a.best_config == b.best_config


def test_select_holdout_lets_the_holdout_choose() -> None:
    """The issue's literal rule, kept as an option: the best mean holdout score wins (so the
    choice follows the holdout data), and the result says its score is optimistic."""
    a = run(objective=make_objective(), select="holdout")
    b = run(objective=make_objective(reverse_holdout=True), select="holdout")
    default = run(objective=make_objective(reverse_holdout=True))
    assert a.selected_by == b.selected_by == "holdout" and a.optimistic
    means = [f.mean for f in b.validation if not f.raced_out]
    assert means == sorted(means)
    assert a.best_config != b.best_config  # the holdout data changed the choice
    assert default.best_config == a.best_config != b.best_config
    assert "optimistic" in b.summary() and "unbiased" in default.summary()


def test_same_seed_same_pipeline_other_seed_differs() -> None:
    a_store, b_store, c_store = MemoryStorage(), MemoryStorage(), MemoryStorage()
    a, b = run(a_store), run(b_store)
    assert a.best_config == b.best_config and a.score == b.score
    run(c_store, seed=1)
    phases = ("explore",)
    assert search_record(a_store, "toy", phases) != search_record(c_store, "toy", phases)


def test_refine_is_warm_started_inside_the_narrowed_space() -> None:
    storage = MemoryStorage()
    result = run(storage)
    narrowing = result.narrowing
    assert narrowing is not None
    refine = tc.load_study("toy.refine", storage=storage)
    assert set(refine.space.names) == set(narrowing.space.names)
    warm = [t for t in refine.trials if t.user_attrs.get(WARM_ATTR)]
    explore = tc.load_study("toy.explore", storage=storage).trials
    inside = [t for t in explore if narrowing.project(t.config) is not None]
    assert len(warm) == len(inside) > 0
    assert warm[0].number == 0  # before any refine run
    runs = [t for t in refine.trials if not t.user_attrs.get(WARM_ATTR)]
    for t in runs:
        assert narrowing.space.contains(t.config)
        full = t.run_config  # what the objective received: fixed parameters added back
        assert set(full) == set(SPACE)
        for name, value in narrowing.fixed.items():
            assert full[name] == value


def test_proxy_check_is_reported() -> None:
    result = run()
    proxy = result.proxy
    assert proxy is not None and proxy.n >= 3
    assert proxy.proxy == f"{result.plan.phase('explore').fidelity} epochs"
    assert proxy.correlation > 0.5 and proxy.trusted


def test_untrustworthy_proxy_warns() -> None:
    def objective(trial: Trial) -> float:
        base = loss_of(trial.config)
        value = base
        for epoch in range(1, int(trial.budget or 1) + 1):
            # Early epochs rank configurations in reverse: a slow starter wins in the end.
            value = base + (1.0 - base) * (3.0 / epoch) if epoch <= 3 else base
            trial.report(value, step=epoch)
        return value

    with pytest.warns(tc.strategy.ProxyWarning, match="epochs"):  # type: ignore[attr-defined]
        result = run(
            objective=objective, scheduler=tc.schedulers.MedianScheduler(n_warmup_steps=100)
        )
    assert result.proxy is not None and not result.proxy.trusted


def test_learning_curve_flags_reach_the_finalists() -> None:
    def overfits(trial: Trial) -> float:
        base = loss_of(trial.config)
        value = base
        for epoch in range(1, int(trial.budget or 1) + 1):
            value = base + (epoch - 3) ** 2 / 20  # best at epoch 3, worse after
            trial.report(value, step=epoch, train=base + 1.0 / epoch)
        return value

    result = run(objective=overfits)
    assert result.validation and all(
        f.overfitting and not f.undertrained for f in result.validation
    )

    def undertrained(trial: Trial) -> float:
        base = loss_of(trial.config)
        value = base
        for epoch in range(1, int(trial.budget or 1) + 1):
            value = base + 1.0 - epoch / 10  # still falling steadily at the end
            trial.report(value, step=epoch)
        return value

    result = run(objective=undertrained)
    assert result.validation and all(
        f.undertrained and not f.overfitting for f in result.validation
    )


def test_lr_scaling_hands_the_objective_the_scaled_rate() -> None:
    space = {"lr": tc.loguniform(1e-4, 1e-1), "batch_size": tc.choice([16, 32, 64])}
    pairs: list[tuple[float, float, int]] = []

    def objective(trial: Trial) -> float:
        lr, bs = trial.config["lr"], trial.config["batch_size"]
        pairs.append((trial.sampled_config["lr"], lr, bs))
        # The best rate grows linearly with the batch size: 1e-2 at 16.
        return (math.log10(lr / (1e-2 * bs / 16))) ** 2 + 1.0 / float(trial.budget or 1)

    result = tune(
        objective,
        space,
        budget="20 trials",
        max_fidelity=9,
        lr_scaling="linear",
        defaults=False,
        seed=0,
        n_seeds=1,
    )
    for sampled, scaled, bs in pairs:
        assert scaled == pytest.approx(sampled * bs / 16)
    assert result.best_config["lr"] == pytest.approx(
        1e-2 * result.best_config["batch_size"] / 16, rel=0.5
    )


def test_prior_studies_are_evaluated_first() -> None:
    storage = MemoryStorage()
    old = tc.Study(
        {"x": tc.uniform(0, 2), "w": tc.uniform(0, 1)}, storage=storage, name="old", seed=0
    )
    for x in (0.69, 1.5, 0.2):
        old.add_trial({"x": x, "w": 0.5}, (x - 0.7) ** 2)
    old.add_trial({"x": 1.9, "w": 0.1}, 0.0)  # the old study's best lies outside [0, 1]
    result = run(storage, name="warm", prior=["old"], defaults=False)
    assert result.plan.names[0] == "transfer"
    transfer = tc.load_study("warm.transfer", storage=storage).trials
    assert len(transfer) == result.plan.phase("transfer").runs
    first = transfer[0].config
    assert first["x"] == 1.0  # clipped into the new space
    assert all(SPACE[k].contains(v) for t in transfer for k, v in t.config.items())
    assert {t.phase for t in transfer} == {"transfer"}
    assert any("x" in note for note in result.transfer_notes)


def test_several_prior_studies_give_a_portfolio_first() -> None:
    # a is best on the first old study only, b on the second only, c good on both
    a, b, c = {"x": 0.1}, {"x": 0.9}, {"x": 0.6}
    fillers = [{"x": v} for v in (0.3, 0.4, 0.5)]
    one = [(a, 0.0), (c, 0.1)] + [(f, 1.0 + i) for i, f in enumerate(fillers)] + [(b, 9.0)]
    two = [(b, 0.0), (c, 0.1)] + [(f, 1.0 + i) for i, f in enumerate(fillers)] + [(a, 9.0)]
    storage = MemoryStorage()
    result = run(storage, name="warm2", prior=[one, two], defaults=False)
    transfer = tc.load_study("warm2.transfer", storage=storage).trials
    assert transfer[0].config == {"x": 0.6, "y": 0.5, "z": 0.5}  # c, then filled
    assert any("prior[0]" in n or "prior[1]" in n for n in result.transfer_notes)


def stored_search(storage: Any, **kwargs: Any) -> BudgetedSearch:
    """A pipeline named "toy" in ``storage``: a new one after a crash picks up the stored state."""
    return BudgetedSearch(
        make_objective(),
        SPACE,
        budget="20 trials",
        max_fidelity=MAX_FIDELITY,
        seed=0,
        n_seeds=1,
        storage=storage,
        name="toy",
        **kwargs,
    )


def test_a_crash_in_the_middle_of_the_warm_start_loses_no_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = MemoryStorage()
    search = stored_search(storage)
    search.run_phase("explore")
    refine = search.study("refine")
    original = tc.Study.add_trial
    calls = [0]

    def dies_on_the_third(self: tc.Study, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt  # the process dies between two copies
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tc.Study, "add_trial", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        search.run_phase("refine")
    monkeypatch.setattr(tc.Study, "add_trial", original)
    assert len(refine.trials) == 2
    again = stored_search(storage)
    again.run_phase("refine")
    narrowing = again.narrowing
    assert narrowing is not None
    explore = again.study("explore").trials
    inside = [t for t in explore if narrowing.project(t.config) is not None]
    copies = [
        t.user_attrs[WARM_ATTR] for t in again.study("refine").trials if WARM_ATTR in t.user_attrs
    ]
    assert len(inside) > 2 and sorted(copies) == sorted(f"explore #{t.number}" for t in inside)


def test_a_crash_in_the_middle_of_the_transfer_enqueue_loses_no_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = MemoryStorage()
    prior = [{"x": 0.1, "y": 0.2, "z": 0.3}, {"x": 0.4, "y": 0.5, "z": 0.6}, {"x": 0.7, "y": 0.8}]

    def make() -> BudgetedSearch:
        return stored_search(storage, prior=prior, defaults=False)

    original = tc.Study.enqueue
    calls = [0]

    def dies_on_the_second(self: tc.Study, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tc.Study, "enqueue", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        make().run_phase("transfer")
    monkeypatch.setattr(tc.Study, "enqueue", original)
    search = make()
    search.run_phase("transfer")
    xs = sorted(t.config["x"] for t in search.study("transfer").trials)
    assert xs == [0.1, 0.4, 0.7]


# -- step by step ---------------------------------------------------------------------------------
def test_budgeted_search_step_by_step_and_change() -> None:
    search = BudgetedSearch(
        make_objective(), SPACE, budget="20 trials", max_fidelity=MAX_FIDELITY, seed=0, n_seeds=1
    )
    assert search.next_phase == "explore"
    with pytest.raises(PipelineError, match="'explore' first"):
        search.run_phase("refine")
    search.run_phase("explore")
    assert search.done == ["explore"] and search.importance is not None
    narrowed = search.set_narrowing({"x": tc.uniform(0.6, 0.8)}, fixed={"y": 0.3, "z": 0.0})
    assert narrowed.fixed == {"y": 0.3, "z": 0.0}
    search.run_phase("refine")
    refine = search.study("refine")
    assert list(refine.space.names) == ["x"]
    assert all(0.6 <= t.config["x"] <= 0.8 for t in refine.trials)
    with pytest.raises(PipelineError, match="refine has started"):
        search.set_narrowing({"x": tc.uniform(0, 1)}, fixed={"y": 0.3, "z": 0.0})
    result = search.run()
    assert search.next_phase is None
    assert result.best_config["y"] == 0.3 and result.best_config["z"] == 0.0


# -- resume after a kill --------------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["transfer", "explore", "refine", "validate"])
def test_resume_after_a_kill_in_each_phase(phase: str) -> None:
    storage = MemoryStorage()
    storage_old = tc.Study({"x": tc.uniform(0, 1)}, storage=storage, name="old", seed=0)
    for x in (0.7, 0.6, 0.2):
        storage_old.add_trial({"x": x}, abs(x - 0.7))
    calls = {"n": 0}

    def kill(trial: Trial) -> bool:
        if trial.phase != phase:
            return False
        calls["n"] += 1
        return calls["n"] == 2  # the second run of that phase dies

    with pytest.raises(KeyboardInterrupt):
        run(storage, name="k", objective=make_objective(kill=kill), prior=["old"], defaults=False)
    search = BudgetedSearch(
        make_objective(),
        SPACE,
        budget="20 trials",
        max_fidelity=MAX_FIDELITY,
        storage=storage,
        name="k",
        seed=0,
        n_seeds=2,
        prior=["old"],
        defaults=False,
    )
    assert search.next_phase == phase  # it continues in the phase that was killed
    names = search.plan().names
    before = {p: len(search.study(p).trials) for p in names[: names.index(phase) + 1]}
    killed = search.study(phase).trials
    assert any(t.state is TrialState.FAILED and t.error == "interrupted" for t in killed)
    result = search.run()
    plan = result.plan
    for p in plan.names[: plan.names.index(phase)]:  # finished phases are not re-run
        assert len(search.study(p).trials) == before[p]
    assert result.spent["explore"].runs >= plan.phase("explore").runs
    counted = [t for t in search.study("validate").trials if t.state is TrialState.COMPLETE]
    assert len(counted) == plan.phase("validate").runs
    pairs = {(t.user_attrs[FINALIST_ATTR], t.seed) for t in counted}
    assert len(pairs) == len(counted)  # no finalist-seed pair validated twice
    assert result.score is not None


def test_resume_from_sqlite_in_a_new_object(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    def kill(trial: Trial) -> bool:
        return trial.phase == "refine" and trial.number == 15

    with pytest.raises(KeyboardInterrupt):
        run(url, name="db", budget="12 trials", objective=make_objective(kill=kill), n_seeds=1)
    explore = len(tc.load_study("db.explore", storage=url).trials)
    result = run(url, name="db", budget="12 trials", n_seeds=1)
    assert len(tc.load_study("db.explore", storage=url).trials) == explore
    assert result.score is not None and len(result.validation) >= 1


def test_a_pipeline_with_another_space_is_refused() -> None:
    storage = MemoryStorage()
    run(storage, name="s", budget="12 trials", n_seeds=1)
    with pytest.raises(ValueError, match="another space"):
        tune(
            make_objective(),
            {"x": tc.uniform(0, 2)},
            budget="12 trials",
            max_fidelity=MAX_FIDELITY,
            storage=storage,
            name="s",
        )


# -- time ---------------------------------------------------------------------------------------
def _slow(seconds_per_epoch: float) -> Callable[[Trial], float]:
    inner = make_objective()

    def objective(trial: Trial) -> float:
        time.sleep(seconds_per_epoch * float(trial.budget or 1))
        return inner(trial)

    return objective


def test_running_out_of_time_ends_phases_and_still_validates() -> None:
    def objective(trial: Trial) -> float:
        base = loss_of(trial.config)
        value = base
        for epoch in range(1, int(trial.budget or 1) + 1):
            time.sleep(0.015)
            value = base + 1.0 / epoch
            trial.report(value, step=epoch)
            if trial.should_stop():
                break
        return value

    # Imported now, not inside the timed pipeline (the importance needs scikit-learn's trees).
    from scipy.stats import qmc  # noqa: F401
    from sklearn import ensemble  # noqa: F401

    storage = MemoryStorage()
    never = tc.schedulers.MedianScheduler(n_warmup_steps=1000)  # only the clock stops runs
    start = time.monotonic()
    result = run(
        storage, objective=objective, budget="40 trials", timeout=2.0, n_seeds=3, scheduler=never
    )
    elapsed = time.monotonic() - start
    assert result.spent["explore"].runs < result.plan.phase("explore").runs
    refine = tc.load_study("toy.refine", storage=storage).trials
    stopped = [t for t in refine if t.state is TrialState.PRUNED]
    assert stopped  # the scheduler never stops a run: the clock did, at a report
    own = [t for t in refine if not t.user_attrs.get("tc.warm_start")]
    assert any(t.state is TrialState.COMPLETE for t in own)  # warm-start copies don't count
    assert result.validation and result.score is not None
    assert sum(f.n for f in result.validation) < result.plan.phase("validate").runs
    assert elapsed < 12.0


def test_time_budget_is_calibrated_then_planned() -> None:
    lines: list[str] = []
    result = run(objective=_slow(0.004), budget="1.5s", n_seeds=1, verbose=lines.append)
    plan = result.plan
    assert plan.seconds == 1.5 and plan.seconds_per_unit is not None
    assert any(line.startswith("calibration:") for line in lines)
    assert any(line.startswith("Plan:") for line in lines)
    assert result.validation


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"budget": 10}, ValueError, "too small.*would suffice"),
        ({"direction": "up"}, ValueError, "direction"),
        ({"lr_scaling": "cubic"}, ValueError, "lr_scaling"),
        ({"lr_scaling": "linear"}, ValueError, "learning-rate parameter"),
        ({"shares": (0.5, 0.5, 0.5)}, ValueError, "sum to 1"),
        ({"n_seeds": 0}, ValueError, "n_seeds"),
        ({"budget": "3 parsecs"}, ValueError, "unknown unit"),
        ({"lr_find": 3}, TypeError, "lr_find"),
        ({"seed": -1}, ValueError, "seed"),
        ({"budget": -1}, ValueError, "'budget' parameter must be a finite number > 0"),
        ({"n_finalist": 2}, TypeError, "tune.. got an unknown keyword argument 'n_finalist'"),
    ],
)
def test_bad_input(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        run(**kwargs)


def test_objective_must_be_callable() -> None:
    with pytest.raises(TypeError, match="objective"):
        tune(3, SPACE, budget=100, max_fidelity=9)  # type: ignore[arg-type]


def test_every_explore_run_failing_is_one_clear_error() -> None:
    def broken(trial: Trial) -> float:
        raise RuntimeError("no data")

    with pytest.raises(PipelineError, match=r"explore: no run completed.*no data"):
        run(objective=broken)


def test_validate_trials_are_tagged_per_finalist() -> None:
    storage = MemoryStorage()
    result = run(storage)
    validate = tc.load_study("toy.validate", storage=storage).trials
    assert {t.user_attrs[FINALIST_ATTR] for t in validate} == set(range(len(result.validation)))
    assert {t.split for t in validate} == {"holdout"}


def test_maximize() -> None:
    def accuracy(trial: Trial) -> float:
        base = 0.9 - loss_of(trial.config)
        value = base
        for epoch in range(1, int(trial.budget or 1) + 1):
            value = base - 0.5 / epoch - 0.002 * ((trial.seed or 0) % 5)
            trial.report(value, step=epoch)
            if trial.should_stop():
                break
        return value - (0.03 if trial.split == "holdout" else 0.0)

    result = run(objective=accuracy, direction="maximize")
    went_on = [f for f in result.validation if not f.raced_out]
    first = sorted((f.validation_values[0] for f in result.validation), reverse=True)
    assert sorted((f.validation_values[0] for f in went_on), reverse=True) == first[: len(went_on)]
    means = [f.mean for f in went_on]
    assert means == sorted(means, reverse=True) and result.score == means[0]
    assert abs(result.best_config["x"] - 0.7) < 0.15
    assert result.search_value is not None and result.score < result.search_value


def test_result_mid_way_and_a_changed_budget_on_resume() -> None:
    storage = MemoryStorage()
    search = BudgetedSearch(
        make_objective(),
        SPACE,
        budget="20 trials",
        max_fidelity=MAX_FIDELITY,
        storage=storage,
        name="mid",
        seed=0,
        n_seeds=1,
    )
    search.run_phase("explore")
    partial = search.result()  # before validation: the best search config, no holdout score
    assert partial.validation == [] and partial.score is None
    assert partial.best_config and partial.spent["refine"].runs == 0
    with pytest.warns(UserWarning, match="stored plan"):
        again = BudgetedSearch(
            make_objective(),
            SPACE,
            budget="40 trials",
            max_fidelity=MAX_FIDELITY,
            storage=storage,
            name="mid",
            seed=0,
            n_seeds=1,
        )
        assert again.plan() == search.plan()


def test_a_resumed_pipeline_names_every_setting_it_ignores() -> None:
    storage = MemoryStorage()
    kwargs: dict[str, Any] = dict(
        budget="20 trials", max_fidelity=MAX_FIDELITY, storage=storage, name="changed", seed=0
    )
    first = BudgetedSearch(make_objective(), SPACE, n_seeds=3, **kwargs)
    assert first.plan().race is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings: no warning
        assert BudgetedSearch(make_objective(), SPACE, n_seeds=3, **kwargs).plan() == first.plan()
    with pytest.warns(UserWarning) as caught:
        again = BudgetedSearch(make_objective(), SPACE, n_seeds=2, race=False, **kwargs)
        assert again.plan() == first.plan()
    (message,) = [str(w.message) for w in caught]
    assert "n_seeds (stored: 3), race (stored: True) given now are ignored" in message
    assert "budget" not in message
    with pytest.warns(UserWarning, match=r"shares \(stored: 0.1, 0.3, 0.6\), validation_cost"):
        BudgetedSearch(
            make_objective(), SPACE, shares=(0.2, 0.3, 0.5), validation_cost=3, **kwargs
        ).plan()


def test_a_data_fraction_as_the_fidelity() -> None:
    fractions: dict[str | None, set[float]] = {}

    def objective(trial: Trial) -> float:
        fraction = float(trial.budget or 1.0)
        fractions.setdefault(trial.phase, set()).add(fraction)
        # Less data, a noisier and more pessimistic estimate.
        return loss_of(trial.config) + 0.1 * (1 - fraction) + 0.01 * ((trial.seed or 0) % 3)

    result = tune(
        objective,
        SPACE,
        budget="20 trials",
        max_fidelity=1.0,
        unit="fraction",
        seed=0,
        n_seeds=2,
    )
    assert fractions["validate"] == {1.0}
    assert all(0 < f < 1.0 for f in fractions["explore"])
    assert "fraction" in result.plan.table() and result.score is not None


def test_on_trial_sees_every_run_with_its_phase() -> None:
    seen: list[tuple[str, int]] = []
    storage = MemoryStorage()
    run(storage, on_trial=lambda phase, record: seen.append((phase, record.number)))
    for phase in ("explore", "refine", "validate"):
        study = tc.load_study(f"toy.{phase}", storage=storage)
        ran = {t.number for t in study.trials if not t.user_attrs.get(WARM_ATTR)}
        assert {n for p, n in seen if p == phase} == ran
    with pytest.raises(TypeError, match="on_trial"):
        run(on_trial=3)


def test_finalists_are_the_runs_that_went_furthest_stopped_ones_included() -> None:
    # Under successive halving most refine runs are stopped early; one stopped at step 6 of 9
    # has been seen longer than any of explore's short complete runs, so it is a finalist
    # before them (leaving stopped runs out chose finalists on explore's short runs).
    class StopAtSix(tc.schedulers.Scheduler):
        def on_report(self, trial: Any, history: Any) -> tc.schedulers.Decision:
            if trial.last_step >= 6:
                return tc.schedulers.Decision.STOP
            return tc.schedulers.Decision.CONTINUE

    storage = MemoryStorage()
    result = run(storage, scheduler=StopAtSix())
    refine = tc.load_study("toy.refine", storage=storage).trials
    assert not any(
        t.state is TrialState.COMPLETE and not t.user_attrs.get(WARM_ATTR) for t in refine
    )
    assert result.plan.phase("explore").fidelity < 6
    assert len(result.validation) >= 2
    assert all(f.source.startswith("refine #") for f in result.validation)
    assert {f.search_fidelity for f in result.validation} == {6}
    # the best of the stopped runs at step 6, in that order
    stopped = sorted(
        t.intermediate[6] for t in refine if t.state is TrialState.PRUNED and 6 in t.intermediate
    )
    assert sorted(f.search_value for f in result.validation) == stopped[: len(result.validation)]


def test_lowest_rung_leaves_enough_full_length_runs() -> None:
    from tunecraft.strategy._pipeline import _lowest_rung

    # a large budget keeps every rung; a smaller one raises the lowest, never past the
    # highest rung below full length, and never lowers it as the budget shrinks
    assert _lowest_rung(10_000, 30, 3) == 1
    by_budget = [_lowest_rung(b, 30, 3) for b in (10_000, 1000, 600, 390, 100, 1)]
    assert by_budget == sorted(by_budget) and by_budget[-1] == 27
    assert set(by_budget) <= {1, 3, 9, 27}
    assert _lowest_rung(390, 30, 1) < _lowest_rung(390, 30, 3)  # fewer finalists, less need
    assert _lowest_rung(1, 3, 3) == 1 and _lowest_rung(1, 2, 3) == 1  # no rung to raise
    # by hand, max 9, eta 3: rungs 1, 3 cost 1 + 2/3 + 6/9 = 7/3 a run and let 1/9 finish,
    # so one full-length run needs 21 units; a rung at 3 alone costs 3 + 6/3 = 5 and lets
    # 1/3 finish, so 15 units
    assert _lowest_rung(21.01, 9, 1) == 1
    assert _lowest_rung(20.99, 9, 1) == 3 and _lowest_rung(15.01, 9, 1) == 3
    assert _lowest_rung(14.99, 9, 1) == 3  # no rung above 3 below 9: the highest stays
    assert _lowest_rung(100, 40, 3, reduction_factor=2) == 32


def test_a_small_refine_budget_raises_the_lowest_rung() -> None:
    from tunecraft.schedulers import AutoScheduler

    small = BudgetedSearch(make_objective(), SPACE, budget="20 trials", max_fidelity=30, seed=0)
    large = BudgetedSearch(make_objective(), SPACE, budget="400 trials", max_fidelity=30, seed=0)
    rungs = []
    for search in (small, large):
        scheduler = search._refine_scheduler(search.plan())
        assert isinstance(scheduler, AutoScheduler)
        rungs.append(scheduler.min_resource)
    assert rungs[0] is not None and rungs[0] > 1
    assert rungs[1] is None  # enough budget: every rung from step 1, chosen by the data


def test_refine_ends_when_a_finite_space_is_used_up() -> None:
    # Three configurations: refine ran each of them over and over, every run the same.
    space = {"c": tc.choice([0.2, 0.5, 0.7])}
    calls: list[tuple[float, int | None, Any]] = []

    def objective(trial: Trial) -> float:
        calls.append((trial.config["c"], trial.seed, trial.budget))
        value = 1.0
        for epoch in range(1, int(trial.budget or MAX_FIDELITY) + 1):
            value = (trial.config["c"] - 0.7) ** 2 + 1.0 / epoch
            trial.report(value, step=epoch)
            if trial.should_stop():
                break
        return value

    storage = MemoryStorage()
    result = tune(
        objective,
        space,
        budget="20 trials",
        max_fidelity=MAX_FIDELITY,
        storage=storage,
        name="finite",
        seed=0,
    )
    refine = [t for t in tc.load_study("finite.refine", storage=storage).trials]
    own = [t for t in refine if not t.user_attrs.get(WARM_ATTR)]
    full = [t for t in own if t.state is TrialState.COMPLETE and t.last_step == MAX_FIDELITY]
    keys = [(t.config["c"], t.seed) for t in full]
    assert len(keys) - len(set(keys)) <= 1  # the one repeat that shows the space is used up
    assert result.spent["refine"].units < result.plan.phase("refine").allotted
    assert result.best_config == {"c": 0.7}

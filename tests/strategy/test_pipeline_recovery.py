"""The pipeline after a bug: calibration, a fixed objective rerun, killed transfer runs, priors
from earlier pipelines, and what the result and the spending table say."""

from __future__ import annotations

import time
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.exceptions import StudyNotFoundError
from tunecraft.samplers._sobol import SobolSampler
from tunecraft.storage import MemoryStorage
from tunecraft.strategy import BudgetedSearch, PipelineError, load_prior, tune
from tunecraft.strategy._pipeline import OBJECTIVE_SECONDS_ATTR
from tunecraft.strategy._transfer import DERIVED_ATTR
from tunecraft.trial import CONFIG_ATTR, FrozenTrial, Trial, TrialState

SPACE = {"x": tc.uniform(0, 1), "y": tc.uniform(0, 1), "z": tc.uniform(0, 1)}
MAX_FIDELITY = 9


def objective(trial: Trial) -> float:
    c = trial.config
    base = (c["x"] - 0.7) ** 2 + 0.2 * (c["y"] - 0.3) ** 2 + 0.002 * c["z"]
    value = base
    for epoch in range(1, int(trial.budget or MAX_FIDELITY) + 1):
        value = base + 1.0 / epoch + 0.002 * ((trial.seed or 0) % 5)
        trial.report(value, step=epoch)
        if trial.should_stop():
            break
    return value + (0.05 if trial.split == "holdout" else 0.0)


def options(storage: Any, name: str, **kwargs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "budget": "20 trials",
        "max_fidelity": MAX_FIDELITY,
        "storage": storage,
        "name": name,
        "seed": 0,
        "n_seeds": 2,
    }
    out.update(kwargs)
    return out


def own_trials(storage: Any, study: str) -> list[FrozenTrial]:
    return [
        t
        for t in tc.load_study(study, storage=storage).trials
        if not t.user_attrs.get("tc.warm_start")
    ]


# -- A: calibration of a time budget --------------------------------------------------------
def test_calibration_times_the_objective_not_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    suggest = SobolSampler.suggest

    def slow_suggest(self: SobolSampler, *args: Any, **kwargs: Any) -> dict[str, Any]:
        time.sleep(0.4)  # as the first Sobol suggestion importing scipy.stats.qmc
        return suggest(self, *args, **kwargs)

    monkeypatch.setattr(SobolSampler, "suggest", slow_suggest)
    search = BudgetedSearch(
        lambda trial: trial.config["x"], SPACE, budget="3s", max_fidelity=MAX_FIDELITY, seed=0
    )
    plan = search.plan()  # 0.4s per epoch would make 3s "too small"
    assert plan.seconds_per_unit is not None and plan.seconds_per_unit < 0.1
    (run,) = search.study("calibration").trials
    assert run.duration is not None and run.duration >= 0.4
    assert run.user_attrs[OBJECTIVE_SECONDS_ATTR] < 0.1


# -- B: a rerun after fixing the objective -------------------------------------------------------
def test_rerun_after_fixing_the_objective_retries_the_failed_explore_runs() -> None:
    storage = MemoryStorage()

    def buggy(trial: Trial) -> float:
        raise KeyError("typo")

    with pytest.raises(PipelineError, match=r"explore: no run completed.*failed runs are retried"):
        tune(buggy, SPACE, **options(storage, "fix"))
    failed = own_trials(storage, "fix.explore")
    assert failed and all(t.state is TrialState.FAILED for t in failed)

    result = tune(objective, SPACE, **options(storage, "fix"))
    planned = result.plan.phase("explore").runs
    explore = own_trials(storage, "fix.explore")
    assert sum(t.state is TrialState.COMPLETE for t in explore) == planned
    # honest accounting: the failed runs stay in the spending
    assert result.spent["explore"].runs == len(failed) + planned
    assert result.spent["explore"].failed == len(failed)
    assert result.score is not None and result.selected_by == "validation"
    assert f"{len(failed) + planned} ({len(failed)} failed)" in result.spent_table()


def test_rerun_after_fixing_the_holdout_branch_validates() -> None:
    storage = MemoryStorage()

    def buggy(trial: Trial) -> float:
        if trial.split == "holdout":
            raise FileNotFoundError("holdout.csv")
        return objective(trial)

    first = tune(buggy, SPACE, **options(storage, "hold"))
    assert first.score is None and first.best_finalist is None
    assert first.selected_by == "none" and not first.optimistic
    assert "Validation produced nothing" in first.summary()
    assert "FileNotFoundError: holdout.csv" in first.summary()
    search = BudgetedSearch(objective, SPACE, **options(storage, "hold"))
    assert "validate" not in search.done and search.next_phase == "validate"

    second = search.run()
    assert second.score is not None and second.selected_by == "validation"
    assert second.best_finalist is not None and len(second.best_finalist.values) == 2
    assert "validate" in search.done


def test_transfer_whose_every_run_raised_is_retried_after_the_fix() -> None:
    storage = MemoryStorage()
    prior = [{"x": 0.7, "y": 0.3, "z": 0.5}, {"x": 0.2, "y": 0.3, "z": 0.5}]

    def buggy(trial: Trial) -> float:
        raise RuntimeError("bug")

    kwargs = options(storage, "tr", prior=prior, defaults=False)
    with pytest.raises(PipelineError, match=r"transfer: no run completed \(2 failed; Runtime"):
        tune(buggy, SPACE, **kwargs)
    tune(objective, SPACE, **kwargs)
    transfer = tc.load_study("tr.transfer", storage=storage).trials
    done = [t.config for t in transfer if t.state is TrialState.COMPLETE]
    assert sorted(c["x"] for c in done) == [0.2, 0.7]


def test_a_config_that_returns_nan_is_not_retried() -> None:
    storage = MemoryStorage()
    prior = [{"x": 0.2, "y": 0.3, "z": 0.5}, {"x": 0.7, "y": 0.3, "z": 0.5}]

    def nan_then_killed(trial: Trial) -> float:
        if trial.config["x"] == 0.7:
            raise KeyboardInterrupt
        return float("nan") if trial.config["x"] == 0.2 else objective(trial)

    def nan_at_02(trial: Trial) -> float:
        return float("nan") if trial.config["x"] == 0.2 else objective(trial)

    kwargs = options(storage, "nan", prior=prior, defaults=False)
    with pytest.raises(KeyboardInterrupt):
        BudgetedSearch(nan_then_killed, SPACE, **kwargs).run_phase("transfer")
    BudgetedSearch(nan_at_02, SPACE, **kwargs).run_phase("transfer")
    transfer = tc.load_study("nan.transfer", storage=storage).trials
    assert [t.config["x"] for t in transfer].count(0.2) == 1  # the NaN config ran once
    assert [t.config["x"] for t in transfer if t.state is TrialState.COMPLETE] == [0.7]


def test_a_config_that_reports_nan_is_not_retried() -> None:
    storage = MemoryStorage()
    prior = [{"x": 0.2, "y": 0.3, "z": 0.5}, {"x": 0.7, "y": 0.3, "z": 0.5}]

    def nan_report(trial: Trial) -> float:
        if trial.config["x"] == 0.7:
            raise KeyboardInterrupt
        if trial.config["x"] == 0.2:
            trial.report(float("nan"), step=1)  # fails the trial, as NaN returned does
        return objective(trial)

    def fixed(trial: Trial) -> float:
        if trial.config["x"] == 0.2:
            trial.report(float("nan"), step=1)
        return objective(trial)

    kwargs = options(storage, "nanrep", prior=prior, defaults=False)
    with pytest.raises(KeyboardInterrupt):
        BudgetedSearch(nan_report, SPACE, **kwargs).run_phase("transfer")
    BudgetedSearch(fixed, SPACE, **kwargs).run_phase("transfer")
    transfer = tc.load_study("nanrep.transfer", storage=storage).trials
    assert [t.config["x"] for t in transfer].count(0.2) == 1
    assert "got nan" in (transfer[0].error or "")


# -- C: a killed transfer run -----------------------------------------------------------------
def test_a_killed_transfer_run_runs_again_on_resume(tmp_path: Any) -> None:
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    prior = [
        {"x": 0.71, "y": 0.3, "z": 0.5},
        {"x": 0.69, "y": 0.3, "z": 0.5},
        {"x": 0.2, "y": 0.3, "z": 0.5},
    ]
    calls = {"n": 0}

    def killed_on_the_second(trial: Trial) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process killed in the middle of the run
        return objective(trial)

    kwargs = options(storage, "tk", prior=prior, defaults=False)
    with pytest.raises(KeyboardInterrupt):
        BudgetedSearch(killed_on_the_second, SPACE, **kwargs).run_phase("transfer")
    search = BudgetedSearch(objective, SPACE, **kwargs)
    search.run_phase("transfer")
    transfer = tc.load_study("tk.transfer", storage=storage).trials
    done = sorted(t.config["x"] for t in transfer if t.state is TrialState.COMPLETE)
    assert done == [0.2, 0.69, 0.71]
    assert search.result().spent["transfer"].failed == 1


# -- D: priors from an earlier pipeline -------------------------------------------------------
def test_prior_from_an_earlier_refine_keeps_the_values_its_narrowing_fixed() -> None:
    storage = MemoryStorage()
    old = BudgetedSearch(objective, SPACE, **options(storage, "old", defaults=False))
    old.run_phase("explore")
    old.set_narrowing({"x": tc.uniform(0.5, 0.9)}, fixed={"y": 0.25, "z": 0.125})
    old.run_phase("refine")

    best = load_prior("old.refine", SPACE, storage=storage, k=3)
    assert best and all(p.config["y"] == 0.25 and p.config["z"] == 0.125 for p in best)
    assert not any("filled missing" in note for p in best for note in p.notes)
    # the pipeline's name: the runs of all its search phases, the longest first
    by_name = load_prior("old", SPACE, storage=storage, k=3)
    assert by_name[0].source.startswith("pipeline 'old' trial")
    assert by_name[0].config["y"] == 0.25 and by_name[0].config["z"] == 0.125


def test_prior_never_takes_a_derived_learning_rate() -> None:
    space = tc.Space({"lr": tc.loguniform(1e-4, 1e-1), "batch_size": tc.choice([32, 128])})
    searched = FrozenTrial(
        0,
        TrialState.COMPLETE,
        {"lr": 0.01, "batch_size": 128},
        value=0.1,
        user_attrs={CONFIG_ATTR: {"lr": 0.04, "batch_size": 128}, DERIVED_ATTR: ["lr"]},
    )
    fixed = FrozenTrial(
        1,
        TrialState.COMPLETE,
        {"batch_size": 128},  # lr fixed by a narrowing: run_config holds it scaled
        value=0.2,
        user_attrs={CONFIG_ATTR: {"lr": 0.04, "batch_size": 128}, DERIVED_ATTR: ["lr"]},
    )
    first, second = load_prior([searched, fixed], space, k=2)
    assert first.config == {"lr": 0.01, "batch_size": 128}  # the sampled rate, not 0.04
    assert second.config["lr"] != 0.04
    assert any("filled missing 'lr'" in note for note in second.notes)


def test_pipeline_marks_the_scaled_learning_rate_as_derived() -> None:
    storage = MemoryStorage()
    space = {"lr": tc.loguniform(1e-4, 1e-1), "batch_size": tc.choice([32, 128])}
    search = BudgetedSearch(
        lambda trial: trial.config["lr"],
        space,
        **options(storage, "lrs", lr_scaling="linear", defaults=False),
    )
    search.run_phase("explore")
    trials = own_trials(storage, "lrs.explore")
    assert trials and all(t.user_attrs[DERIVED_ATTR] == ["lr"] for t in trials)
    scaled = [t for t in trials if t.config["batch_size"] == 128]
    assert scaled and all(t.run_config["lr"] != t.config["lr"] for t in scaled)
    prior = load_prior("lrs.explore", space, storage=storage, k=30)
    assert {p.config["lr"] for p in prior} <= {t.config["lr"] for t in trials}


def test_prior_naming_nothing_lists_the_studies() -> None:
    storage = MemoryStorage()
    tc.Study(SPACE, storage=storage, name="mlp-v1")
    with pytest.raises(StudyNotFoundError, match=r"No study named 'mlp'.*holds 'mlp-v1'"):
        load_prior("mlp", SPACE, storage=storage)


# -- F: a killed validation run in the spending ----------------------------------------------
def test_spent_table_shows_killed_runs() -> None:
    storage = MemoryStorage()
    calls = {"n": 0}

    def killed_once(trial: Trial) -> float:
        if trial.phase == "validate":
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt
        return objective(trial)

    with pytest.raises(KeyboardInterrupt):
        tune(killed_once, SPACE, **options(storage, "kv"))
    result = tune(objective, SPACE, **options(storage, "kv"))
    spent = result.spent["validate"]
    assert spent.failed == 1 and spent.runs == result.plan.phase("validate").runs + 1
    table = result.spent_table()
    assert f"{spent.runs} (1 failed)" in table
    assert "Failed or killed runs count the epochs they reached" in table

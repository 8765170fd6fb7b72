"""Several processes on one study: Study.optimize(n_jobs=...) and independent processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError, WorkerError
from tunecraft.storage import MemoryStorage, Storage, get_storage
from tunecraft.testing.storages import unique_name
from tunecraft.trial import FrozenTrial, Trial, TrialState

SPACE = {"x": tc.uniform(0.0, 1.0), "k": tc.integer(1, 5)}


def expected_value(config: dict[str, float]) -> float:
    return config["x"] * 10 + config["k"]


def objective(trial: Trial) -> float:
    trial.report(trial.config["x"], step=0)
    trial.set_user_attr("pid", os.getpid())
    time.sleep(0.01)  # long enough for every worker to get trials
    return expected_value(trial.config)


def check_finished(trials: list[FrozenTrial], n: int) -> None:
    """Numbers 0..n-1 once each, every trial complete with its own objective value."""
    assert [t.number for t in trials] == list(range(n))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n
    for t in trials:
        assert t.value == expected_value(t.config), t
        assert t.intermediate == {0: t.config["x"]}
        assert t.user_attrs["pid"] == int(str(t.worker).rsplit(":", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize("n_jobs", [2, 4])
def test_optimize_with_n_jobs_runs_exactly_n_trials(shared_url: str, n_jobs: int) -> None:
    study = tc.Study(SPACE, storage=shared_url, name=unique_name("njobs"), sampler="random")
    study.optimize(objective, n_trials=24, n_jobs=n_jobs)
    trials = study.trials
    check_finished(trials, 24)
    assert len({t.user_attrs["pid"] for t in trials}) >= 2, "the workers did not share the work"
    assert os.getpid() not in {t.user_attrs["pid"] for t in trials}
    study.optimize(objective, n_trials=6, n_jobs=n_jobs)  # numbering continues
    check_finished(study.trials, 30)


@pytest.mark.slow
def test_enqueued_trials_run_once_each_with_n_jobs(shared_url: str) -> None:
    study = tc.Study(SPACE, storage=shared_url, name=unique_name("enqueue"), sampler="random")
    queued = [{"x": i / 16, "k": 1 + i % 5} for i in range(12)]
    for config in queued:
        study.enqueue(config)
    study.optimize(objective, n_trials=12, n_jobs=3)
    trials = study.trials
    check_finished(trials, 12)
    assert sorted((t.config["x"], t.config["k"]) for t in trials) == sorted(
        (c["x"], c["k"]) for c in queued
    )


def _run_study(url: str, name: str, seed: int, n_trials: int, start_at: float) -> int:
    """One process of many working on the same study, as separate machines would."""
    study = tc.Study(
        SPACE,
        storage=url,
        name=name,
        sampler=tc.make_sampler("random", seed=seed),
        load_if_exists=True,
    )
    time.sleep(max(0.0, start_at - time.time()))
    study.optimize(objective, n_trials=n_trials)
    return os.getpid()


@pytest.mark.slow
def test_independent_processes_get_dense_numbers_and_lose_no_tell(shared_url: str) -> None:
    name = unique_name("procs")  # the processes race to create it (load_if_exists=True)
    start_at = time.time() + 1.5
    with ProcessPoolExecutor(4, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_study, shared_url, name, i, 50, start_at) for i in range(4)]
        pids = {f.result(timeout=120) for f in futures}
    study = tc.load_study(name, storage=shared_url)
    trials = study.trials
    check_finished(trials, 200)
    assert {t.user_attrs["pid"] for t in trials} == pids
    assert study.storage.get_study(name).n_trials == 200


@pytest.mark.slow
def test_failing_objective_in_workers_fails_its_trials_only(tmp_path: Path) -> None:
    def flaky(trial: Trial) -> float:
        if trial.number % 3 == 0:
            raise RuntimeError(f"bad luck {trial.number}")
        return 1.0

    study = tc.Study(SPACE, storage=f"sqlite:///{tmp_path / 'f.db'}", sampler="random")
    study.optimize(flaky, n_trials=12, n_jobs=2)
    trials = study.trials
    assert [t.number for t in trials] == list(range(12))
    for t in trials:
        if t.number % 3 == 0:
            assert t.state is TrialState.FAILED
            assert t.error is not None and f"bad luck {t.number}" in t.error
        else:
            assert (t.state, t.value) == (TrialState.COMPLETE, 1.0)


@pytest.mark.slow
def test_uncaught_error_in_a_worker_raises_worker_error(tmp_path: Path) -> None:
    def broken(trial: Trial) -> float:
        raise KeyError("missing column")

    study = tc.Study(SPACE, storage=f"sqlite:///{tmp_path / 'w.db'}", sampler="random")
    with pytest.raises(WorkerError) as excinfo:
        study.optimize(broken, n_trials=50, n_jobs=2, catch=(ValueError,))
    assert "missing column" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    trials = study.trials
    assert trials and all(t.state is TrialState.FAILED for t in trials)
    assert len(trials) < 50


@pytest.mark.parametrize("make", [MemoryStorage, lambda: get_storage("sqlite:///:memory:")])
def test_in_memory_storage_with_n_jobs_is_a_clear_error(make: type[Storage]) -> None:
    study = tc.Study(SPACE, storage=make(), sampler="random")
    with pytest.raises(InvalidParameterError) as excinfo:
        study.optimize(objective, n_trials=4, n_jobs=2)
    text = str(excinfo.value)
    assert "n_jobs=2" in text and "sqlite:///" in text and "\n" not in text
    assert study.trials == []
    study.optimize(objective, n_trials=2, n_jobs=1)  # one process is fine
    check_finished(study.trials, 2)


def test_a_study_pickles_for_spawned_workers_after_it_ran_trials(tmp_path: Path) -> None:
    """The handles of the trials a process runs (a weak dictionary) made a study that had
    asked a trial unpicklable, so ``n_jobs > 1`` under the spawn start method failed."""
    import pickle

    study = tc.Study(SPACE, storage=f"sqlite:///{tmp_path / 'p.db'}", sampler="random", seed=0)
    running = study.ask()
    copy = pickle.loads(pickle.dumps(study))
    assert (copy.name, copy.study_id) == (study.name, study.study_id)
    copy.tell(copy.ask(), 1.0)
    study.tell(running, 2.0)  # the original keeps its own handles
    assert [t.value for t in study.trials] == [2.0, 1.0]
    assert [t.value for t in copy.trials] == [2.0, 1.0]


def test_n_jobs_under_the_spawn_start_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mp, "get_all_start_methods", lambda: ["spawn"])
    study = tc.Study(SPACE, storage=f"sqlite:///{tmp_path / 's.db'}", sampler="random", seed=0)
    study.tell(study.ask(), 0.0)
    study.optimize(_spawned_objective, n_trials=4, n_jobs=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5


def _spawned_objective(trial: Trial) -> float:
    return trial.config["x"]


def test_an_interrupt_raised_in_a_worker_reaches_the_caller(tmp_path: Path) -> None:
    """KeyboardInterrupt from the objective in one worker (not a Ctrl-C, which the parent
    gets too) stopped the workers, and optimize returned as if the study were done."""
    study = tc.Study(SPACE, storage=f"sqlite:///{tmp_path / 'i.db'}", sampler="random", seed=0)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(_interrupted_at_trial_1, n_trials=20, n_jobs=2)
    trials = study.trials
    assert trials[1].state is TrialState.FAILED and trials[1].error == "interrupted"
    assert len(trials) < 20
    assert not study.get_trials(["running"])


def _interrupted_at_trial_1(trial: Trial) -> float:
    if trial.number == 1:
        raise KeyboardInterrupt
    time.sleep(0.05)
    return 0.0

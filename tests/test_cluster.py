"""Trials as tasks of a cluster: Study.optimize(executor=<dask Client> or "ray")."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError, WorkerError
from tunecraft.trial import FrozenTrial, Trial, TrialState

SPACE = {"x": tc.uniform(0.0, 1.0), "k": tc.integer(1, 5)}


@pytest.fixture(scope="module", params=["dask", "ray"])
def executor(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A two-worker cluster on this machine: a Dask client, or "ray" after ray.init."""
    if request.param == "dask":
        distributed = pytest.importorskip("distributed")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        with cluster, distributed.Client(cluster) as client:
            yield client
    else:
        ray = pytest.importorskip("ray")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=100 * 1024 * 1024,
        )
        try:
            yield "ray"
        finally:
            ray.shutdown()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cluster.db'}"


@pytest.mark.slow
def test_trials_run_on_the_workers_exactly_n_times(executor: Any, url: str) -> None:
    study = tc.Study(SPACE, storage=url, name="spread", sampler="random", seed=0)
    seen: list[tuple[int, int]] = []

    def objective(trial: Trial) -> float:
        trial.report(trial.config["x"], step=0)
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.05)
        return trial.config["x"] * 10 + trial.config["k"]

    def callback(s: tc.Study, record: FrozenTrial) -> None:
        seen.append((record.number, os.getpid()))

    study.optimize(objective, n_trials=12, n_jobs=-1, executor=executor, callbacks=[callback])
    trials = study.trials
    assert [t.number for t in trials] == list(range(12))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    assert all(t.value == t.config["x"] * 10 + t.config["k"] for t in trials)
    assert all(t.intermediate == {0: t.config["x"]} for t in trials)
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers, not this process
    assert sorted(n for n, _ in seen) == list(range(12))  # every record, once
    assert {pid for _, pid in seen} == {os.getpid()}  # callbacks run here
    assert len({(t.config["x"], t.config["k"]) for t in trials}) == 12


@pytest.mark.slow
def test_an_uncaught_error_fails_its_trial_and_stops_the_run(executor: Any, url: str) -> None:
    study = tc.Study(SPACE, storage=url, name="boom", sampler="random", seed=0)

    def objective(trial: Trial) -> float:
        if trial.number == 2:
            raise RuntimeError("bad config")
        time.sleep(0.05)
        return 1.0

    with pytest.raises(WorkerError, match=r"A (Dask|Ray) task stopped: RuntimeError: bad config"):
        study.optimize(objective, n_trials=50, n_jobs=2, executor=executor, catch=())
    time.sleep(0.5)  # a task already running when the error arrived finishes
    trials = study.trials
    assert trials[2].state is TrialState.FAILED and "bad config" in str(trials[2].error)
    assert len(trials) < 50
    assert not study.get_trials(["running"])


@pytest.mark.slow
def test_timeout_and_a_used_up_grid_end_the_run_cleanly(executor: Any, url: str) -> None:
    study = tc.Study(SPACE, storage=url, name="slow", sampler="random", seed=0)

    def slow(trial: Trial) -> float:
        time.sleep(0.3)
        return 0.0

    started = time.monotonic()
    study.optimize(slow, n_trials=100, n_jobs=2, timeout=1.0, executor=executor)
    assert time.monotonic() - started < 5
    assert 2 <= len(study.trials) < 20
    assert all(t.state is TrialState.COMPLETE for t in study.trials)

    grid = tc.Study({"k": tc.integer(1, 4)}, storage=url, name="grid", sampler="grid")
    grid.optimize(lambda t: float(t.config["k"]), n_trials=10, n_jobs=1, executor=executor)
    assert sorted(t.config["k"] for t in grid.trials) == [1, 2, 3, 4]
    assert all(t.state is TrialState.COMPLETE for t in grid.trials)


def test_an_objective_that_cannot_be_sent_is_a_one_line_error(executor: Any, url: str) -> None:
    import threading

    lock = threading.Lock()

    def objective(trial: Trial) -> float:
        with lock:
            return 0.0

    study = tc.Study(SPACE, storage=url, name="unsendable", sampler="random", seed=0)
    with pytest.raises(TypeError, match=r"sends the objective to the (Dask|Ray) workers, but"):
        study.optimize(objective, n_trials=2, executor=executor)
    assert study.trials == []


def test_bad_executors_are_clear_errors(executor: Any) -> None:
    with pytest.raises(InvalidParameterError, match="cannot share an in-memory storage"):
        tc.Study(SPACE).optimize(lambda t: 0.0, n_trials=1, executor=executor)
    with pytest.raises(TypeError, match=r"must be None, a dask\.distributed\.Client or 'ray'"):
        tc.Study(SPACE).optimize(lambda t: 0.0, n_trials=1, executor="dask")

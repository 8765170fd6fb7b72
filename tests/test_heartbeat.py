"""Heartbeats: a study shared by several hosts learns that one of its workers died."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError, TrialStateError
from tunecraft.storage import MemoryStorage, Storage
from tunecraft.testing.storages import unique_name
from tunecraft.trial import Trial, TrialState

SPACE = {"x": tc.uniform(0.0, 1.0)}


class NoBeats(MemoryStorage):
    """A storage that does not implement the optional heartbeat methods."""

    record_heartbeat = Storage.record_heartbeat
    heartbeat_ages = Storage.heartbeat_ages


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"heartbeat_interval": 0}, InvalidParameterError, "'heartbeat_interval'.*> 0"),
        ({"heartbeat_interval": "1"}, TypeError, "'heartbeat_interval'"),
        ({"grace_period": 5}, InvalidParameterError, "'grace_period' needs 'heartbeat_interval'"),
        (
            {"heartbeat_interval": 2, "grace_period": 2},
            InvalidParameterError,
            "more than heartbeat_interval",
        ),
        (
            {"heartbeat_interval": 1, "storage": NoBeats()},
            InvalidParameterError,
            "NoBeats does not record heartbeats",
        ),
    ],
)
def test_bad_heartbeat_settings_are_one_line_errors(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tc.Study(SPACE, **kwargs)  # type: ignore[arg-type]


def test_a_running_trial_keeps_beating_until_it_is_told() -> None:
    study = tc.Study(SPACE, sampler="random", seed=0, heartbeat_interval=0.05)
    trial = study.ask()
    assert study._heartbeat is not None and study._grace_period == 0.1
    time.sleep(1.0)
    ages = study.storage.heartbeat_ages(study.study_id)
    assert set(ages) == {trial.trial_id}
    assert ages[trial.trial_id] < 0.5  # beaten many times, not only at the start
    study.tell(trial, 1.0)
    assert study.storage.heartbeat_ages(study.study_id) == {}
    assert study._heartbeat.trial_ids == frozenset()
    deadline = time.monotonic() + 2
    while study._heartbeat._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert study._heartbeat._thread is None  # no thread left behind once nothing runs


def test_silent_trials_are_failed_by_any_process_of_the_study_but_not_by_their_own() -> None:
    storage = MemoryStorage()
    name = unique_name("beats")
    mine = tc.Study(SPACE, storage=storage, name=name, heartbeat_interval=0.05, grace_period=0.5)
    lost = mine.ask()
    no_beats = storage.create_trial(mine.study_id, worker="elsewhere:7")  # never beat
    assert mine._heartbeat is not None
    mine._heartbeat.interval = 100.0  # this process stops beating, as if it hung
    time.sleep(1.0)
    assert storage.heartbeat_ages(mine.study_id)[lost.trial_id] > 0.5

    mine.ask()  # this process knows its own trial is alive
    assert storage.get_trial(lost.trial_id).state is TrialState.RUNNING
    plain = tc.load_study(name, storage=storage)  # without heartbeats: no judgement
    plain.ask()
    assert storage.get_trial(lost.trial_id).state is TrialState.RUNNING

    other = tc.load_study(name, storage=storage, heartbeat_interval=0.05, grace_period=0.5)
    fresh = other.ask()
    record = storage.get_trial(lost.trial_id)
    assert record.state is TrialState.FAILED
    assert str(record.error).startswith("stale: no heartbeat for ")
    assert "(grace period 0.5 s)" in str(record.error)
    assert storage.get_trial(no_beats.trial_id).state is TrialState.RUNNING
    assert storage.get_trial(fresh.trial_id).state is TrialState.RUNNING


def test_a_paused_trial_resumed_later_is_not_judged_by_its_old_heartbeat() -> None:
    study = tc.Study(
        SPACE,
        scheduler="asha",
        sampler="random",
        seed=0,
        heartbeat_interval=0.05,
        grace_period=0.15,
    )
    t = study.ask()
    t.report(0.5, step=1)
    study.tell(t, state="paused")
    time.sleep(0.3)  # its last beat is now older than the grace period
    study.storage.resume_trial(t.trial_id, "elsewhere:1")  # resumed by a slow starter
    assert study.fail_stale_trials() == []
    assert study.storage.get_trial(t.trial_id).state is TrialState.RUNNING


def test_a_study_with_heartbeats_pickles_and_beats_in_worker_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    study = tc.Study(
        SPACE, storage=url, name="pool", sampler="random", seed=0, heartbeat_interval=0.05
    )
    copy = pickle.loads(pickle.dumps(study))
    assert copy._heartbeat is not None and copy._heartbeat.interval == 0.05

    def objective(trial: Trial) -> float:
        time.sleep(1.0)
        ages = trial.study.storage.heartbeat_ages(trial.study.study_id)
        return ages[trial.trial_id]  # the worker's own thread kept it young

    study.optimize(objective, n_trials=4, n_jobs=2)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert all(t.value is not None and t.value < 0.5 for t in trials)
    assert len({t.worker for t in trials}) == 2


_CHILD = textwrap.dedent(
    """
    import sys, time
    import tunecraft as tc
    import tunecraft.study

    # A worker on another machine: the pid check of this host cannot see it.
    tunecraft.study.current_worker = lambda: "another-host:4242"
    study = tc.load_study(sys.argv[2], storage=sys.argv[1], sampler="random",
                          heartbeat_interval=0.05, grace_period=1.0)
    trial = study.ask()
    print(trial.number, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_killed_worker_on_another_host_is_found_by_its_silence(shared_url: str) -> None:
    name = unique_name("killed")
    tc.Study(SPACE, storage=shared_url, name=name, sampler="random", seed=0)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, shared_url, name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        number = int(proc.stdout.readline())
        judge = tc.load_study(
            name, storage=shared_url, sampler="random", heartbeat_interval=0.05, grace_period=1.0
        )
        time.sleep(1.5)  # longer than the grace period: only its beats keep it alive
        judge.tell(judge.ask(), 1.0)
        assert judge.trials[number].state is TrialState.RUNNING
        assert judge.fail_stale_trials() == []
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1.3)
    assert judge.fail_stale_trials() == [number]
    lost = judge.trials[number]
    assert lost.state is TrialState.FAILED and lost.worker == "another-host:4242"
    assert str(lost.error).startswith("stale: no heartbeat")


def test_an_older_database_gets_the_heartbeat_table_when_opened(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    tc.Study(SPACE, storage=f"sqlite:///{path}", name="old").ask()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE tunecraft_heartbeats")
    study = tc.load_study("old", storage=f"sqlite:///{path}", heartbeat_interval=1)
    t = study.ask()
    assert set(study.storage.heartbeat_ages(study.study_id)) == {t.trial_id}


_SLOW_SAMPLER_CHILD = textwrap.dedent(
    """
    import sys, time
    import tunecraft as tc
    import tunecraft.study
    from tunecraft.samplers import RandomSampler

    tunecraft.study.current_worker = lambda: "another-host:4242"

    class Slow(RandomSampler):  # a model-based sampler that takes its time
        def suggest(self, space, history, number):
            print("suggesting", flush=True)  # the trial is running in the storage already
            time.sleep(600)

    study = tc.load_study(sys.argv[2], storage=sys.argv[1], sampler=Slow(),
                          heartbeat_interval=0.05, grace_period=1.0)
    study.ask()
    """
)


@pytest.mark.slow
def test_a_worker_killed_while_its_sampler_thinks_is_found_too(tmp_path: Path) -> None:
    """The first beat came only when the trial was handed out, after the sampler's
    suggestion: a worker that died before that left a trial that could never go stale."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    tc.Study(SPACE, storage=url, name="s", sampler="random", seed=0)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SAMPLER_CHILD, url, "s"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "suggesting"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    judge = tc.load_study(
        "s", storage=url, sampler="random", heartbeat_interval=0.05, grace_period=1.0
    )
    time.sleep(1.5)
    judge.tell(judge.ask(), 1.0)
    lost = judge.trials[0]
    assert lost.state is TrialState.FAILED
    assert str(lost.error).startswith("stale: no heartbeat")


def test_a_trial_that_beats_again_between_the_judges_read_and_write_is_left_alone() -> None:
    """The judge read the ages, then failed the trial in a second step: a trial paused and
    resumed elsewhere (with a fresh beat) in between was failed although alive."""
    storage = MemoryStorage()
    owner = tc.Study(
        SPACE,
        storage=storage,
        name="r",
        scheduler="asha",
        sampler="random",
        seed=0,
        heartbeat_interval=0.05,
        grace_period=0.3,
    )
    t = owner.ask()
    t.report(0.5, step=1)
    assert owner._heartbeat is not None
    owner._heartbeat.interval = 100.0  # the owner stalls
    time.sleep(0.5)
    judge = tc.load_study("r", storage=storage, heartbeat_interval=0.05, grace_period=0.3)
    read = storage.heartbeat_ages

    def ages_then_race(study_id: int) -> dict[int, float]:
        ages = read(study_id)
        owner.tell(t, state="paused")  # the owner wakes up and pauses its trial
        storage.resume_trial(t.trial_id, "host-b:1")  # another process promotes it ...
        storage.record_heartbeat([t.trial_id])  # ... and beats for it
        return ages

    storage.heartbeat_ages = ages_then_race  # type: ignore[method-assign]
    assert judge.fail_stale_trials() == []
    assert storage.get_trial(t.trial_id).state is TrialState.RUNNING


def test_an_owner_whose_trial_was_judged_lost_goes_on_with_the_next() -> None:
    """Its tell raised TrialStateError out of optimize, stopping the study (and, with
    n_jobs > 1, every worker) after one late beat."""
    storage = MemoryStorage()
    study = tc.Study(
        SPACE, storage=storage, name="o", sampler="random", seed=0, heartbeat_interval=0.05
    )

    def objective(trial: Trial) -> float:
        if trial.number == 0:  # what another host's judge does after a late beat
            storage.set_state(
                trial.trial_id, TrialState.FAILED, error="stale: no heartbeat for more than 1 s"
            )
        return 1.0

    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.FAILED] + [TrialState.COMPLETE] * 2
    assert study.trials[0].error == "stale: no heartbeat for more than 1 s"
    with pytest.raises(TrialStateError):  # any other finished trial still cannot be told
        study.tell(1, 2.0)

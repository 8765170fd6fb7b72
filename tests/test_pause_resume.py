"""Pause and resume through the Study: checkpoints, budgets, restarts, concurrent workers."""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.exceptions import TrialStateError
from tunecraft.schedulers import (
    ASHAScheduler,
    Decision,
    PBTScheduler,
    Resume,
    Scheduler,
    SuccessiveHalvingScheduler,
)
from tunecraft.storage import MemoryStorage
from tunecraft.trial import CHECKPOINT_ATTR, Trial, TrialState

SPACE = {"x": tc.uniform(0.0, 1.0)}
MAX_STEP = 4


def resumable(trial: Trial) -> float:
    """Trains a counter ``w`` for up to MAX_STEP steps, checkpointing it every step."""
    state = trial.load_checkpoint() if trial.resumed else None
    w = state["w"] if state else 0
    start = (trial.last_step or 0) + 1 if trial.resumed else 1
    assert w == start - 1, "a resumed trial must find the state it saved"
    loss = float("nan")
    for step in range(start, MAX_STEP + 1):
        w += 1
        loss = trial.config["x"] + 1.0 / w
        trial.save_checkpoint({"w": w})
        trial.report(loss, step=step)
        if trial.should_stop():
            break
    return loss


def _study(tmp_path: Path, scheduler: Scheduler, **kwargs: Any) -> tc.Study:
    kwargs.setdefault("sampler", tc.make_sampler("random", seed=0))
    return tc.Study(SPACE, scheduler=scheduler, artifact_dir=tmp_path / "artifacts", **kwargs)


def _sha() -> SuccessiveHalvingScheduler:
    return SuccessiveHalvingScheduler(min_resource=1, reduction_factor=2, bracket_size=4)


def test_paused_then_resumed_trial_keeps_its_intermediate_values(tmp_path: Path) -> None:
    study = _study(tmp_path, _sha())
    # 4 first runs pause at step 1; then 2 resumes to step 2; then the survivor to the end.
    study.optimize(resumable, n_trials=7)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 1 and states.count(TrialState.PRUNED) == 3
    best = study.best_trial
    assert best.intermediate == {s: pytest.approx(best.config["x"] + 1 / s) for s in (1, 2, 3, 4)}
    path = best.user_attrs[CHECKPOINT_ATTR]
    assert path == str(tmp_path / "artifacts" / f"trial-{best.number}" / "checkpoint.pkl")
    with open(path, "rb") as f:
        assert pickle.load(f) == {"w": 4}  # trained on from its checkpoint, not from scratch
    pruned_at = sorted(t.last_step for t in study.trials if t.state is TrialState.PRUNED)
    assert pruned_at == [1, 1, 2]
    leftovers = [p for p in (tmp_path / "artifacts").rglob("*") if p.name.startswith(".tmp")]
    assert leftovers == []


def test_resume_after_restart_from_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = _study(tmp_path, _sha(), storage=url, name="restart")
    first.optimize(resumable, n_trials=5)  # 4 paused at step 1, then the best to step 2
    assert [t.state for t in first.trials].count(TrialState.PAUSED) == 2
    first.storage.close()
    del first

    again = tc.load_study(
        "restart", storage=url, scheduler=_sha(), artifact_dir=tmp_path / "artifacts"
    )
    paused = again.get_trials([TrialState.PAUSED])
    assert sorted(len(t.intermediate) for t in paused) == [1, 2]  # kept across the restart
    again.optimize(resumable, n_trials=2)
    best = again.best_trial
    assert sorted(best.intermediate) == [1, 2, 3, 4]
    assert [t.state for t in again.trials].count(TrialState.PAUSED) == 0


def test_ask_resumes_with_budget_and_flags(tmp_path: Path) -> None:
    study = _study(
        tmp_path, ASHAScheduler(max_resource=4, reduction_factor=2, variant="promotion")
    )
    a = study.ask()
    assert (a.resumed, a.budget, a.last_step) == (False, None, None)
    a.save_checkpoint({"w": 1})
    a.report(0.5, step=1)
    assert a.decision == "pause" and a.should_stop()
    study.tell(a, 0.5)
    assert study.trials[0].state is TrialState.PAUSED
    b = study.ask()
    b.report(0.9, step=1)
    study.tell(b, 0.9)
    resumed = study.ask()  # trial 0 is now in the top half of rung 1
    assert (resumed.number, resumed.resumed, resumed.budget, resumed.last_step) == (0, True, 2, 1)
    assert resumed.load_checkpoint() == {"w": 1}
    assert resumed.intermediate == {1: 0.5}
    assert study.trials[0].state is TrialState.RUNNING
    fresh = study.ask()
    assert fresh.number == 2 and fresh.load_checkpoint("none") == "none"


def test_checkpoint_needs_a_running_trial(tmp_path: Path) -> None:
    study = _study(tmp_path, ASHAScheduler())
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(TrialStateError, match="save_checkpoint"):
        trial.save_checkpoint({"w": 0})


def test_default_artifact_dir_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    study = tc.Study(SPACE, name="my study/1")
    stamp = study._info.datetime_created.strftime("%Y%m%d-%H%M%S.%f")
    assert study.artifact_dir == str(tmp_path / "tunecraft-artifacts" / f"my_study_1-{stamp}")
    with pytest.raises(TypeError, match="'artifact_dir' parameter of Study"):
        tc.Study(SPACE, artifact_dir=3)  # type: ignore[arg-type]


def test_studies_of_one_name_in_two_storages_keep_their_checkpoints_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both folders were ./tunecraft-artifacts/exp, so one study's trial 0 overwrote the
    other's checkpoint, and a paused trial resumed from the wrong weights."""
    monkeypatch.chdir(tmp_path)
    a = tc.Study(SPACE, name="exp", storage=f"sqlite:///{tmp_path / 'a.db'}")
    a.ask().save_checkpoint({"w": "a"})
    b = tc.Study(SPACE, name="exp", storage=f"sqlite:///{tmp_path / 'b.db'}")
    b.ask().save_checkpoint({"w": "b"})
    assert a.artifact_dir != b.artifact_dir
    # a process that opens the study by name finds the folder of the one that created it
    again = tc.Study(name="exp", storage=f"sqlite:///{tmp_path / 'a.db'}")
    assert again.artifact_dir == a.artifact_dir
    with open(again.trials[0].user_attrs[CHECKPOINT_ATTR], "rb") as f:
        assert pickle.load(f) == {"w": "a"}


def test_pbt_copies_only_a_snapshot_the_study_recorded(tmp_path: Path) -> None:
    """A file left at the donor's snapshot path by an older run (a study deleted and created
    again) is not the donor's state at that step."""
    study = tc.Study(SPACE, artifact_dir=tmp_path)
    donor = study.ask()
    donor.save_checkpoint({"w": 2})
    study._snapshot(donor, 2)  # what the study keeps at a step the scheduler names
    with open(study._checkpoint_path(donor.number, 3), "wb") as f:
        pickle.dump({"w": "left over"}, f)
    study.tell(donor, 1.0)
    by_number = {0: study.trials[0]}
    late = study.ask()
    stale = study._copy_checkpoint(late._record, 0, by_number, step=3)
    assert CHECKPOINT_ATTR not in stale.user_attrs
    kept = study._copy_checkpoint(late._record, 0, by_number, step=2)
    with open(kept.user_attrs[CHECKPOINT_ATTR], "rb") as f:
        assert pickle.load(f) == {"w": 2}


def test_pbt_exploit_copies_the_donor_checkpoint_and_config(tmp_path: Path) -> None:
    pbt = PBTScheduler(perturbation_interval=2, resample_probability=0.0, seed=0)
    study = _study(tmp_path, pbt)
    for x in (0.1, 0.2, 0.3, 0.9):
        study.enqueue({"x": x})
    trials = study.ask(4)
    for t in trials:
        t.save_checkpoint({"owner": t.number})
        t.report(t.config["x"], step=1)
    decisions = []
    for t in trials:
        t.report(t.config["x"], step=2)
        decisions.append(t.decision)
    assert decisions == ["continue", "continue", "continue", "pause"]
    for t in trials:
        study.tell(t, t.config["x"])
    assert [t.state for t in study.trials].count(TrialState.PAUSED) == 1
    resumed = study.ask()
    assert (resumed.number, resumed.resumed, resumed.budget) == (3, True, 4)
    assert resumed.load_checkpoint() == {"owner": 0}  # the donor's weights
    assert resumed.config["x"] in (pytest.approx(0.08), pytest.approx(0.12))
    assert resumed.user_attrs["pbt_parent"] == 0 and resumed.user_attrs["pbt_step"] == 2
    assert resumed.intermediate == {1: 0.9, 2: 0.9}
    assert study.trials[3].config == resumed.config  # recorded in the storage


class _Scripted(Scheduler):
    """Pauses everything at step 1; resumes whatever is paused (to race workers on it)."""

    def on_report(self, trial: Any, history: Any) -> Decision:
        return Decision.PAUSE if trial.last_step == 1 else Decision.CONTINUE

    def on_ask(self, space: Any, history: Any) -> Resume | None:
        paused = history.with_state(TrialState.PAUSED)
        return Resume(paused[0].number, budget=MAX_STEP) if paused else None


@pytest.mark.parametrize("scheduler", ["asha-promotion", "scripted"])
def test_concurrent_workers_never_resume_a_trial_twice(tmp_path: Path, scheduler: str) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    make = (
        (lambda: ASHAScheduler(max_resource=MAX_STEP, reduction_factor=2, variant="promotion"))
        if scheduler == "asha-promotion"
        else _Scripted
    )
    tc.Study(SPACE, storage=url, name="shared")
    lock = threading.Lock()
    in_flight: set[int] = set()
    starts: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def objective(trial: Trial) -> float:
        with lock:
            assert trial.number not in in_flight, f"trial {trial.number} runs twice at once"
            in_flight.add(trial.number)
            starts.append((trial.number, (trial.last_step or 0) + 1))
        try:
            return resumable(trial)
        finally:
            with lock:
                in_flight.discard(trial.number)

    def worker(seed: int) -> None:
        try:
            study = tc.load_study(
                "shared",
                storage=url,
                sampler=tc.make_sampler("random", seed=seed),
                scheduler=make(),
            )
            study._artifact_dir = str(tmp_path / "artifacts")
            study.optimize(objective, n_trials=12, catch=())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(starts) == len(set(starts)) == 36  # no (trial, start step) run twice
    study = tc.load_study("shared", storage=url)
    for t in study.trials:
        assert sorted(t.intermediate) == list(range(1, (t.last_step or 0) + 1))  # no gap
        assert t.state is not TrialState.FAILED, t.error
    resumed = {n for n, start in starts if start > 1}
    if scheduler == "scripted":  # every trial paused at 1 and was resumed exactly once
        # (ASHA usually resumes 2-6 trials here, but whether it resumes any depends on how the
        # threads interleave: CI saw 0 once, so only the scripted race must resume.)
        assert resumed, "some trials were resumed"
        done = [t for t in study.trials if t.state is TrialState.COMPLETE]
        assert all(sorted(t.intermediate) == [1, 2, 3, 4] for t in done)


def test_memory_storage_default_resume_keeps_worker_when_not_overridden() -> None:
    storage = MemoryStorage()
    sid = storage.create_study("s", "minimize", {}).study_id
    t = storage.create_trial(sid, worker="a:1")
    storage.set_state(t.trial_id, TrialState.PAUSED)
    assert storage.resume_trial(t.trial_id, "b:2").worker == "b:2"
    assert os.path.basename(__file__).startswith("test_pause_resume")


@pytest.mark.slow
def test_worker_processes_share_promotions_through_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'procs.db'}"
    study = _study(
        tmp_path,
        ASHAScheduler(max_resource=MAX_STEP, reduction_factor=2, variant="promotion"),
        storage=url,
        name="procs",
    )
    study.optimize(resumable, n_trials=24, n_jobs=2)
    trials = study.trials
    assert all(t.state is not TrialState.FAILED for t in trials), [t.error for t in trials]
    for t in trials:
        assert sorted(t.intermediate) == list(range(1, (t.last_step or 0) + 1))
    assert any(t.state is TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs.get(CHECKPOINT_ATTR) for t in trials}) == len(trials)


def test_save_checkpoint_of_an_unpicklable_state_is_a_type_error(tmp_path: Path) -> None:
    study = tc.Study({"x": tc.uniform(0, 1)}, artifact_dir=tmp_path)
    trial = study.ask()
    with pytest.raises(TypeError, match=r"'state' parameter of Trial\.save_checkpoint"):
        trial.save_checkpoint({"fn": lambda: 1})
    assert trial.load_checkpoint(default="none") == "none"  # nothing half-written


@pytest.mark.parametrize(
    "scheduler",
    [
        lambda: tc.schedulers.SuccessiveHalvingScheduler(reduction_factor=3, bracket_size=9),
        lambda: ASHAScheduler(max_resource=MAX_STEP, variant="promotion"),
        lambda: tc.schedulers.AutoScheduler(max_resource=MAX_STEP, variant="promotion"),
    ],
)
def test_a_used_up_grid_resumes_the_trials_a_scheduler_would_wait_on(
    tmp_path: Path, scheduler: Callable[[], Scheduler]
) -> None:
    # Two grid points: a bracket of 9 never fills and a rung of two promotes nobody, so every
    # trial stayed paused and the study ended with nothing complete.
    study = tc.Study(
        {"x": tc.choice([0.2, 0.7])},
        scheduler=scheduler(),
        sampler=tc.make_sampler("grid"),
        artifact_dir=tmp_path / "artifacts",
    )
    study.optimize(resumable, n_trials=50)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.best_trial.last_step == MAX_STEP

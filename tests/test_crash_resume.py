"""A study survives its process: kill -9 and Ctrl-C leave it intact and resumable."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tunecraft as tc
from tunecraft.trial import Trial, TrialState

# The study a child process runs. Trials before HOLD are quick; trial HOLD (and later ones)
# announce themselves with a marker file and then sleep, so a signal finds them running.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import tunecraft as tc

    # Ctrl-C must raise KeyboardInterrupt even if the test runner's process ignores SIGINT
    # (a child inherits an ignored signal, and Python then installs no handler).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    url, name, folder = sys.argv[1:4]
    hold, n_jobs, hold_seconds, n_trials = map(float, sys.argv[4:8])

    def objective(trial):
        trial.report(trial.config["x"], step=0)
        if hold < 0:
            return trial.config["x"] * 2  # as fast as it goes: kill -9 lands inside writes
        if trial.number >= hold:
            open(os.path.join(folder, f"running-{trial.number}-{os.getpid()}"), "w").close()
            time.sleep(hold_seconds)
        else:
            time.sleep(0.02)
        return trial.config["x"] * 2

    study = tc.Study({"x": tc.uniform(0, 1)}, storage=url, name=name, sampler="random",
                     load_if_exists=True)
    study.optimize(objective, n_trials=int(n_trials), n_jobs=int(n_jobs))
    """
)


def objective(trial: Trial) -> float:
    trial.report(trial.config["x"], step=0)
    return trial.config["x"] * 2


_CHILDREN: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    """Kill what a failed test left running: a stray child would spin through trials forever."""
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start_child(
    tmp_path: Path, hold: int, n_jobs: int = 1, hold_seconds: float = 60, n_trials: int = 10**5
) -> tuple[subprocess.Popen[str], str]:
    """Run CHILD: trials from number ``hold`` on sleep ``hold_seconds`` (no sleep if hold < 0)."""
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    args = [str(v) for v in (hold, n_jobs, hold_seconds, n_trials)]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, "crashy", str(tmp_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal job would have
    )
    _CHILDREN.append(proc)
    return proc, url


def wait_for_markers(proc: subprocess.Popen[str], folder: Path, n: int) -> list[Path]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        markers = sorted(folder.glob("running-*"))
        if len(markers) >= n:
            return markers
        if proc.poll() is not None:
            pytest.fail(f"the child ended early:\n{proc.communicate()[0]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no running trial seen in time:\n{proc.communicate()[0]}")


def check_intact(study: tc.Study, done_before: list[tc.FrozenTrial] | None = None) -> None:
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials))), "numbers not dense"
    for t in trials:
        if t.state is TrialState.COMPLETE:
            assert t.value == t.config["x"] * 2
            assert t.intermediate == {0: t.config["x"]}
    if done_before is not None:
        by_number = {t.number: t for t in trials}
        for t in done_before:
            assert by_number[t.number] == t


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie nobody reaped (an orphan in a container) is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] == "Z"
    except (OSError, IndexError):
        return True


@pytest.mark.slow
def test_kill_9_mid_trial_then_resume(tmp_path: Path) -> None:
    proc, url = start_child(tmp_path, hold=4)
    wait_for_markers(proc, tmp_path, 1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    study = tc.load_study("crashy", storage=url, sampler="random")
    trials = study.trials
    assert [(t.number, t.state) for t in trials] == [
        *[(i, TrialState.COMPLETE) for i in range(4)],
        (4, TrialState.RUNNING),
    ]
    check_intact(study)
    assert trials[4].worker is not None and trials[4].worker.endswith(f":{proc.pid}")
    assert trials[4].intermediate == {0: trials[4].config["x"]}  # reported before the kill
    complete = study.get_trials(["complete"])

    assert study.fail_stale_trials() == [4]
    stale = study.trials[4]
    assert stale.state is TrialState.FAILED and "stale" in str(stale.error)
    assert stale.datetime_complete is not None
    assert study.fail_stale_trials() == []

    study.optimize(objective, n_trials=3)
    check_intact(study, complete)
    assert [t.number for t in study.trials] == list(range(8))
    assert [t.state for t in study.trials[5:]] == [TrialState.COMPLETE] * 3
    with sqlite3.connect(tmp_path / "crash.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.slow
def test_kill_9_during_fast_writes_keeps_the_database_consistent(tmp_path: Path) -> None:
    proc, url = start_child(tmp_path, hold=-1)
    deadline = time.monotonic() + 15
    db = tmp_path / "crash.db"
    while time.monotonic() < deadline:  # let it run some hundred trials, then kill it
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    n = conn.execute("SELECT COUNT(*) FROM tunecraft_trials").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 200:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    study = tc.load_study("crashy", storage=url, sampler="random")
    check_intact(study)
    trials = study.trials
    assert len(trials) >= 200
    assert len(study.get_trials(["running"])) <= 1
    assert all(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in trials)
    study.fail_stale_trials()
    n = len(trials)
    study.optimize(objective, n_trials=5)
    check_intact(study)
    assert len(study.trials) == n + 5
    assert not study.get_trials(["running"])


@pytest.mark.slow
def test_ctrl_c_fails_the_running_trial_and_the_study_resumes(tmp_path: Path) -> None:
    proc, url = start_child(tmp_path, hold=3)
    wait_for_markers(proc, tmp_path, 1)
    os.kill(proc.pid, signal.SIGINT)
    output = proc.communicate(timeout=15)[0]
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in output

    study = tc.load_study("crashy", storage=url, sampler="random")
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAILED]
    assert trials[3].error == "interrupted"
    check_intact(study)
    assert study.fail_stale_trials() == []
    study.optimize(objective, n_trials=2)
    assert [t.number for t in study.trials] == list(range(6))
    assert [t.state for t in study.trials[4:]] == [TrialState.COMPLETE] * 2


@pytest.mark.slow
def test_ctrl_c_with_worker_processes(tmp_path: Path) -> None:
    proc, url = start_child(tmp_path, hold=4, n_jobs=2)
    wait_for_markers(proc, tmp_path, 2)  # both workers hold a trial
    os.killpg(proc.pid, signal.SIGINT)  # the terminal sends Ctrl-C to the whole group
    output = proc.communicate(timeout=20)[0]
    assert proc.returncode != 0, output
    assert "KeyboardInterrupt" in output

    study = tc.load_study("crashy", storage=url, sampler="random")
    check_intact(study)
    trials = study.trials
    assert not study.get_trials(["running"]), [(t.number, t.state) for t in trials]
    interrupted = [t for t in trials if t.state is TrialState.FAILED]
    assert len(interrupted) == 2 and all(t.error == "interrupted" for t in interrupted)
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 4
    study.optimize(objective, n_trials=4, n_jobs=2)
    check_intact(study)
    assert len(study.trials) == len(trials) + 4


@pytest.mark.slow
def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    proc, url = start_child(tmp_path, hold=4, n_jobs=2, hold_seconds=1.5)
    markers = wait_for_markers(proc, tmp_path, 2)
    worker_pids = {int(m.name.rsplit("-", 1)[1]) for m in markers}
    os.kill(proc.pid, signal.SIGKILL)  # the parent only: its workers are orphaned
    proc.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while not all(pid_gone(p) for p in worker_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [p for p in worker_pids if not pid_gone(p)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "orphaned workers kept running the study"

    study = tc.load_study("crashy", storage=url, sampler="random")
    check_intact(study)
    trials = study.trials
    # The workers finished the trials they held, then stopped: no new trial was started.
    assert len(trials) == 6, [(t.number, t.state) for t in trials]
    assert all(t.state is TrialState.COMPLETE for t in trials)

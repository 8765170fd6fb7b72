"""A conformance suite every storage must pass, reusable by projects that write their own.

:class:`StorageConformance` holds the contract of :class:`~tunecraft.storage.Storage` as pytest
tests; a subclass provides a ``storage`` fixture and inherits them all.
:class:`ConcurrentStorageConformance` adds the multi-process checks (unique dense numbers, no
lost tell, no trial claimed twice) for storages another process can open from their ``url``.
Tests use a fresh study name (a uuid) each, so they can share one database.

Example (in a test module of your project)::

    import pytest
    from tunecraft.testing.storages import StorageConformance

    class TestMyStorage(StorageConformance):
        @pytest.fixture
        def storage(self, tmp_path):
            s = MyStorage(tmp_path / "db")
            yield s
            s.close()

:func:`postgres_url` finds the PostgreSQL server of the test run: it skips the test when none
answers, except under CI (the ``CI`` environment variable set), where it fails.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tunecraft.exceptions import (
    DuplicatedStudyError,
    MissingDependencyError,
    StorageError,
    StudyNotFoundError,
    TrialStateError,
)
from tunecraft.storage import Storage, StudyInfo, get_storage
from tunecraft.trial import FrozenTrial, TrialState

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "ConcurrentStorageConformance",
    "StorageConformance",
    "postgres_url",
    "unique_name",
]

#: The server the test suite expects: trust authentication, database ``test``.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)
_TRICKY_FLOATS = (
    0.1 + 0.2,
    1e-300,
    -1e300,
    1 / 3,
    2.5e-310,  # subnormal
    123456789.12345679,
    -0.5,
    0.0,
)
_JSON_CONFIG: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "text": "adam",
    "empty": "",
    "unicode": "ß-λ-✓",
    "int": 3,
    "zero": 0,
    "big": 2**53 + 1,
    "negative": -7,
    "float": 3.0,
    "tricky": 0.1 + 0.2,
    "tiny": 1e-300,
}

_postgres_checked: dict[str, str | None] = {}


def unique_name(prefix: str = "conformance") -> str:
    """A study name no other test (or test run) uses."""
    return f"{prefix}-{uuid.uuid4().hex}"


def postgres_url() -> str:
    """The PostgreSQL URL to test against, or skip (fail under CI) when it cannot be reached.

    The URL is ``$TUNECRAFT_TEST_POSTGRES_URL`` if set, else :data:`DEFAULT_POSTGRES_URL`.
    """
    url = os.environ.get("TUNECRAFT_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    if url not in _postgres_checked:
        try:
            storage = get_storage(url)
            storage.close()
            _postgres_checked[url] = None
        except (StorageError, MissingDependencyError) as exc:
            _postgres_checked[url] = str(exc)
    problem = _postgres_checked[url]
    if problem is not None:
        message = f"PostgreSQL at {url} cannot be used: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    return url


def _assert_utc(t: datetime | None, what: str) -> None:
    assert t is not None, f"{what} is missing"
    assert t.tzinfo is not None, f"{what} is naive: {t!r}"
    assert t.utcoffset() == timedelta(0), f"{what} is not UTC: {t!r}"
    now = datetime.now(timezone.utc)
    assert now - timedelta(hours=1) < t <= now + timedelta(seconds=5), f"{what} is off: {t!r}"


def _same_json(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


class StorageConformance:
    """The contract of a :class:`~tunecraft.storage.Storage`, as pytest tests.

    Subclasses provide a ``storage`` fixture that yields a storage (new or shared: every test
    works in studies of its own).
    """

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def new_study(storage: Storage, space: dict[str, Any] | None = None) -> StudyInfo:
        return storage.create_study(unique_name(), "minimize", space or {"x": "uniform(0, 1)"})

    @staticmethod
    def finished_trial(storage: Storage, study_id: int, state: TrialState) -> FrozenTrial:
        t = storage.create_trial(study_id, config={"x": 0.5}, worker="host:1")
        storage.report(t.trial_id, 0, 1.5)
        storage.set_user_attr(t.trial_id, "k", [1, 2])
        value = 0.25 if state is TrialState.COMPLETE else None
        error = "boom" if state is TrialState.FAILED else None
        return storage.set_state(t.trial_id, state, value=value, error=error)

    # -- studies ---------------------------------------------------------------------------------
    def test_create_and_get_study(self, storage: Storage) -> None:
        name = unique_name()
        space = {"lr": "log-uniform(1e-05, 0.01)", "layers": "int(1, 8)", "n": {"a": [1, None]}}
        info = storage.create_study(name, "maximize", space)
        assert (info.name, info.direction, info.space, info.n_trials) == (
            name,
            "maximize",
            space,
            0,
        )
        _assert_utc(info.datetime_created, "datetime_created")
        got = storage.get_study(name)
        assert (got.study_id, got.name, got.direction) == (info.study_id, name, "maximize")
        assert _same_json(got.space, space)
        assert got.datetime_created == info.datetime_created

    def test_duplicate_study_name_raises(self, storage: Storage) -> None:
        info = self.new_study(storage)
        with pytest.raises(DuplicatedStudyError):
            storage.create_study(info.name, "minimize", {})
        assert isinstance(DuplicatedStudyError("x"), ValueError)
        assert storage.get_study(info.name).study_id == info.study_id

    def test_missing_study_raises(self, storage: Storage) -> None:
        with pytest.raises(StudyNotFoundError) as excinfo:
            storage.get_study(unique_name("missing"))
        assert "\n" not in str(excinfo.value)
        info = self.new_study(storage)
        storage.delete_study(info.study_id)
        with pytest.raises(StudyNotFoundError):
            storage.delete_study(info.study_id)
        with pytest.raises(StudyNotFoundError):
            storage.get_trials(info.study_id)
        with pytest.raises(StudyNotFoundError):
            storage.create_trial(info.study_id)

    def test_list_studies_oldest_first_with_counts(self, storage: Storage) -> None:
        a, b = self.new_study(storage), self.new_study(storage)
        for _ in range(3):
            storage.create_trial(a.study_id)
        storage.create_trial(b.study_id, state=TrialState.WAITING)
        listed = [s for s in storage.list_studies() if s.study_id in (a.study_id, b.study_id)]
        assert [(s.name, s.n_trials) for s in listed] == [(a.name, 3), (b.name, 1)]
        assert storage.get_study(a.name).n_trials == 3

    def test_delete_study_removes_its_trials_only(self, storage: Storage) -> None:
        a, b = self.new_study(storage), self.new_study(storage)
        ta = storage.create_trial(a.study_id)
        storage.report(ta.trial_id, 0, 1.0)
        tb = storage.create_trial(b.study_id)
        storage.report(tb.trial_id, 0, 2.0)
        storage.delete_study(a.study_id)
        with pytest.raises(StudyNotFoundError):
            storage.get_study(a.name)
        assert a.study_id not in {s.study_id for s in storage.list_studies()}
        assert storage.get_trials(b.study_id)[0].intermediate == {0: 2.0}
        again = storage.create_study(a.name, "minimize", {})  # the name is free again
        assert storage.get_trials(again.study_id) == []

    # -- trials ----------------------------------------------------------------------------------
    def test_trial_numbers_are_dense_per_study(self, storage: Storage) -> None:
        a, b = self.new_study(storage), self.new_study(storage)
        made: dict[int, list[FrozenTrial]] = {a.study_id: [], b.study_id: []}
        for i in range(10):
            sid = a.study_id if i % 3 else b.study_id
            state = TrialState.WAITING if i % 4 == 0 else TrialState.RUNNING
            made[sid].append(storage.create_trial(sid, state=state))
        for sid, trials in made.items():
            assert [t.number for t in trials] == list(range(len(trials)))
            assert [t.number for t in storage.get_trials(sid)] == list(range(len(trials)))
        ids = [t.trial_id for ts in made.values() for t in ts]
        assert len(set(ids)) == len(ids)

    def test_create_trial_records(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        running = storage.create_trial(sid, config={"x": 0.5}, worker="host:7")
        assert running.state is TrialState.RUNNING
        assert (running.config, running.worker, running.value) == ({"x": 0.5}, "host:7", None)
        _assert_utc(running.datetime_start, "datetime_start")
        assert running.datetime_complete is None
        assert storage.get_trial(running.trial_id) == running
        waiting = storage.create_trial(sid, state=TrialState.WAITING, config={"x": 0.1})
        assert waiting.state is TrialState.WAITING
        assert (waiting.datetime_start, waiting.worker) == (None, None)
        assert storage.get_trial(waiting.trial_id) == waiting
        for state in (TrialState.COMPLETE, TrialState.PAUSED):
            with pytest.raises(TrialStateError):
                storage.create_trial(sid, state=state)
        with pytest.raises(TrialStateError):
            storage.get_trial(10**9)

    def test_claim_waiting_trials_in_order_never_twice(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        assert storage.claim_waiting_trial(sid, "w:1") is None
        queued = [
            storage.create_trial(sid, state=TrialState.WAITING, config={"x": i / 10})
            for i in range(3)
        ]
        storage.create_trial(sid)  # a running trial is never claimed
        claimed = [storage.claim_waiting_trial(sid, f"w:{i}") for i in range(3)]
        assert [c.number if c else None for c in claimed] == [t.number for t in queued]
        for c, q, i in zip(claimed, queued, range(3), strict=True):
            assert c is not None
            assert (c.state, c.config, c.worker, c.trial_id) == (
                TrialState.RUNNING,
                q.config,
                f"w:{i}",
                q.trial_id,
            )
            _assert_utc(c.datetime_start, "datetime_start of a claimed trial")
            assert storage.get_trial(c.trial_id) == c
        assert storage.claim_waiting_trial(sid, "w:9") is None
        other = self.new_study(storage).study_id
        storage.create_trial(other, state=TrialState.WAITING)
        assert storage.claim_waiting_trial(sid, "w:9") is None  # another study's queue

    def test_set_trial_config(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        t = storage.create_trial(sid)
        storage.set_trial_config(t.trial_id, {"x": 0.75, "opt": "sgd"})
        assert storage.get_trial(t.trial_id).config == {"x": 0.75, "opt": "sgd"}
        with pytest.raises(ValueError):
            storage.set_trial_config(t.trial_id, {"x": object()})

    def test_report_and_overwrite_intermediate(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        t = storage.create_trial(sid)
        storage.report(t.trial_id, 0, 1.0)
        storage.report(t.trial_id, 5, 0.5)
        storage.report(t.trial_id, 5, 0.25)  # overwrite
        storage.report(t.trial_id, 2, 0.75)
        got = storage.get_trial(t.trial_id).intermediate
        assert got == {0: 1.0, 2: 0.75, 5: 0.25}
        assert all(type(k) is int and type(v) is float for k, v in got.items())
        assert storage.get_trials(sid)[0].intermediate == got
        with pytest.raises(ValueError):
            storage.report(t.trial_id, 6, math.nan)
        waiting = storage.create_trial(sid, state=TrialState.WAITING)
        with pytest.raises(TrialStateError):
            storage.report(waiting.trial_id, 0, 1.0)
        storage.set_state(t.trial_id, TrialState.PAUSED)
        storage.report(t.trial_id, 6, 0.125)  # a paused trial keeps its curve growing
        assert storage.get_trial(t.trial_id).intermediate[6] == 0.125

    def test_user_attrs(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        t = storage.create_trial(sid)
        storage.set_user_attr(t.trial_id, "epochs", 3)
        storage.set_user_attr(t.trial_id, "curve", [0.5, None, {"a": True}])
        storage.set_user_attr(t.trial_id, "epochs", 4)
        got = storage.get_trial(t.trial_id).user_attrs
        assert _same_json(got, {"epochs": 4, "curve": [0.5, None, {"a": True}]})
        with pytest.raises(ValueError):
            storage.set_user_attr(t.trial_id, "bad", object())
        assert storage.get_trial(t.trial_id).user_attrs == got
        waiting = storage.create_trial(sid, state=TrialState.WAITING)
        storage.set_user_attr(waiting.trial_id, "note", "queued by hand")
        assert storage.get_trial(waiting.trial_id).user_attrs == {"note": "queued by hand"}

    def test_user_attrs_and_reports_in_batches(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        t = storage.create_trial(sid)
        storage.set_user_attr(t.trial_id, "kept", 1)
        storage.set_user_attrs(t.trial_id, {"a": [1, 2], "kept": 2, "b": {"c": None}})
        storage.set_user_attrs(t.trial_id, {})
        assert _same_json(
            storage.get_trial(t.trial_id).user_attrs, {"kept": 2, "a": [1, 2], "b": {"c": None}}
        )
        with pytest.raises(ValueError, match="'bad'"):  # all or nothing
            storage.set_user_attrs(t.trial_id, {"new": 3, "bad": object()})
        assert "new" not in storage.get_trial(t.trial_id).user_attrs
        storage.report(t.trial_id, 1, 1.0)
        storage.report_many(t.trial_id, {1: 0.5, 3: 0.25, 2: 0.75})
        storage.report_many(t.trial_id, {})
        assert storage.get_trial(t.trial_id).intermediate == {1: 0.5, 2: 0.75, 3: 0.25}
        with pytest.raises(ValueError):
            storage.report_many(t.trial_id, {4: 0.1, 5: math.inf})
        assert 4 not in storage.get_trial(t.trial_id).intermediate
        storage.set_state(t.trial_id, TrialState.COMPLETE, value=0.25)
        with pytest.raises(TrialStateError):
            storage.set_user_attrs(t.trial_id, {"late": 1})
        with pytest.raises(TrialStateError):
            storage.report_many(t.trial_id, {9: 1.0})

    # -- heartbeats (optional) -------------------------------------------------------------------
    def test_heartbeats_age_and_only_running_trials_have_one(self, storage: Storage) -> None:
        if type(storage).record_heartbeat is Storage.record_heartbeat:
            pytest.skip(f"{type(storage).__name__} does not record heartbeats (optional)")
        sid = self.new_study(storage).study_id
        other = self.new_study(storage).study_id
        a, b = storage.create_trial(sid), storage.create_trial(sid)
        waiting = storage.create_trial(sid, state=TrialState.WAITING)
        elsewhere = storage.create_trial(other)
        assert storage.heartbeat_ages(sid) == {}  # no beat yet: nobody can call them stale
        gone = storage.record_heartbeat([a.trial_id, b.trial_id, waiting.trial_id])
        assert gone == [waiting.trial_id]
        storage.record_heartbeat([elsewhere.trial_id])
        time.sleep(0.25)
        storage.record_heartbeat([b.trial_id])
        ages = storage.heartbeat_ages(sid)
        assert set(ages) == {a.trial_id, b.trial_id}  # this study's running trials only
        assert 0.2 <= ages[a.trial_id] < 5  # seconds, by one clock
        assert ages[b.trial_id] < ages[a.trial_id] - 0.15
        assert storage.record_heartbeat([]) == []

        storage.set_state(b.trial_id, TrialState.PAUSED, value=1.0)
        assert set(storage.heartbeat_ages(sid)) == {a.trial_id}
        assert storage.record_heartbeat([a.trial_id, b.trial_id]) == [b.trial_id]
        storage.resume_trial(b.trial_id, "host:2")  # its beat from before the pause is gone
        assert set(storage.heartbeat_ages(sid)) == {a.trial_id}
        storage.record_heartbeat([b.trial_id])
        storage.set_state(b.trial_id, TrialState.PAUSED, value=1.0)
        storage.set_state(b.trial_id, TrialState.RUNNING)  # the same through set_state
        assert set(storage.heartbeat_ages(sid)) == {a.trial_id}
        storage.set_state(a.trial_id, TrialState.COMPLETE, value=0.5)
        assert storage.heartbeat_ages(sid) == {}
        assert storage.record_heartbeat([a.trial_id, 10**9]) == [a.trial_id, 10**9]

        storage.delete_study(other)
        with pytest.raises(StudyNotFoundError):
            storage.heartbeat_ages(other)

    def test_fail_if_silent_checks_and_fails_at_once(self, storage: Storage) -> None:
        if type(storage).fail_if_silent is Storage.fail_if_silent:
            pytest.skip(f"{type(storage).__name__} does not record heartbeats (optional)")
        sid = self.new_study(storage).study_id
        silent, beating, never = (storage.create_trial(sid) for _ in range(3))
        storage.record_heartbeat([silent.trial_id, beating.trial_id])
        time.sleep(0.3)
        storage.record_heartbeat([beating.trial_id])
        assert storage.fail_if_silent(beating.trial_id, 0.2, "stale: x") is None
        assert storage.fail_if_silent(never.trial_id, 0.2, "stale: x") is None  # no beat
        assert storage.fail_if_silent(silent.trial_id, 5.0, "stale: x") is None  # in grace
        failed = storage.fail_if_silent(silent.trial_id, 0.2, "stale: no heartbeat")
        assert failed is not None
        assert (failed.state, failed.error) == (TrialState.FAILED, "stale: no heartbeat")
        assert failed.datetime_complete is not None
        assert storage.get_trial(silent.trial_id) == failed
        assert storage.fail_if_silent(silent.trial_id, 0.2, "again") is None  # finished
        storage.set_state(beating.trial_id, TrialState.PAUSED, value=1.0)
        time.sleep(0.3)
        assert storage.fail_if_silent(beating.trial_id, 0.2, "stale: x") is None  # paused

    # -- states ----------------------------------------------------------------------------------
    def test_state_transitions(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        t = storage.create_trial(sid)
        storage.report(t.trial_id, 1, 2.0)
        done = storage.set_state(t.trial_id, TrialState.COMPLETE, value=0.5)
        assert (done.state, done.value, done.intermediate) == (TrialState.COMPLETE, 0.5, {1: 2.0})
        _assert_utc(done.datetime_complete, "datetime_complete")
        assert done.datetime_start is not None and done.datetime_complete is not None
        assert done.datetime_start <= done.datetime_complete
        assert done.duration is not None and done.duration >= 0
        assert storage.get_trial(t.trial_id) == done

        w = storage.create_trial(sid, state=TrialState.WAITING)
        with pytest.raises(TrialStateError):
            storage.set_state(w.trial_id, TrialState.COMPLETE, value=1.0)  # never ran
        failed = storage.set_state(w.trial_id, TrialState.FAILED, error="cancelled")
        assert (failed.state, failed.error) == (TrialState.FAILED, "cancelled")
        _assert_utc(failed.datetime_complete, "datetime_complete of a cancelled trial")

        p = storage.create_trial(sid)
        paused = storage.set_state(p.trial_id, TrialState.PAUSED, value=0.9)
        assert (paused.state, paused.datetime_complete) == (TrialState.PAUSED, None)
        with pytest.raises(TrialStateError):  # expected states are checked atomically
            storage.set_state(p.trial_id, TrialState.FAILED, expected={TrialState.RUNNING})
        resumed = storage.set_state(p.trial_id, TrialState.RUNNING)
        assert resumed.state is TrialState.RUNNING
        assert resumed.datetime_start == paused.datetime_start
        pruned = storage.set_state(p.trial_id, TrialState.PRUNED, value=0.8)
        assert (pruned.state, pruned.value) == (TrialState.PRUNED, 0.8)
        with pytest.raises(ValueError):
            storage.set_state(
                storage.create_trial(sid).trial_id, TrialState.COMPLETE, value=math.inf
            )
        with pytest.raises(TrialStateError):
            storage.set_state(10**9, TrialState.FAILED)

    def test_resume_paused_trial_keeps_its_record(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        t = storage.create_trial(sid, config={"x": 1.0}, worker="host:1")
        storage.report(t.trial_id, 0, 3.0)
        storage.report(t.trial_id, 1, 2.0)
        storage.set_user_attr(t.trial_id, "k", "v")
        paused = storage.set_state(t.trial_id, TrialState.PAUSED, value=2.0)
        resumed = storage.resume_trial(t.trial_id, "host:2")
        assert resumed.state is TrialState.RUNNING and resumed.worker == "host:2"
        assert resumed.intermediate == {0: 3.0, 1: 2.0}
        assert (resumed.config, resumed.user_attrs) == ({"x": 1.0}, {"k": "v"})
        assert resumed.datetime_start == paused.datetime_start
        assert resumed.datetime_complete is None
        assert storage.get_trial(t.trial_id) == resumed
        with pytest.raises(TrialStateError):  # running, not paused: nobody resumes it twice
            storage.resume_trial(t.trial_id, "host:3")
        storage.report(t.trial_id, 2, 1.0)
        done = storage.set_state(t.trial_id, TrialState.COMPLETE, value=1.0)
        assert done.intermediate == {0: 3.0, 1: 2.0, 2: 1.0}
        with pytest.raises(TrialStateError):
            storage.resume_trial(t.trial_id, "host:3")
        with pytest.raises(TrialStateError):
            storage.resume_trial(10**9, "host:3")

    @pytest.mark.parametrize("state", _FINISHED, ids=lambda s: s.value)
    def test_finished_trials_are_immutable(self, storage: Storage, state: TrialState) -> None:
        sid = self.new_study(storage).study_id
        before = self.finished_trial(storage, sid, state)
        writes: list[Callable[[], object]] = [
            lambda: storage.report(before.trial_id, 1, 9.0),
            lambda: storage.report(before.trial_id, 0, 9.0),
            lambda: storage.set_user_attr(before.trial_id, "k", "changed"),
            lambda: storage.set_trial_config(before.trial_id, {"x": 0.9}),
        ]
        writes += [
            lambda s=s: storage.set_state(before.trial_id, s, value=1.0)  # type: ignore[misc]
            for s in TrialState
        ]
        for write in writes:
            with pytest.raises(TrialStateError):
                write()
        assert storage.get_trial(before.trial_id) == before
        assert storage.claim_waiting_trial(sid, "w:1") is None

    def test_get_trials_filters_by_state(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        by_state: dict[TrialState, list[int]] = {s: [] for s in TrialState}
        for state in [*_FINISHED, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PAUSED]:
            if state.is_finished:
                t = self.finished_trial(storage, sid, state)
            else:
                t = storage.create_trial(sid)
                if state is TrialState.PAUSED:
                    t = storage.set_state(t.trial_id, TrialState.PAUSED)
            by_state[state].append(t.number)
        by_state[TrialState.WAITING].append(
            storage.create_trial(sid, state=TrialState.WAITING).number
        )
        everything = storage.get_trials(sid)
        assert [t.number for t in everything] == list(range(7))
        for state, numbers in by_state.items():
            got = storage.get_trials(sid, {state})
            assert [t.number for t in got] == numbers, state
            assert all(t.state is state for t in got)
        pair = storage.get_trials(sid, [TrialState.COMPLETE, TrialState.WAITING])
        assert [t.number for t in pair] == sorted(
            by_state[TrialState.COMPLETE] + by_state[TrialState.WAITING]
        )
        assert storage.get_trials(sid, set()) == []
        for t in everything:
            assert storage.get_trial(t.trial_id) == t

    def test_set_trial_config_and_read_the_others(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        other = self.new_study(storage).study_id
        storage.create_trial(other, config={"x": 0.9})  # not read: another study's
        self.finished_trial(storage, sid, TrialState.COMPLETE)  # number 0, {"x": 0.5}
        storage.create_trial(sid, config={"x": 0.1}, state=TrialState.WAITING)  # 1
        mine = storage.create_trial(sid)  # 2
        storage.create_trial(sid, config={"x": 0.3})  # 3

        def store(config: dict[str, Any], after: int, numbers: Any = ()) -> dict[int, Any]:
            return storage.set_trial_config_and_read(
                mine.trial_id, config, study_id=sid, after=after, numbers=numbers
            )

        assert store({"x": 0.2}, after=-1) == {
            0: {"x": 0.5},
            1: {"x": 0.1},
            2: {"x": 0.2},
            3: {"x": 0.3},
        }
        assert storage.get_trial(mine.trial_id).config == {"x": 0.2}
        assert store({"x": 0.25}, after=1) == {2: {"x": 0.25}, 3: {"x": 0.3}}
        assert store({"x": 0.25}, after=3, numbers=[0, 3, 99]) == {0: {"x": 0.5}, 3: {"x": 0.3}}
        assert store({"x": 0.25}, after=9) == {}
        got = store({"x": 0.25}, after=1)
        got[3]["x"] = 1.0  # a copy
        assert storage.get_trials(sid)[3].config == {"x": 0.3}
        with pytest.raises(ValueError):
            store({"x": object()}, after=-1)
        with pytest.raises(TrialStateError):
            storage.set_trial_config_and_read(
                storage.get_trials(sid)[0].trial_id, {"x": 0.0}, study_id=sid, after=-1
            )

    def test_threads_storing_one_config_at_once_find_it_in_turn(self, storage: Storage) -> None:
        """Of n callers that store the same config at once, the k-th finds k - 1 others."""
        if type(storage).set_trial_config_and_read is Storage.set_trial_config_and_read:
            pytest.skip(f"{type(storage).__name__} keeps the two-step default (optional)")
        sid = self.new_study(storage).study_id
        n, rounds = 4, 15
        barrier = threading.Barrier(n)
        found: dict[int, list[int]] = {r: [] for r in range(rounds)}
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for r in range(rounds):
                    t = storage.create_trial(sid)
                    barrier.wait()
                    others = storage.set_trial_config_and_read(
                        t.trial_id, {"r": r}, study_id=sid, after=-1
                    )
                    twins = [k for k, c in others.items() if k != t.number and c == {"r": r}]
                    found[r].append(len(twins))
            except BaseException as exc:  # reported below
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=work) for _ in range(n)]
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads interleave inside a step that is not one
        try:
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            sys.setswitchinterval(switch)
        assert not errors, errors
        assert all(sorted(f) == list(range(n)) for f in found.values()), found

    def test_records_are_snapshots(self, storage: Storage) -> None:
        info = self.new_study(storage, {"x": "uniform(0, 1)", "nested": {"a": [1, 2]}})
        sid = info.study_id
        t = storage.create_trial(sid, config={"x": 0.5})
        storage.report(t.trial_id, 0, 1.0)
        storage.set_user_attr(t.trial_id, "list", [1, 2])
        expected = storage.get_trial(t.trial_id)
        kept = copy.deepcopy(expected)
        for record in [t, expected, storage.get_trials(sid)[0]]:
            record.config["x"] = 0.9
            record.config["y"] = 1
            record.intermediate[7] = 3.0
            record.user_attrs.get("list", []).append(3)
            record.user_attrs["new"] = True
        assert storage.get_trial(t.trial_id) == kept
        info.space["nested"]["a"].append(3)
        storage.get_study(info.name).space["nested"]["a"].append(4)
        for s in storage.list_studies():
            if s.study_id == sid:
                s.space.clear()
        assert storage.get_study(info.name).space == {
            "x": "uniform(0, 1)",
            "nested": {"a": [1, 2]},
        }

    # -- round trips -----------------------------------------------------------------------------
    def test_values_round_trip_exactly(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        ids = []
        for step, v in enumerate(_TRICKY_FLOATS):
            t = storage.create_trial(sid, config={"x": v})
            storage.report(t.trial_id, step, v)
            storage.set_state(t.trial_id, TrialState.COMPLETE, value=v)
            ids.append(t.trial_id)
        for tid, step, v in zip(ids, range(len(ids)), _TRICKY_FLOATS, strict=True):
            got = storage.get_trial(tid)
            assert got.value is not None and got.value.hex() == v.hex(), (got.value, v)
            assert type(got.value) is float
            assert got.intermediate[step].hex() == v.hex()
            assert _same_json(got.config["x"], v)

    def test_json_config_keeps_types(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        running = storage.create_trial(sid, config=_JSON_CONFIG)
        waiting = storage.create_trial(sid, state=TrialState.WAITING, config=_JSON_CONFIG)
        later = storage.create_trial(sid)
        storage.set_trial_config(later.trial_id, _JSON_CONFIG)
        claimed = storage.claim_waiting_trial(sid, "w:1")
        assert claimed is not None and _same_json(claimed.config, _JSON_CONFIG)
        assert _same_json(running.config, _JSON_CONFIG)
        for t in storage.get_trials(sid):
            assert _same_json(t.config, _JSON_CONFIG), t.config
        assert waiting.trial_id == claimed.trial_id

    def test_datetimes_are_utc(self, storage: Storage) -> None:
        info = self.new_study(storage)
        _assert_utc(storage.get_study(info.name).datetime_created, "datetime_created")
        t = self.finished_trial(storage, info.study_id, TrialState.COMPLETE)
        for record in [t, storage.get_trial(t.trial_id), *storage.get_trials(info.study_id)]:
            _assert_utc(record.datetime_start, "datetime_start")
            _assert_utc(record.datetime_complete, "datetime_complete")

    def test_reopen_sees_everything(self, storage: Storage) -> None:
        if storage.url is None:
            pytest.skip("this storage cannot be reopened from a URL")
        info = self.new_study(storage)
        done = self.finished_trial(storage, info.study_id, TrialState.COMPLETE)
        waiting = storage.create_trial(info.study_id, state=TrialState.WAITING, config={"x": 1})
        reopened = get_storage(storage.url)
        try:
            assert reopened is not storage
            got = reopened.get_study(info.name)
            assert (got.study_id, got.n_trials, got.space) == (info.study_id, 2, info.space)
            assert reopened.get_trials(info.study_id) == [done, waiting]
            claimed = reopened.claim_waiting_trial(info.study_id, "w:2")
            assert claimed is not None and claimed.trial_id == waiting.trial_id
            assert storage.get_trial(waiting.trial_id).state is TrialState.RUNNING
        finally:
            reopened.close()

    def test_threads_get_unique_dense_numbers(self, storage: Storage) -> None:
        sid = self.new_study(storage).study_id
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for i in range(15):
                    t = storage.create_trial(sid)
                    storage.report(t.trial_id, 0, float(i))
                    storage.set_state(t.trial_id, TrialState.COMPLETE, value=float(t.number))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        trials = storage.get_trials(sid)
        assert [t.number for t in trials] == list(range(60))
        assert all(t.state is TrialState.COMPLETE and t.value == t.number for t in trials)


# -- several processes ---------------------------------------------------------------------------
def _write_trials(url: str, study_id: int, n: int, start_at: float) -> list[tuple[int, float]]:
    """In a worker process: run ``n`` trials through the storage; return (number, value)."""
    storage = get_storage(url)
    time.sleep(max(0.0, start_at - time.time()))  # start together: maximise contention
    told = []
    try:
        for i in range(n):
            t = storage.create_trial(study_id, worker=f"proc:{os.getpid()}")
            storage.report(t.trial_id, 0, float(i))
            storage.set_user_attr(t.trial_id, "pid", os.getpid())
            value = os.getpid() + i / 1000
            storage.set_state(t.trial_id, TrialState.COMPLETE, value=value)
            told.append((t.number, value))
    finally:
        storage.close()
    return told


def _store_in_rounds(url: str, study_id: int, rounds: int, start_at: float) -> list[int]:
    """In a worker process: in each round, start a trial and, at the round's moment, store
    the round's config; return how many others had it stored already, per round."""
    storage = get_storage(url)
    counts = []
    try:
        for r in range(rounds):
            t = storage.create_trial(study_id)
            time.sleep(max(0.0, start_at + 0.25 * r - time.time()))  # together: contention
            others = storage.set_trial_config_and_read(
                t.trial_id, {"r": r}, study_id=study_id, after=-1
            )
            counts.append(sum(1 for k, c in others.items() if k != t.number and c == {"r": r}))
    finally:
        storage.close()
    return counts


def _claim_all(url: str, study_id: int, start_at: float) -> list[int]:
    """In a worker process: claim waiting trials until none is left; return their ids."""
    storage = get_storage(url)
    time.sleep(max(0.0, start_at - time.time()))
    claimed = []
    try:
        while (t := storage.claim_waiting_trial(study_id, f"proc:{os.getpid()}")) is not None:
            claimed.append(t.trial_id)
            storage.set_state(t.trial_id, TrialState.COMPLETE, value=1.0)
    finally:
        storage.close()
    return claimed


def _process_pool(n: int) -> ProcessPoolExecutor:
    import multiprocessing as mp

    # "spawn": each worker opens the storage from its URL alone, as another machine would.
    return ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"))


class ConcurrentStorageConformance:
    """Multi-process checks for a storage other processes open from its ``url``.

    Subclasses provide a ``storage`` fixture, as for :class:`StorageConformance`.
    """

    n_processes = 4
    trials_per_process = 50

    @pytest.mark.slow
    def test_processes_get_unique_dense_numbers_and_lose_no_tell(self, storage: Storage) -> None:
        assert storage.url is not None, "a storage shared by processes needs a url"
        info = storage.create_study(unique_name("procs"), "minimize", {})
        n, per = self.n_processes, self.trials_per_process
        start_at = time.time() + 1.5
        with _process_pool(n) as pool:
            futures = [
                pool.submit(_write_trials, storage.url, info.study_id, per, start_at)
                for _ in range(n)
            ]
            told = [pair for f in futures for pair in f.result(timeout=120)]
        trials = storage.get_trials(info.study_id)
        assert [t.number for t in trials] == list(range(n * per))
        assert sorted(told) == sorted((t.number, t.value) for t in trials)
        assert all(t.state is TrialState.COMPLETE for t in trials)
        assert all(t.intermediate and t.user_attrs["pid"] for t in trials)
        assert len({t.user_attrs["pid"] for t in trials}) >= 2, "the processes did not overlap"
        assert storage.get_study(info.name).n_trials == n * per

    @pytest.mark.slow
    def test_processes_storing_one_config_at_once_find_it_in_turn(self, storage: Storage) -> None:
        """Of n processes that store the same config at once, the k-th finds k - 1 others:
        the study's check for twins relies on it."""
        assert storage.url is not None, "a storage shared by processes needs a url"
        info = storage.create_study(unique_name("twins"), "minimize", {})
        n, rounds = self.n_processes, 12
        start_at = time.time() + 1.5
        with _process_pool(n) as pool:
            futures = [
                pool.submit(_store_in_rounds, storage.url, info.study_id, rounds, start_at)
                for _ in range(n)
            ]
            counts = [f.result(timeout=120) for f in futures]
        for r in range(rounds):
            assert sorted(c[r] for c in counts) == list(range(n)), (r, counts)

    @pytest.mark.slow
    def test_processes_never_claim_a_trial_twice(self, storage: Storage) -> None:
        assert storage.url is not None, "a storage shared by processes needs a url"
        info = storage.create_study(unique_name("claim"), "minimize", {})
        waiting = [
            storage.create_trial(info.study_id, state=TrialState.WAITING).trial_id
            for _ in range(120)
        ]
        start_at = time.time() + 1.5
        with _process_pool(self.n_processes) as pool:
            futures = [
                pool.submit(_claim_all, storage.url, info.study_id, start_at)
                for _ in range(self.n_processes)
            ]
            claims = [f.result(timeout=120) for f in futures]
        flat = [tid for c in claims for tid in c]
        assert len(flat) == len(set(flat)), "a trial was claimed twice"
        assert sorted(flat) == sorted(waiting)
        assert all(t.state is TrialState.COMPLETE for t in storage.get_trials(info.study_id))

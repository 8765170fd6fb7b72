"""Storage in this process's memory: fast, gone when the process ends."""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections import deque
from collections.abc import Collection, Container, Mapping, Sequence
from dataclasses import replace
from typing import Any

from tunecraft.exceptions import (
    DuplicatedStudyError,
    InvalidParameterError,
    StudyNotFoundError,
    TrialStateError,
)
from tunecraft.storage._base import TRANSITIONS, Storage, StudyInfo, dumps_json, utcnow
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """Studies and trials in a dict, guarded by one lock.

    Records are replaced, never mutated, so a snapshot handed out stays as it was.
    """

    url = None

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[int, StudyInfo] = {}
        self._by_name: dict[str, int] = {}
        self._trials: dict[int, FrozenTrial] = {}
        self._study_trials: dict[int, list[int]] = {}
        # Waiting trial ids per study, lowest number first: claiming stays O(1) as studies grow.
        self._waiting: dict[int, deque[int]] = {}
        self._trial_study: dict[int, int] = {}
        # Last heartbeat (time.monotonic()) of running trials, by trial id.
        self._beats: dict[int, float] = {}
        self._next_study_id = 0
        self._next_trial_id = 0

    # -- studies -------------------------------------------------------------------------------
    def create_study(self, name: str, direction: str, space: dict[str, Any]) -> StudyInfo:
        with self._lock:
            if name in self._by_name:
                raise DuplicatedStudyError(f"A study named '{name}' already exists.")
            sid = self._next_study_id
            self._next_study_id += 1
            info = StudyInfo(
                sid, name, direction, _json_copy(space, "create_study: the space"), utcnow()
            )
            self._studies[sid] = info
            self._by_name[name] = sid
            self._study_trials[sid] = []
            self._waiting[sid] = deque()
            return replace(info, space=copy.deepcopy(info.space))

    def get_study(self, name: str) -> StudyInfo:
        with self._lock:
            if name not in self._by_name:
                raise StudyNotFoundError(f"No study named '{name}' in this in-memory storage.")
            sid = self._by_name[name]
            return self._info(sid)

    def _info(self, sid: int) -> StudyInfo:
        info = self._studies[sid]
        return replace(
            info, space=copy.deepcopy(info.space), n_trials=len(self._study_trials[sid])
        )

    def list_studies(self) -> list[StudyInfo]:
        with self._lock:
            return [self._info(sid) for sid in self._studies]

    def delete_study(self, study_id: int) -> None:
        with self._lock:
            info = self._studies.pop(study_id, None)
            if info is None:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            del self._by_name[info.name]
            self._waiting.pop(study_id, None)
            for tid in self._study_trials.pop(study_id):
                del self._trials[tid]
                del self._trial_study[tid]
                self._beats.pop(tid, None)

    # -- trials --------------------------------------------------------------------------------
    def create_trial(
        self,
        study_id: int,
        *,
        state: TrialState = TrialState.RUNNING,
        config: dict[str, Any] | None = None,
        worker: str | None = None,
    ) -> FrozenTrial:
        if state not in (TrialState.RUNNING, TrialState.WAITING):
            raise TrialStateError(f"A new trial is running or waiting, not {state.value}.")
        config = _json_copy(dict(config or {}), "create_trial: the config")
        with self._lock:
            if study_id not in self._studies:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            tid = self._next_trial_id
            self._next_trial_id += 1
            record = FrozenTrial(
                number=len(self._study_trials[study_id]),
                state=state,
                config=config,
                datetime_start=utcnow() if state is TrialState.RUNNING else None,
                trial_id=tid,
                worker=worker if state is TrialState.RUNNING else None,
            )
            self._trials[tid] = record
            self._study_trials[study_id].append(tid)
            if state is TrialState.WAITING:
                self._waiting[study_id].append(tid)
            self._trial_study[tid] = study_id
            return _snapshot(record)

    def claim_waiting_trial(self, study_id: int, worker: str) -> FrozenTrial | None:
        with self._lock:
            queue = self._waiting.get(study_id, deque())
            while queue:
                tid = queue.popleft()
                t = self._trials[tid]
                if t.state is TrialState.WAITING:  # not failed or claimed meanwhile
                    t = replace(
                        t, state=TrialState.RUNNING, datetime_start=utcnow(), worker=worker
                    )
                    self._trials[tid] = t
                    return _snapshot(t)
            return None

    def _get(self, trial_id: int) -> FrozenTrial:
        try:
            return self._trials[trial_id]
        except KeyError:
            raise TrialStateError(f"No trial with id {trial_id}.") from None

    def _writable(self, trial_id: int, what: str) -> FrozenTrial:
        t = self._get(trial_id)
        if t.state.is_finished:
            raise TrialStateError(f"{what}: trial {t.number} is already {t.state.value}.")
        return t

    def set_trial_config(self, trial_id: int, config: dict[str, Any]) -> None:
        config = _json_copy(dict(config), "set_trial_config: the config")
        with self._lock:
            t = self._writable(trial_id, "set_trial_config")
            self._trials[trial_id] = replace(t, config=config)

    def report(self, trial_id: int, step: int, value: float) -> None:
        self._report(trial_id, {step: value}, "report")

    def set_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attrs(trial_id, {key: value}, "set_user_attr")

    def set_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        self._set_attrs(trial_id, attrs, "set_user_attrs")

    def _set_attrs(self, trial_id: int, attrs: Mapping[str, Any], what: str) -> None:
        # The same rules as the SQL storage.
        new = {k: _json_copy(v, f"{what}: the value of {k!r}") for k, v in attrs.items()}
        with self._lock:
            t = self._writable(trial_id, what)
            self._trials[trial_id] = replace(t, user_attrs={**t.user_attrs, **new})

    def report_many(self, trial_id: int, values: Mapping[int, float]) -> None:
        self._report(trial_id, values, "report_many")

    def _report(self, trial_id: int, values: Mapping[int, float], what: str) -> None:
        checked = {int(step): _finite(value, what) for step, value in values.items()}
        with self._lock:
            t = self._get(trial_id)
            if t.state not in (TrialState.RUNNING, TrialState.PAUSED):
                raise TrialStateError(f"{what}: trial {t.number} is {t.state.value}.")
            self._trials[trial_id] = replace(t, intermediate={**t.intermediate, **checked})

    def set_state(
        self,
        trial_id: int,
        state: TrialState,
        *,
        value: float | None = None,
        error: str | None = None,
        expected: Container[TrialState] | None = None,
    ) -> FrozenTrial:
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                raise InvalidParameterError(f"set_state: value must be finite, got {value!r}.")
        with self._lock:
            t = self._get(trial_id)
            if state not in TRANSITIONS[t.state] or (
                expected is not None and t.state not in expected
            ):
                raise TrialStateError(
                    f"Trial {t.number} is {t.state.value}; it cannot become {state.value}."
                )
            now = utcnow()
            t = replace(
                t,
                state=state,
                value=value,
                error=error,
                datetime_start=t.datetime_start or now,
                datetime_complete=now if state.is_finished else None,
            )
            self._trials[trial_id] = t
            if state is TrialState.RUNNING:
                self._beats.pop(trial_id, None)  # running again: its old heartbeat says nothing
            return _snapshot(t)

    def resume_trial(self, trial_id: int, worker: str) -> FrozenTrial:
        with self._lock:
            t = self._get(trial_id)
            if t.state is not TrialState.PAUSED:
                raise TrialStateError(
                    f"resume_trial: trial {t.number} is {t.state.value}, not paused."
                )
            t = replace(t, state=TrialState.RUNNING, value=None, worker=worker)
            self._trials[trial_id] = t
            self._beats.pop(trial_id, None)
            return _snapshot(t)

    def record_heartbeat(self, trial_ids: Sequence[int]) -> list[int]:
        with self._lock:
            now = time.monotonic()
            gone = []
            for tid in trial_ids:
                t = self._trials.get(tid)
                if t is None or t.state is not TrialState.RUNNING:
                    gone.append(tid)
                else:
                    self._beats[tid] = now
            return gone

    def fail_if_silent(self, trial_id: int, grace: float, error: str) -> FrozenTrial | None:
        with self._lock:
            t = self._get(trial_id)
            beat = self._beats.get(trial_id)
            if t.state is not TrialState.RUNNING or beat is None:
                return None
            if time.monotonic() - beat <= grace:
                return None
            now = utcnow()
            t = replace(
                t,
                state=TrialState.FAILED,
                value=None,
                error=error,
                datetime_start=t.datetime_start or now,
                datetime_complete=now,
            )
            self._trials[trial_id] = t
            return _snapshot(t)

    def heartbeat_ages(self, study_id: int) -> dict[int, float]:
        with self._lock:
            if study_id not in self._studies:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            now = time.monotonic()
            return {
                tid: now - self._beats[tid]
                for tid in self._study_trials[study_id]
                if tid in self._beats and self._trials[tid].state is TrialState.RUNNING
            }

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            return _snapshot(self._get(trial_id))

    def get_trials(
        self, study_id: int, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        with self._lock:
            if study_id not in self._studies:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            trials = [self._trials[tid] for tid in self._study_trials[study_id]]
        return [_snapshot(t) for t in trials if states is None or t.state in states]

    def set_trial_config_and_read(
        self,
        trial_id: int,
        config: dict[str, Any],
        *,
        study_id: int,
        after: int,
        numbers: Collection[int] = (),
    ) -> dict[int, dict[str, Any]]:
        config = _json_copy(dict(config), "set_trial_config: the config")
        with self._lock:
            t = self._writable(trial_id, "set_trial_config")
            if self._trial_study[trial_id] != study_id:
                raise InvalidParameterError(f"Trial {trial_id} is not in study {study_id}.")
            self._trials[trial_id] = replace(t, config=config)
            tids = self._study_trials[study_id]  # numbers are dense from 0: index = number
            wanted = {n for n in numbers if 0 <= n < len(tids)} | set(
                range(max(after + 1, 0), len(tids))
            )
            return {n: copy.deepcopy(self._trials[tids[n]].config) for n in sorted(wanted)}


def _finite(value: Any, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise InvalidParameterError(f"{what}: value must be finite, got {value!r}.")
    return value


def _json_copy(value: Any, what: str) -> Any:
    """A private copy of ``value`` by the SQL storage's rules: strict JSON, or an error that
    names ``what``."""
    return json.loads(dumps_json(value, what))


#: Exact types: anything else goes through _copy_tree, which returns what is not a container.
_SCALARS = frozenset((str, int, float, bool, type(None)))


def _copy_tree(value: Any) -> Any:
    """A copy of a stored value: JSON, so dicts, lists and scalars only (what ``_json_copy``
    made). Several times faster than ``copy.deepcopy``, which dominated ``get_trials`` when
    every trial carried a derived config (``tc.config``) in its user attributes."""
    if isinstance(value, dict):
        return {k: v if v.__class__ in _SCALARS else _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if v.__class__ in _SCALARS else _copy_tree(v) for v in value]
    return value


def _snapshot(t: FrozenTrial) -> FrozenTrial:
    """A record whose contents the caller may change without touching the storage's copy."""
    # Built field by field, not with dataclasses.replace: get_trials snapshots every trial of
    # a study on each call, and replace's generic path was half of that cost. Every field of
    # FrozenTrial is named (tests/storage check that a snapshot equals its record).
    return FrozenTrial(
        number=t.number,
        state=t.state,
        config=_copy_tree(t.config),
        value=t.value,
        intermediate=dict(t.intermediate),
        user_attrs=_copy_tree(t.user_attrs),
        datetime_start=t.datetime_start,
        datetime_complete=t.datetime_complete,
        error=t.error,
        trial_id=t.trial_id,
        worker=t.worker,
    )

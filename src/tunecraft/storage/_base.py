"""The storage interface: the single source of truth of studies and trials."""

from __future__ import annotations

import json
import os
import reprlib
import socket
from abc import ABC, abstractmethod
from collections.abc import Collection, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tunecraft.exceptions import InvalidParameterError
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["Storage", "StudyInfo", "current_worker", "dumps_json", "utcnow"]


@dataclass(frozen=True)
class StudyInfo:
    """What a storage records of a study itself."""

    study_id: int
    name: str
    direction: str
    space: dict[str, Any]
    datetime_created: datetime | None = None
    n_trials: int = 0


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every storage records times in UTC)."""
    return datetime.now(timezone.utc)


def dumps_json(value: Any, what: str) -> str:
    """``value`` as strict JSON, or an error that names ``what`` and shows a short repr."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{what} must be JSON-serializable (no NaN or inf), got {reprlib.repr(value)}: {exc}."
        ) from None


def current_worker() -> str:
    """``host:pid`` of this process, recorded on the trials it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


# Allowed state changes. Finished states have no way out: finished trials are immutable.
TRANSITIONS: dict[TrialState, frozenset[TrialState]] = {
    TrialState.WAITING: frozenset({TrialState.RUNNING, TrialState.FAILED}),
    TrialState.RUNNING: frozenset(
        {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED, TrialState.PAUSED}
    ),
    TrialState.PAUSED: frozenset({TrialState.RUNNING, TrialState.PRUNED, TrialState.FAILED}),
    TrialState.COMPLETE: frozenset(),
    TrialState.PRUNED: frozenset(),
    TrialState.FAILED: frozenset(),
}


class Storage(ABC):
    """Where studies and trials live.

    Contract, which every implementation meets and ``tunecraft.testing`` checks:

    * Every method is atomic and safe to call from several threads; SQL storages are also safe
      from several processes and machines sharing one database. (The defaults of the optional
      methods below are built from the others, and say where they are not atomic.)
    * Trial numbers are unique and dense within a study (0, 1, 2...) under concurrent writers.
    * Finished trials (complete, pruned, failed) are immutable: any write to one raises
      :class:`~tunecraft.exceptions.TrialStateError`, so a trial cannot be told twice.
    * Records returned are snapshots; changing them changes nothing in the storage.
    * A study can be reopened after the process that wrote it died, with every finished trial
      intact.
    """

    #: A URL another process can pass to :func:`tunecraft.storage.get_storage` to open the same
    #: storage, or ``None`` when the storage lives only in this process.
    url: str | None = None

    # -- studies -------------------------------------------------------------------------------
    @abstractmethod
    def create_study(self, name: str, direction: str, space: dict[str, Any]) -> StudyInfo:
        """Create a study; raise ``DuplicatedStudyError`` when the name is taken."""

    @abstractmethod
    def get_study(self, name: str) -> StudyInfo:
        """Return the study of that name; raise ``StudyNotFoundError`` when there is none."""

    @abstractmethod
    def list_studies(self) -> list[StudyInfo]:
        """Every study, oldest first, with its number of trials."""

    @abstractmethod
    def delete_study(self, study_id: int) -> None:
        """Delete a study and all its trials."""

    # -- trials --------------------------------------------------------------------------------
    @abstractmethod
    def create_trial(
        self,
        study_id: int,
        *,
        state: TrialState = TrialState.RUNNING,
        config: dict[str, Any] | None = None,
        worker: str | None = None,
    ) -> FrozenTrial:
        """Add a trial (running or waiting) with the next number of the study."""

    @abstractmethod
    def claim_waiting_trial(self, study_id: int, worker: str) -> FrozenTrial | None:
        """Atomically move the lowest-numbered waiting trial to running and return it.

        Two callers never claim the same trial. Returns ``None`` when none is waiting.
        """

    @abstractmethod
    def set_trial_config(self, trial_id: int, config: dict[str, Any]) -> None:
        """Set the config of a trial that is not finished."""

    @abstractmethod
    def report(self, trial_id: int, step: int, value: float) -> None:
        """Record (or overwrite) the intermediate value at ``step`` of a running trial."""

    @abstractmethod
    def set_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Attach a JSON-serializable value to a trial that is not finished."""

    def set_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Attach several values at once: all or none of them, in one transaction where the
        storage has transactions. This default calls :meth:`set_user_attr` for each."""
        for key, value in attrs.items():
            self.set_user_attr(trial_id, key, value)

    def report_many(self, trial_id: int, values: Mapping[int, float]) -> None:
        """Record several intermediate values at once (as :meth:`report` does each), in one
        transaction where the storage has transactions. This default calls :meth:`report`."""
        for step, value in values.items():
            self.report(trial_id, step, value)

    @abstractmethod
    def set_state(
        self,
        trial_id: int,
        state: TrialState,
        *,
        value: float | None = None,
        error: str | None = None,
        expected: Container[TrialState] | None = None,
    ) -> FrozenTrial:
        """Move a trial to ``state`` (recording value or error) and return the new record.

        Raises ``TrialStateError`` when the change is not allowed (from a finished state, or
        from a state not in ``expected`` when given), checked and written atomically.
        """

    def resume_trial(self, trial_id: int, worker: str) -> FrozenTrial:
        """Atomically move a paused trial back to running, now owned by ``worker``.

        Intermediate values, config and attributes are kept. Of two callers racing to resume
        the same trial, one succeeds and the other gets ``TrialStateError``. This default
        keeps the old worker; built-in storages override it to record the new one.
        """
        return self.set_state(trial_id, TrialState.RUNNING, expected={TrialState.PAUSED})

    @abstractmethod
    def get_trial(self, trial_id: int) -> FrozenTrial:
        """One trial by its storage key."""

    @abstractmethod
    def get_trials(
        self, study_id: int, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """The trials of a study ordered by number, optionally only those in ``states``."""

    def set_trial_config_and_read(
        self,
        trial_id: int,
        config: dict[str, Any],
        *,
        study_id: int,
        after: int,
        numbers: Collection[int] = (),
    ) -> dict[int, dict[str, Any]]:
        """Set a trial's config, then return the configs of the study's trials numbered above
        ``after`` or in ``numbers``, by number, as one step that concurrent callers in the same
        study take in turn: of two that store the same config at once, exactly the second
        finds the first's (the study's check for a twin of a new proposal).

        Optional: this default takes the two steps apart (both callers may then find the
        other, and both ask again) and reads every trial; the built-in storages serialize
        them and read only what is asked.
        """
        self.set_trial_config(trial_id, config)
        wanted = set(numbers)
        return {
            t.number: t.config
            for t in self.get_trials(study_id)
            if t.number > after or t.number in wanted
        }

    # -- heartbeats (optional) ------------------------------------------------------------------
    def record_heartbeat(self, trial_ids: Sequence[int]) -> list[int]:
        """Note, by the storage's clock, that the running trials ``trial_ids`` are alive.

        Returns the ids among them that are no longer running (finished or paused meanwhile,
        perhaps by another process), for which nothing was recorded. Moving a trial back to
        running forgets its last heartbeat, so a resumed trial is not judged by the one it
        had before its pause.

        Optional: a storage without it cannot serve ``Study(heartbeat_interval=...)``. SQL
        storages read the database server's clock, so the hosts' clocks need not agree.
        """
        raise NotImplementedError(f"{type(self).__name__} does not record heartbeats.")

    def heartbeat_ages(self, study_id: int) -> dict[int, float]:
        """Seconds since the last heartbeat of each running trial of the study that has one,
        by trial id, measured with the clock :meth:`record_heartbeat` used."""
        raise NotImplementedError(f"{type(self).__name__} does not record heartbeats.")

    def fail_if_silent(self, trial_id: int, grace: float, error: str) -> FrozenTrial | None:
        """Fail the trial, recording ``error``, if it is running and its last heartbeat is
        more than ``grace`` seconds old; return the new record, or ``None`` when it is not.

        The check and the write are atomic, so a trial that beat (or was paused and resumed
        elsewhere) since the caller read :meth:`heartbeat_ages` is left alone.
        """
        raise NotImplementedError(f"{type(self).__name__} does not record heartbeats.")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (optional)."""

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """Called in a forked child before it uses the storage: drop inherited connections."""

"""Heartbeats of the trials a process runs, so that other hosts can tell a lost worker."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from tunecraft.logging import get_logger

if TYPE_CHECKING:
    from tunecraft.storage import Storage

__all__ = ["Heartbeat"]

_log = get_logger("study")


class Heartbeat:
    """Record a heartbeat for each trial this process runs, every ``interval`` seconds.

    :meth:`start` records the first beat at once and :meth:`stop` ends them. The beats come
    from one daemon thread per process, which ends when no trial is left to beat for; a forked
    child starts its own (threads do not survive a fork) and forgets the parent's trials. A
    failed write is logged and retried at the next beat: the trial itself goes on.
    """

    def __init__(self, storage: Storage, interval: float) -> None:
        self._storage = storage
        self.interval = interval
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def _own(self) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's thread is not here
            self._reset()

    def start(self, trial_id: int) -> None:
        """Beat for ``trial_id`` from now until :meth:`stop`."""
        self._own()
        try:
            self._storage.record_heartbeat([trial_id])
        except Exception as exc:  # the trial has no heartbeat yet, so none can call it stale
            _log.warning("Could not record the heartbeat of trial %s: %s", trial_id, exc)
        with self._lock:
            self._ids.add(trial_id)
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._run, name="tunecraft-heartbeat", daemon=True
                )
                self._thread.start()

    def stop(self, trial_id: int) -> None:
        """No more beats for ``trial_id`` (finished or paused)."""
        self._own()
        with self._lock:
            self._ids.discard(trial_id)
            if not self._ids:
                self._wake.set()  # let the thread end now rather than after its sleep

    @property
    def trial_ids(self) -> frozenset[int]:
        """The trials this process beats for."""
        self._own()
        with self._lock:
            return frozenset(self._ids)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            with self._lock:
                self._wake.clear()
                ids = sorted(self._ids)
                if not ids:
                    self._thread = None
                    return
            try:
                gone = self._storage.record_heartbeat(ids)
            except Exception as exc:  # the database is away: try again at the next beat
                _log.warning("Could not record the heartbeat of trials %s: %s", ids, exc)
                continue
            if gone:  # finished elsewhere (told from another process, or failed as stale)
                with self._lock:
                    self._ids.difference_update(gone)

    def __getstate__(self) -> dict[str, Any]:
        return {"storage": self._storage, "interval": self.interval}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["storage"], state["interval"])  # type: ignore[misc]

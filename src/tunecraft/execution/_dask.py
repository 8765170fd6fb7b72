"""Trials as Dask tasks: a study's trials run on the workers of a ``dask.distributed`` cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tunecraft._imports import require
from tunecraft.exceptions import InvalidParameterError, SamplerExhaustedError, WorkerError
from tunecraft.logging import get_logger

if TYPE_CHECKING:
    from tunecraft.study import Study
    from tunecraft.trial import FrozenTrial, Trial

__all__ = ["is_dask_client", "run_on_dask"]

_log = get_logger("execution")


def is_dask_client(executor: Any) -> bool:
    """Whether ``executor`` is a ``dask.distributed.Client`` (checked without importing Dask)."""
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "submit")


def run_on_dask(
    study: Study,
    objective: Callable[[Trial], Any],
    *,
    client: Any,
    n_trials: int | None,
    timeout: float | None,
    n_concurrent: int | None,
    callbacks: Sequence[Callable[[Study, FrozenTrial], None]],
    catch: tuple[type[BaseException], ...],
    show_progress_bar: bool,
) -> list[FrozenTrial]:
    """Run ``n_trials`` trials of ``study`` as tasks of the Dask ``client``; return their records.

    Each task gets its own copy of the study (pickled: it opens the storage by its URL), asks
    a trial, runs ``objective`` on it and tells the result, as :meth:`Study.run_trial` does in
    one process. At most ``n_concurrent`` tasks are in flight (``None``: one per thread of the
    cluster's workers, read when the run starts), and a new one is submitted as each ends, so
    the sampler sees every finished trial before it proposes the next. ``timeout`` (seconds,
    wall clock, so that it means the same on every machine) stops new trials from starting.
    Callbacks run here, in the process that called, as each trial's record arrives.

    An error the objective raises and ``catch`` does not cover fails its trial (as in
    :meth:`Study.optimize`), cancels the tasks not yet started and is raised here as
    :class:`~tunecraft.exceptions.WorkerError`; so is a task Dask gives up on (a worker that
    died too often). Trials already running when the caller stops (Ctrl-C) finish on their
    workers: Dask cannot interrupt a running task.
    """
    distributed = require("distributed", "dask", purpose="running trials on Dask")
    if study.storage.url is None:
        raise InvalidParameterError(
            "Study.optimize(executor=<dask Client>) runs trials on Dask workers, which cannot "
            "share an in-memory storage; pass storage='sqlite:///study.db' (one machine) or "
            "'postgresql://...' (several)."
        )
    if n_concurrent is None:
        n_concurrent = max(1, sum(client.nthreads().values()))
    deadline = None if timeout is None else time.time() + timeout
    progress: Any = None
    if show_progress_bar:
        from tunecraft._progress import ProgressBar

        progress = ProgressBar(total=n_trials, timeout=timeout)
        progress._sign = 1.0 if study.direction == "minimize" else -1.0

    def more() -> bool:
        if n_trials is not None and submitted >= n_trials:
            return False
        return deadline is None or time.time() < deadline

    def submit() -> Any:
        # pure=False: every task gets its own key, although their arguments are the same.
        return client.submit(_one_trial, study, objective, catch, deadline, pure=False)

    records: list[FrozenTrial] = []
    submitted = 0
    exhausted = False
    inflight: set[Any] = set()
    pending = distributed.as_completed()

    def add() -> None:
        nonlocal submitted
        future = submit()
        inflight.add(future)
        pending.add(future)
        submitted += 1

    try:
        while submitted < n_concurrent and more():
            add()
        for future in pending:
            inflight.discard(future)
            try:
                kind, record = future.result()
            except Exception as exc:
                client.cancel(list(inflight))
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise WorkerError(
                    f"A Dask task stopped: {type(exc).__name__}" + (f": {first}" if first else "")
                ) from exc
            if kind == "exhausted":
                exhausted = True
            elif record is not None:
                records.append(record)
                for cb in callbacks:
                    cb(study, record)
                if progress is not None:
                    progress.advance(record)
            if not exhausted and more():
                add()
    except KeyboardInterrupt:
        client.cancel(list(inflight))
        raise
    finally:
        if progress is not None:
            progress.close()
    if exhausted:
        _log.info("Study '%s': the sampler is exhausted.", study.name)
    return records


def _one_trial(
    study: Study,
    objective: Callable[[Trial], Any],
    catch: tuple[type[BaseException], ...],
    deadline: float | None,
) -> tuple[str, FrozenTrial | None]:
    """One trial, on a Dask worker: ``("trial", record)``, ``("exhausted", None)`` when the
    sampler has nothing left, or ``("late", None)`` when the task started after the deadline."""
    if deadline is not None and time.time() >= deadline:
        return "late", None
    try:
        return "trial", study.run_trial(objective, catch=catch)
    except SamplerExhaustedError:
        return "exhausted", None

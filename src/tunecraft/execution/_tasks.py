"""Trials as tasks of a cluster: Dask or Ray run each trial on one of their workers."""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tunecraft._imports import require
from tunecraft._validation import check_int
from tunecraft.exceptions import (
    InvalidParameterError,
    SamplerExhaustedError,
    TrialStateError,
    WorkerError,
)
from tunecraft.logging import get_logger

if TYPE_CHECKING:
    from tunecraft.study import Study
    from tunecraft.trial import FrozenTrial, Trial

__all__ = ["DaskBackend", "RayBackend", "backend_for", "run_as_tasks"]

_log = get_logger("execution")


class DaskBackend:
    """Tasks of a ``dask.distributed.Client``."""

    name = "Dask"
    extra = "dask"

    def __init__(self, client: Any) -> None:
        self._distributed = require("distributed", "dask", purpose="running trials on Dask")
        self._client = client
        self._done: Any = None
        self._futures: list[Any] = []

    def pickler(self) -> Any:
        return require("cloudpickle", self.extra, purpose=f"{self.name} tasks")

    def slots(self) -> int:
        return max(1, sum(self._client.nthreads().values()))

    def cap(self, n_concurrent: int) -> int:
        return n_concurrent  # tasks queued beyond the slots can be cancelled (stop)

    def stop(self) -> None:
        # Tasks not started never start; one already running goes on in its thread and
        # records its trial (Dask cannot interrupt it).
        unfinished = [f for f in self._futures if not f.done()]
        if unfinished:
            self._client.cancel(unfinished)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        # pure=False: every task gets its own key, although their arguments are the same.
        future = self._client.submit(fn, *args, pure=False)
        self._futures = [f for f in self._futures if not f.done()] + [future]
        if self._done is None:
            self._done = self._distributed.as_completed([future])
        else:
            self._done.add(future)
        return future

    def next_done(self) -> Any:
        return next(self._done)

    @staticmethod
    def result(handle: Any) -> Any:
        return handle.result()


class RayBackend:
    """Ray tasks on the cluster this process is connected to (``ray.init()`` is called with
    its defaults when it has not been)."""

    name = "Ray"
    extra = "ray"

    def __init__(self) -> None:
        self._ray = require("ray", "ray", purpose="running trials on Ray")
        self._pending: list[Any] = []
        self._tasks: dict[Callable[..., Any], Any] = {}

    def _connect(self) -> None:
        # Not in __init__: a run refused for its storage or objective starts no Ray.
        if not self._ray.is_initialized():
            self._ray.init()

    def pickler(self) -> Any:
        return self._ray.cloudpickle  # Ray ships its own; the ray extra brings no other

    def slots(self) -> int:
        self._connect()
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def cap(self, n_concurrent: int) -> int:
        # ray.cancel would interrupt running tasks too (a trial cut mid-write), so no task
        # is left queued that an error would have to cancel: at most one per CPU in flight.
        return min(n_concurrent, self.slots())

    def stop(self) -> None:
        pass  # nothing queued (cap); the running tasks finish and record their trials

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._connect()
        task = self._tasks.get(fn)
        if task is None:
            task = self._tasks[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        ref = task.remote(*args)
        self._pending.append(ref)
        return ref

    def next_done(self) -> Any:
        (ref,), self._pending = self._ray.wait(self._pending, num_returns=1)
        return ref

    def result(self, handle: Any) -> Any:
        try:
            return self._ray.get(handle)
        except self._ray.exceptions.RayTaskError as exc:  # the objective's own error inside
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise


def backend_for(executor: Any) -> DaskBackend | RayBackend:
    """The backend of an ``executor`` argument: a ``dask.distributed.Client``, or ``"ray"``."""
    if isinstance(executor, str) and executor == "ray":
        return RayBackend()
    if type(executor).__module__.startswith("distributed") and hasattr(executor, "submit"):
        return DaskBackend(executor)
    raise TypeError(
        "The 'executor' parameter of Study.optimize must be None, a dask.distributed.Client "
        f"or 'ray', got {executor!r}."
    )


def run_as_tasks(
    study: Study,
    objective: Callable[[Trial], Any],
    *,
    backend: DaskBackend | RayBackend,
    n_trials: int | None,
    timeout: float | None,
    n_concurrent: int | None,
    callbacks: Sequence[Callable[[Study, FrozenTrial], None]],
    catch: tuple[type[BaseException], ...],
    show_progress_bar: bool,
) -> list[FrozenTrial]:
    """Run ``n_trials`` trials of ``study``, each a task of ``backend``; return their records.

    Each task gets its own copy of the study (pickled: it opens the storage by its URL), asks
    a trial, runs ``objective`` on it and tells the result, as :meth:`Study.run_trial` does in
    one process. At most ``n_concurrent`` tasks are in flight (``None``: one per CPU or thread
    of the cluster, read when the run starts), and a new one is submitted as each ends, so the
    sampler sees every finished trial before it proposes the next. ``timeout`` (seconds, wall
    clock, so that it means the same on every machine) stops new trials from starting.
    Callbacks run here, in the process that called, as each trial's record arrives.

    An error the objective raises and ``catch`` does not cover fails its trial (as in
    :meth:`Study.optimize`) and is raised here as
    :class:`~tunecraft.exceptions.WorkerError`, as is a task the cluster lost (a worker that
    died: its trial is marked failed, and a task that Dask starts again on another worker
    fails at once rather than run a new trial). ``KeyboardInterrupt`` and ``SystemExit``
    from the objective are errors too, and do not take the worker down. After an error or
    an interruption of the caller (Ctrl-C) no task is submitted and the queued ones are
    cancelled; a task a worker has already begun runs its trial to the end, and the trial
    is recorded in the storage. On Ray, at most one task per
    CPU of the cluster is in flight, whatever ``n_concurrent`` says: a queued Ray task cannot
    be cancelled without interrupting the running ones.
    """
    check_int(n_trials, "n_trials", "run_as_tasks", low=1, allow_none=True)
    check_int(n_concurrent, "n_concurrent", "run_as_tasks", low=1, allow_none=True)
    if study.storage.url is None:
        raise InvalidParameterError(
            f"Study.optimize(executor=...) runs trials on {backend.name} workers, which cannot "
            "share an in-memory storage; pass storage='sqlite:///study.db' (one machine) or "
            "'postgresql://...' (several)."
        )
    cloudpickle = backend.pickler()
    for what, value in (("objective", objective), ("study", study)):
        try:  # as the cluster will; its own error names none of what the user wrote
            cloudpickle.dumps(value)
        except Exception as exc:
            raise TypeError(
                f"Study.optimize(executor=...) sends the {what} to the {backend.name} workers, "
                f"but it cannot be pickled ({type(exc).__name__}: {exc}); define it at module "
                "level, or keep what it uses (locks, open files, connections) out of it."
            ) from None
    n_concurrent = backend.cap(backend.slots() if n_concurrent is None else n_concurrent)
    deadline = None if timeout is None else time.time() + timeout
    progress: Any = None
    if show_progress_bar:
        from tunecraft._progress import ProgressBar

        progress = ProgressBar(total=n_trials, timeout=timeout)
        progress._sign = 1.0 if study.direction == "minimize" else -1.0

    records: list[FrozenTrial] = []
    submitted = inflight = 0
    exhausted = False

    def fill() -> None:
        nonlocal submitted, inflight
        while inflight < n_concurrent and not exhausted:
            if n_trials is not None and submitted >= n_trials:
                return
            if deadline is not None and time.time() >= deadline:
                return
            backend.submit(_one_trial, study, objective, catch, deadline, uuid.uuid4().hex)
            submitted += 1
            inflight += 1

    try:
        fill()
        while inflight:
            handle = backend.next_done()
            inflight -= 1
            try:
                kind, record = backend.result(handle)
            except Exception as exc:
                study.fail_stale_trials()  # a worker that died on this host left its trial
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise WorkerError(
                    f"A {backend.name} task stopped: {type(exc).__name__}"
                    + (f": {first}" if first else "")
                ) from exc
            if kind == "error":
                raise WorkerError(f"A {backend.name} task stopped: {record}")
            if kind == "lost":
                study.fail_stale_trials()  # any other trial of the dead worker
                raise WorkerError(
                    f"A {backend.name} task stopped: the worker running trial {record.number} "
                    f"died; the trial is marked failed."
                )
            if kind == "exhausted":
                exhausted = True
            elif record is not None:
                records.append(record)
                for cb in callbacks:
                    cb(study, record)
                if progress is not None:
                    progress.advance(record)
            fill()
    except BaseException:
        backend.stop()  # the queued tasks never start their trials
        raise
    finally:
        if progress is not None:
            progress.close()
    if exhausted:
        _log.info("Study '%s': the sampler is exhausted.", study.name)
    return records


_TASK_ATTR = "tc.task"  # the task that runs a trial (Dask may start a task again elsewhere)


def _one_trial(
    study: Study,
    objective: Callable[[Trial], Any],
    catch: tuple[type[BaseException], ...],
    deadline: float | None,
    token: str,
) -> tuple[str, Any]:
    """One trial, on a worker: ``("trial", record)``; ``("exhausted", None)`` when the
    sampler has nothing left; ``("late", None)`` when the task started after the deadline;
    ``("lost", record)`` when this task ran before on a worker that died (its trial, now
    failed); ``("error", message)`` for ``KeyboardInterrupt`` or ``SystemExit``."""
    from tunecraft.trial import TrialState

    storage = study.storage
    for t in storage.get_trials(study.study_id, {TrialState.RUNNING}):
        if t.user_attrs.get(_TASK_ATTR) == token:  # started again: its first worker died
            try:
                record = storage.set_state(
                    t.trial_id,
                    TrialState.FAILED,
                    error="lost: the worker running it died",
                    expected={TrialState.RUNNING},
                )
            except TrialStateError:
                record = storage.get_trial(t.trial_id)
            return "lost", record
    if deadline is not None and time.time() >= deadline:
        return "late", None

    def tagged(trial: Trial) -> Any:
        storage.set_user_attr(trial.trial_id, _TASK_ATTR, token)
        return objective(trial)

    try:
        return "trial", study.run_trial(tagged, catch=catch)
    except SamplerExhaustedError:
        return "exhausted", None
    except Exception as exc:
        try:  # one that does not unpickle reached Ray's caller as "UnserializableException"
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
        raise
    except (KeyboardInterrupt, SystemExit) as exc:  # the trial is failed already; raised,
        # they would take the worker down, and Dask would start the task (a new trial) again
        return "error", f"{type(exc).__name__}: {exc}"

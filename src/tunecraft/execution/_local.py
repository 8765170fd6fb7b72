"""A local pool of worker processes sharing the study's storage."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tunecraft.exceptions import InvalidParameterError, SamplerExhaustedError, WorkerError
from tunecraft.logging import get_logger

if TYPE_CHECKING:
    from tunecraft.study import Study
    from tunecraft.trial import FrozenTrial, Trial

__all__ = ["run_in_processes"]

_log = get_logger("execution")
_GRACE_SECONDS = 10.0


def run_in_processes(
    study: Study,
    objective: Callable[[Trial], Any],
    *,
    n_trials: int | None,
    deadline: float | None,
    n_workers: int,
    callbacks: Sequence[Callable[[Study, FrozenTrial], None]],
    catch: tuple[type[BaseException], ...],
    show_progress_bar: bool,
) -> None:
    """Run trials in ``n_workers`` processes until ``n_trials`` started or ``deadline`` passed.

    Each worker asks, runs and tells trials through the shared storage; a shared counter hands
    out trial slots so exactly ``n_trials`` run. The first uncaught error stops the other workers
    and is raised here as :class:`WorkerError`.
    """
    if study.storage.url is None:
        raise InvalidParameterError(
            f"Study.optimize(n_jobs={n_workers}) runs trials in separate processes, which cannot "
            "share an in-memory storage; pass storage='sqlite:///study.db' (or PostgreSQL)."
        )
    methods = mp.get_all_start_methods()
    ctx: Any = mp.get_context("fork" if "fork" in methods else "spawn")
    claimed = ctx.Value("q", 0)
    stop = ctx.Event()
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                study,
                objective,
                n_trials,
                deadline,
                claimed,
                stop,
                results,
                callbacks,
                catch,
                os.getpid(),
            ),
            name=f"tunecraft-worker-{i}",
        )
        for i in range(n_workers)
    ]
    progress: Any = None
    if show_progress_bar:
        from tunecraft._progress import ProgressBar

        progress = ProgressBar(
            total=n_trials, timeout=None if deadline is None else deadline - time.monotonic()
        )
        progress._sign = 1.0 if study.direction == "minimize" else -1.0
    errors: list[str] = []
    interrupted = False
    for p in procs:
        p.start()
    try:
        while True:
            alive = any(p.is_alive() for p in procs)
            try:
                kind, payload = results.get(timeout=0.2)
            except queue.Empty:
                if not alive:
                    break
                continue
            if kind == "trial" and progress is not None:
                progress.advance(payload)
            elif kind == "error":
                errors.append(payload)
            elif kind == "interrupted":
                interrupted = True
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop.set()
        _shutdown(procs)
        study.fail_stale_trials()
        raise
    finally:
        if progress is not None:
            progress.close()
    crashed = [p for p in procs if p.exitcode not in (0, None)]
    if crashed and not errors:
        study.fail_stale_trials()
        errors.append(f"{crashed[0].name} exited with code {crashed[0].exitcode}")
    if errors:
        raise WorkerError(f"A worker process stopped: {errors[0].splitlines()[0]}")
    if interrupted:  # raised in a worker alone (not a Ctrl-C, which reaches us too)
        raise KeyboardInterrupt


def _shutdown(procs: Sequence[Any]) -> None:
    end = time.monotonic() + _GRACE_SECONDS
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join()


def _worker(
    study: Study,
    objective: Callable[[Trial], Any],
    n_trials: int | None,
    deadline: float | None,
    claimed: Any,
    stop: Any,
    results: Any,
    callbacks: Sequence[Callable[[Study, FrozenTrial], None]],
    catch: tuple[type[BaseException], ...],
    parent_pid: int,
) -> None:
    study.storage.after_fork()
    try:
        while not stop.is_set():
            if os.getppid() != parent_pid:
                # The parent was killed (kill -9 leaves no chance to stop us): finish here
                # rather than run the rest of the study unsupervised.
                _log.warning("The parent process is gone; worker %d stops.", os.getpid())
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            with claimed.get_lock():
                if n_trials is not None and claimed.value >= n_trials:
                    break
                claimed.value += 1
            try:
                record = study.run_trial(objective, catch=catch)
            except SamplerExhaustedError:
                stop.set()
                break
            results.put(("trial", record))
            for cb in callbacks:
                cb(study, record)
    except KeyboardInterrupt:
        stop.set()  # the trial is already marked failed; the parent re-raises
        results.put(("interrupted", ""))
    except BaseException as exc:
        stop.set()
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        if os.getppid() != parent_pid:
            results.cancel_join_thread()  # nobody reads: do not block on a full pipe
        results.close()
        results.join_thread()

"""What running trials elsewhere costs: in process, a local pool, a Dask cluster, Ray.

Every executor runs the same study on SQLite (random sampler, so the sampler's cost does not
vary with the history) with an objective that sleeps ``--work`` seconds, and the script prints,
per executor, the median over ``--repeats`` runs of the wall time and of the overhead per
trial: ``(wall - ideal) / trials``, where ``ideal = trials * work / slots`` is the time with
no cost at all besides the work. The local pool, Dask and Ray get two slots (two processes,
two single-thread workers, two CPUs); the cluster's start-up is not counted (a user starts a
cluster once). ``--work 0`` measures the cost of a trial alone.

Run in ``.venv`` (with the ``dask`` and ``ray`` extras, which the test extra includes)::

    python benchmarks/executors.py --trials 40 --work 0.2 --repeats 3
    python benchmarks/executors.py --trials 40 --work 0 --storage postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from _machine import machine  # benchmarks/_machine.py (the script's folder)

import tunecraft as tc

SPACE = {"x": tc.uniform(0.0, 1.0)}


def objective_for(work: float) -> Callable[[Any], float]:
    def objective(trial: Any) -> float:
        if work:
            time.sleep(work)
        return float(trial.config["x"])

    return objective


def run(kind: str, executor: Any, trials: int, work: float, slots: int, url: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        storage = url or f"sqlite:///{tmp}/bench.db"
        name = f"bench-{uuid.uuid4().hex[:8]}"
        study = tc.Study(SPACE, storage=storage, name=name, sampler="random", seed=0)
        started = time.perf_counter()
        if kind == "in process":
            study.optimize(objective_for(work), n_trials=trials)
        elif kind == "local pool":
            study.optimize(objective_for(work), n_trials=trials, n_jobs=slots)
        else:
            study.optimize(objective_for(work), n_trials=trials, n_jobs=slots, executor=executor)
        wall = time.perf_counter() - started
        assert len(study.get_trials(["complete"])) == trials
        tc.delete_study(name, storage=study.storage)
        study.storage.close()
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--work", type=float, default=0.2, help="seconds each objective sleeps")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", default="in process,local pool,dask,ray")
    ap.add_argument("--storage", default=None, help="a URL (default: SQLite in a temp folder)")
    args = ap.parse_args(argv)
    if args.trials < 1 or args.repeats < 1 or args.work < 0:
        ap.error("--trials and --repeats must be >= 1, --work >= 0")
    slots = 2
    kinds = [k.strip() for k in args.kinds.split(",")]
    rows = []
    for kind in kinds:
        executor: Any = None
        closers: list[Callable[[], Any]] = []
        if kind == "dask":
            import distributed

            cluster = distributed.LocalCluster(
                n_workers=slots, threads_per_worker=1, processes=True, dashboard_address=None
            )
            executor = distributed.Client(cluster)
            closers = [executor.close, cluster.close]
        elif kind == "ray":
            import ray

            ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False)
            executor = "ray"
            closers = [ray.shutdown]
        n = 1 if kind == "in process" else slots
        try:
            run(kind, executor, min(args.trials, 4), args.work, n, args.storage)  # warm up
            walls = [
                run(kind, executor, args.trials, args.work, n, args.storage)
                for _ in range(args.repeats)
            ]
        finally:
            for close in closers:
                close()
        ideal = args.trials * args.work / n
        wall = statistics.median(walls)
        rows.append((kind, n, wall, (wall - ideal) / args.trials * 1000))
        print(f"{kind}: {', '.join(f'{w:.2f}' for w in walls)} s", file=sys.stderr)
    print(machine(), file=sys.stderr)
    where = "SQLite" if args.storage is None else args.storage.split(":")[0]
    print(
        f"\n{args.trials} trials, {args.work:g} s of work each, {where}, "
        f"median of {args.repeats} runs\n"
    )
    print("| executor | slots | wall (s) | overhead per trial (ms) |")
    print("|:--|--:|--:|--:|")
    for kind, n, wall, overhead in rows:
        print(f"| {kind} | {n} | {wall:.2f} | {overhead:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

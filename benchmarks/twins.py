"""Configs run twice when workers ask at the same moment, and what the check against it costs.

Two workers that read the study's history at the same moment see neither's new trial; a
sampler whose proposal is a deterministic function of the history (the GP's acquisition
optimum, the grid's next point) then gives both the same config. ``Sampler.avoids_twins``
makes the study look for such a twin after storing a proposal and ask again.

Table 1: for each sampler and number of local workers (``n_jobs``), the trials over all seeds
whose config repeats an earlier trial's, of ``--trials`` trials a run on SQLite (the objective
sleeps 20 ms). Table 2: the median time of ``Study.ask`` in one process (the second half of
``--ask-trials`` sequential trials, median over ``--repeats`` runs), which the check makes
longer by one read of the newest trials' configs.

Run in ``.venv``; to compare with an earlier commit, put its ``src`` first on ``PYTHONPATH``::

    python benchmarks/twins.py --seeds 5
    PYTHONPATH=/tmp/before/src python benchmarks/twins.py --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

from _machine import machine  # benchmarks/_machine.py (the script's folder)

import tunecraft as tc

SPACE = {"x": tc.uniform(0.0, 1.0), "k": tc.integer(1, 5)}
OPTIONS: dict[str, dict[str, Any]] = {"grid": {"n_points": 16}}  # 80 points: never exhausted


def objective(trial: Any) -> float:
    time.sleep(0.02)
    return float(-trial.config["x"] + 0.1 * trial.config["k"])


def repeats(sampler: str, n_jobs: int, trials: int, seed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        study = tc.Study(
            SPACE,
            storage=f"sqlite:///{tmp}/twins.db",
            sampler=tc.make_sampler(sampler, seed=seed, options=OPTIONS.get(sampler)),
        )
        study.optimize(objective, n_trials=trials, n_jobs=n_jobs)
        configs = [(t.config["x"], t.config["k"]) for t in study.trials]
        study.storage.close()
    return len(configs) - len(set(configs))


def ask_ms(sampler: str, storage: str, trials: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        study = tc.Study(
            SPACE,
            storage=None if storage == "memory" else f"sqlite:///{tmp}/ask.db",
            sampler=tc.make_sampler(sampler, seed=0, options=OPTIONS.get(sampler)),
        )
        times = []
        for _ in range(trials):
            started = time.perf_counter()
            trial = study.ask()
            times.append(time.perf_counter() - started)
            study.tell(trial, float(trial.config["x"]))
        study.storage.close()
    return 1000 * statistics.median(times[trials // 2 :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", nargs="+", default=["gp", "auto", "grid", "tpe"])
    parser.add_argument("--jobs", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--ask-trials", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {machine()}; tunecraft from {tc.__file__}")
    if args.seeds:  # --seeds 0: only the timing
        print(f"\n| sampler | n_jobs | repeated configs ({args.seeds} runs of {args.trials}) |")
        print("|:--|--:|--:|")
        for sampler in args.samplers:
            for n_jobs in args.jobs:
                n = sum(repeats(sampler, n_jobs, args.trials, seed) for seed in range(args.seeds))
                print(f"| {sampler} | {n_jobs} | {n} |", flush=True)
    print(f"\n| sampler | storage | ask, ms (median of {args.repeats}) |")
    print("|:--|:--|--:|")
    for sampler in args.samplers:
        for storage in ("memory", "sqlite"):
            runs = [ask_ms(sampler, storage, args.ask_trials) for _ in range(args.repeats)]
            print(f"| {sampler} | {storage} | {statistics.median(runs):.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""Transfer from earlier studies on LCBench: a portfolio against the best of each study.

``load_prior`` turns earlier studies into configurations to run first. With several studies it
can take the best of each in turn (``select="best"``) or the configurations that *together* do
best across them (``select="portfolio"``, the default). This script measures both the way the
multi-fidelity benchmark uses them: the earlier studies are ``PRIOR_CONFIGS`` random
configurations trained for 52 epochs on each of the 26 LCBench instances the benchmark never
scores (:func:`multifidelity.lcbench_prior_studies`); the targets are the five it scores. Per
target, method and ``k`` (configurations transferred) it counts the seeds (each a fresh draw
of the earlier studies' configurations) where the best of the ``k`` reaches ``target``: the
median, over 2000 bootstrap draws of 50 of ``--configs`` random configurations, of their best
final validation error (what full-budget random search's final error estimates; the
multi-fidelity benchmark's one-tenth target). ``random`` is the chance that ``k`` random
configurations do, ``1 - (1 - share) ** k``, times the seeds.

Run in the LCBench venv (see docs/benchmarks.md)::

    python benchmarks/lcbench_transfer.py --seeds 10
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from _machine import machine  # benchmarks/_machine.py (the script's folder)
from multifidelity import _BENCHES, _LCB_SPACE, lcbench, lcbench_point, lcbench_prior_studies

import tunecraft as tc
from tunecraft.strategy import load_prior

TARGETS = ("3945", "7593", "34539", "126025", "126026")
RUNS = 50  # full-budget random search: 50 trainings of 52 epochs
KS = (1, 2, 3, 5)


def final_error(instance: str, configs: list[dict[str, Any]]) -> np.ndarray:
    rows = [dict(x, epoch=52, OpenML_task_id=instance) for x in configs]
    out = _BENCHES[instance].objective_function(rows)
    return np.array([100.0 - float(r["val_accuracy"]) for r in out])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--configs", type=int, default=5000, help="random configurations per target")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1, got {args.seeds}")
    t0 = time.perf_counter()
    space = tc.space.Space(_LCB_SPACE)
    rng = np.random.default_rng(7)
    pool = [lcbench_point(space.sample(rng)) for _ in range(args.configs)]
    target, share = {}, {}
    for inst in TARGETS:
        lcbench(inst)
        errors = final_error(inst, pool)
        boot = np.random.default_rng(0)
        best = [errors[boot.choice(len(errors), RUNS)].min() for _ in range(2000)]
        target[inst] = float(np.median(best))
        share[inst] = float((errors <= target[inst]).mean())
    hits = {(m, i, k): 0 for m in ("best", "portfolio") for i in TARGETS for k in KS}
    for seed in range(args.seeds):
        studies = lcbench_prior_studies(seed)
        for method in ("best", "portfolio"):
            chosen = load_prior(studies, space, k=max(KS), select=method, seed=seed)
            for inst in TARGETS:
                reached = np.minimum.accumulate(final_error(inst, [c.config for c in chosen]))
                for k in KS:
                    hits[method, inst, k] += bool(reached[k - 1] <= target[inst])
    print(machine(), f"; {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    ks = " | ".join(f"k={k}" for k in KS)
    print(f"| target | random's final (share) | method | {ks} |")
    print("|:--|--:|:--|" + "--:|" * len(KS))
    for inst in TARGETS:
        chance = " | ".join(f"{args.seeds * (1 - (1 - share[inst]) ** k):.1f}" for k in KS)
        print(f"| {inst} | {target[inst]:.2f} ({share[inst]:.3f}) | random | {chance} |")
        for method in ("best", "portfolio"):
            cells = " | ".join(str(hits[method, inst, k]) for k in KS)
            print(f"| | | {method} | {cells} |")
    for method in ("best", "portfolio"):
        total = " / ".join(str(sum(hits[method, i, k] for i in TARGETS)) for k in KS)
        print(f"\n{method}: {total} of {args.seeds * len(TARGETS)} (k = {KS})", end="")
    print(f"\n\ncells: seeds of {args.seeds} where the best of the first k reaches the target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

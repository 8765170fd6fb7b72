"""Can validation choose among good configurations? A pipeline task's landscape, measured.

For each repetition's split of a ``benchmarks/pipeline.py`` task, ``--configs`` random
configurations are trained at full fidelity and scored on the validation split (seed 0) and
by the benchmark's truth (5 fresh seeds, test split). Printed per split: the best validation
error and how many configurations tie at it, the truth of the best fifth by validation, and
Spearman's correlation between validation error and truth, over all configurations and
within the best fifth. A last table correlates each hyperparameter with the truth among the
configurations whose validation error is at most ``--good``.

When the correlation within the best fifth is near zero, choosing among good configurations
by validation is a draw, whoever does the choosing: a method's true error there is set by
which good configuration it happens to pick (``docs/benchmarks.md``, the pipeline section).

Run (cancer, as below, takes about 11 minutes on two cores)::

    python benchmarks/pipeline_landscape.py --task cancer-sklearn --reps 10 --configs 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from typing import Any

import numpy as np
from pipeline import Meter, make_task, truth  # benchmarks/pipeline.py (the script's folder)
from scipy.stats import spearmanr

import tunecraft as tc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="cancer-sklearn")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--configs", type=int, default=100)
    parser.add_argument(
        "--good", type=float, default=3.6, help="validation error (%%) that counts as good"
    )
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    if args.configs < 10:
        parser.error(
            f"--configs must be at least 10 (a fifth of them is correlated), got {args.configs}"
        )
    warnings.simplefilter("ignore")
    rows: list[dict[str, Any]] = []
    print(
        "| split | best validation % | ties | truth of the best fifth (mean) | lowest truth "
        "| rho(validation, truth) | rho within the best fifth |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|")
    within: list[float] = []
    for rep in range(args.reps):
        task = make_task(args.task, Meter(), rep)
        space = tc.space.Space(task.space)
        rng = np.random.default_rng(1000 + rep)
        here = []
        for _ in range(args.configs):
            config = space.sample(rng)
            val = task.train(config, task.max_fidelity, 0, "validation")
            here.append({"config": config, "val": val, "truth": truth(task, config)})
        rows += here
        v = np.array([r["val"] for r in here])
        t = np.array([r["truth"] for r in here])
        fifth = v <= np.percentile(v, 20)
        rho_fifth = float(spearmanr(v[fifth], t[fifth])[0])
        within.append(rho_fifth)
        print(
            f"| {rep} | {v.min():.2f} | {int((v <= v.min() + 1e-9).sum())} | "
            f"{t[fifth].mean():.2f} | {t.min():.2f} | {float(spearmanr(v, t)[0]):.2f} "
            f"| {rho_fifth:.2f} |"
        )
    print(
        f"\nrho within the best fifth: median {statistics.median(within):.3f}, "
        f"range {min(within):.2f} to {max(within):.2f}"
    )
    good = [r for r in rows if r["val"] <= args.good]
    print(f"\nAmong the {len(good)} configurations with validation error <= {args.good}:\n")
    print("| hyperparameter | rho with truth |")
    print("|:--|--:|")
    t_good = [r["truth"] for r in good]
    for name in space.names:
        xs = [r["config"][name] for r in good]
        if len(good) < 3 or not all(isinstance(x, (int, float)) for x in xs):
            continue
        print(f"| {name} | {float(spearmanr(xs, t_good)[0]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

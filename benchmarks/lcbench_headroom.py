"""How much an LCBench instance lets a scheduler do within one tenth of the budget.

The multi-fidelity benchmark (``benchmarks/multifidelity.py``) asks tunecraft's default
scheduler to reach the final error of full-budget random search (50 trainings of 52 epochs)
within one tenth of those epochs: 260, the cost of five full trainings. This script reads that
target off the surrogate itself. It draws ``--configs`` random configurations, computes their
whole learning curves once, and reports per instance:

* ``target``: the median, over 2000 bootstrap draws of 50 configurations, of the best final
  error (what random search's final error estimates), and ``share``: the fraction of
  configurations at or below it.
* ``random, 5 runs``: the probability that five full trainings of random configurations
  (one tenth of the budget) reach the target: ``1 - (1 - share) ** 5``.
* ``best fixed halving``: the successive-halving schedule with the highest probability of
  reaching the target within one tenth, chosen knowing every curve: ``N`` random
  configurations trained to epoch ``r``, the best ``k`` of them trained on to epoch 52
  (``N * r + k * (52 - r) <= 260``). It uses no model, so it says what selection on early
  epochs alone can do. It is not a bound on adaptive or model-based methods.
* Per epoch ``r``: Spearman's correlation between the error at ``r`` and at 52 over all
  configurations, and the *recall* of the top third: the share of the configurations at or
  below the target that rank in the top third at ``r`` (what a rung at ``r`` with reduction
  factor 3 keeps).

Run in the LCBench venv (see docs/benchmarks.md)::

    python benchmarks/lcbench_headroom.py --instance-ids 3945,7593,34539,126025,126026
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from _machine import machine  # benchmarks/_machine.py (the script's folder)
from multifidelity import _BENCHES, SurrogateRun, lcbench
from scipy.stats import spearmanr

import tunecraft as tc

EPOCHS = 52
RUNS = 50  # full-budget random search: 50 trainings of EPOCHS epochs
SHARE = 10  # the target: within one tenth of the budget
CHECKED = (1, 2, 3, 6, 9, 17, 27)


def curves(instance: str, n: int, seed: int) -> np.ndarray:
    """Validation error (percent) of ``n`` random configurations at epochs 1-52."""
    problem = lcbench(instance)
    space = tc.space.Space(problem.space)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        run = problem.start(space.sample(rng), 0)
        assert isinstance(run, SurrogateRun)
        rows += [dict(run.x, epoch=e, OpenML_task_id=instance) for e in range(1, EPOCHS + 1)]
    out = _BENCHES[instance].objective_function(rows)
    return np.array([100.0 - float(r["val_accuracy"]) for r in out]).reshape(n, EPOCHS)


@dataclass
class Headroom:
    target: float
    share: float
    random: float
    halving: tuple[float, int, int, int]  # P(target), r, N, k
    by_epoch: list[tuple[int, float, float]]  # epoch, Spearman with epoch 52, recall


def headroom(c: np.ndarray, draws: int, seed: int) -> Headroom:
    n = len(c)
    final = c[:, -1]
    rng = np.random.default_rng(seed)
    target = float(np.median([final[rng.choice(n, RUNS)].min() for _ in range(2000)]))
    good = final <= target
    share = float(good.mean())
    budget = RUNS * EPOCHS // SHARE
    by_epoch = []
    for r in CHECKED:
        top = np.argsort(c[:, r - 1], kind="stable")[: n // 3]
        recall = float(good[top].sum() / max(good.sum(), 1))
        by_epoch.append((r, float(spearmanr(c[:, r - 1], final).statistic), recall))
    best: tuple[float, int, int, int] = (0.0, 0, 0, 0)
    for r in (1, 2, 3, 6, 9, 17):
        for k in range(1, 6):
            m = (budget - k * (EPOCHS - r)) // r
            if m < k:
                continue
            hits = 0
            for _ in range(draws):
                idx = rng.choice(n, m, replace=False)
                chosen = idx[np.argsort(c[idx, r - 1], kind="stable")[:k]]
                hits += bool(final[chosen].min() <= target)
            best = max(best, (hits / draws, r, m, k))
    return Headroom(target, share, 1 - (1 - share) ** (budget // EPOCHS), best, by_epoch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instance-ids", default="3945,7593,34539,126025,126026")
    ap.add_argument("--configs", type=int, default=2000, help="random configurations drawn")
    ap.add_argument("--draws", type=int, default=2000, help="draws per halving schedule")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = {}
    for inst in args.instance_ids.split(","):
        t0 = time.perf_counter()
        c = curves(inst, args.configs, args.seed)
        rows[inst] = headroom(c, args.draws, args.seed)
        print(f"{inst:>8}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(machine(), file=sys.stderr)
    print(
        "| instance | target | share | random, 5 runs | best fixed halving (r, N, k) | P(target) |"
    )
    print("|:--|--:|--:|--:|:--|--:|")
    for inst, h in rows.items():
        p, r, m, k = h.halving
        print(
            f"| {inst} | {h.target:.2f} | {h.share:.3f} | {h.random:.2f} "
            f"| {r}, {m}, {k} | {p:.2f} |"
        )
    print()
    head = " | ".join(f"epoch {r}" for r in CHECKED)
    print(f"| instance | {head} |")
    print("|:--|" + "--:|" * len(CHECKED))
    for inst, h in rows.items():
        cells = " | ".join(f"{rho:.2f} / {rec:.2f}" for _, rho, rec in h.by_epoch)
        print(f"| {inst} | {cells} |")
    print("\ncells: Spearman with epoch 52 / recall of the top third (see the docstring)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

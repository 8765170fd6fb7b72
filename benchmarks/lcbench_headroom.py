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
* With ``--beyond DRAWS``: whether learning-curve extrapolation or a model fitted to the short
  runs would do better than selection (see :func:`beyond`).
* With ``--two-rungs DRAWS``: the best schedule with two rungs, chosen knowing every curve
  (see :func:`two_rungs`): ``N`` configurations to epoch ``r1``, the best ``n2`` of them on to
  ``r2``, the best ``k`` of those on to 52.

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
    return sample(instance, n, seed)[1]


def sample(instance: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random configurations (one row each, on the unit cube of the space) and their
    validation error (percent) at epochs 1-52."""
    problem = lcbench(instance)
    space = tc.space.Space(problem.space)
    rng = np.random.default_rng(seed)
    rows, unit = [], []
    for _ in range(n):
        config = space.sample(rng)
        unit.append(space.to_unit(config))
        run = problem.start(config, 0)
        assert isinstance(run, SurrogateRun)
        rows += [dict(run.x, epoch=e, OpenML_task_id=instance) for e in range(1, EPOCHS + 1)]
    out = _BENCHES[instance].objective_function(rows)
    errors = np.array([100.0 - float(r["val_accuracy"]) for r in out]).reshape(n, EPOCHS)
    return np.asarray(unit), errors


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


@dataclass
class Beyond:
    """What could look past selection on one early epoch (``--beyond``)."""

    extrapolated: list[tuple[int, float, float]]  # epoch r, Spearman raw / log-linear fit
    learnable: float  # Spearman of a forest's prediction of the final error, 1000 configs
    halving: float  # P(target): 28 random configs to epoch 6, the best 2 of them to 52
    proposed: float  # P(target): a forest fitted to those 28 picks 2 new configs for 52


def beyond(x: np.ndarray, c: np.ndarray, target: float, draws: int, seed: int) -> Beyond:
    """Two ideas past a fixed halving schedule, checked on the stored curves.

    * Learning-curve extrapolation: rank configurations by a line fitted to their error
      against log(epoch) over epochs 1..r, extended to epoch 52, instead of by the error at r.
    * A model that proposes: the best fixed schedule on 126025 trains 28 configurations to
      epoch 6 and 2 of them on. Here a random forest (scikit-learn) fitted to those 28
      epoch-6 errors ranks 300 fresh random configurations, and its best 2 go to epoch 52:
      could a model of the first 168 epochs propose better than it can select?
    """
    from sklearn.ensemble import RandomForestRegressor

    n = len(c)
    final = c[:, -1]
    extrapolated = []
    for r in (2, 3, 6, 9):
        design = np.vstack([np.log(np.arange(1, r + 1)), np.ones(r)]).T
        coef = np.linalg.lstsq(design, c[:, :r].T, rcond=None)[0]
        line = coef[0] * np.log(EPOCHS) + coef[1]
        extrapolated.append(
            (
                r,
                float(spearmanr(c[:, r - 1], final).statistic),
                float(spearmanr(line, final).statistic),
            )
        )
    half = n // 2
    forest = RandomForestRegressor(200, min_samples_leaf=3, random_state=seed)
    forest.fit(x[:half], final[:half])
    learnable = float(spearmanr(forest.predict(x[half:]), final[half:]).statistic)
    rng = np.random.default_rng(seed)
    r, m, k = 6, 28, 2
    hits_halving = hits_proposed = 0
    for d in range(draws):
        seen = rng.choice(half, m, replace=False)
        best_seen = seen[np.argsort(c[seen, r - 1], kind="stable")[:k]]
        hits_halving += bool(final[best_seen].min() <= target)
        model = RandomForestRegressor(100, min_samples_leaf=2, random_state=d)
        model.fit(x[seen], c[seen, r - 1])
        fresh = half + rng.choice(n - half, 300, replace=False)
        picked = fresh[np.argsort(model.predict(x[fresh]), kind="stable")[:k]]
        hits_proposed += bool(final[picked].min() <= target)
    return Beyond(extrapolated, learnable, hits_halving / draws, hits_proposed / draws)


@dataclass
class TwoRungs:
    chance: float  # P(target), re-estimated on fresh draws
    n: int
    r1: int
    n2: int
    r2: int
    k: int


def _two_rung_chance(
    c: np.ndarray, target: float, plan: tuple[int, int, int, int, int], draws: int, seed: int
) -> float:
    n, r1, n2, r2, k = plan
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        idx = rng.choice(len(c), n, replace=False)
        first = idx[np.argsort(c[idx, r1 - 1], kind="stable")[:n2]]
        chosen = first[np.argsort(c[first, r2 - 1], kind="stable")[:k]]
        hits += bool(c[chosen, -1].min() <= target)
    return hits / draws


def two_rungs(c: np.ndarray, target: float, draws: int, seed: int) -> TwoRungs:
    """The best fixed schedule with two rungs within one tenth of the budget, knowing the curves.

    ``N`` random configurations to epoch ``r1``, the best ``n2`` on to ``r2``, the best ``k`` on
    to 52, with ``N * r1 + n2 * (r2 - r1) + k * (52 - r2) <= 260``. Every schedule on a grid
    (``r1`` in 1, 2, 3, 4, 6; ``r2`` in 3 ... 27; ``k`` in 1-3; ``n2`` even) is scored on
    ``draws`` draws; the 8 best are scored again on ``10 * draws`` fresh ones (so the winner's
    chance is not the luckiest estimate), and the best of those is returned.
    """
    budget = RUNS * EPOCHS // SHARE
    scored = []
    for r1 in (1, 2, 3, 4, 6):
        for r2 in (3, 4, 6, 9, 12, 17, 27):
            if r2 <= r1:
                continue
            for k in (1, 2, 3):
                for n2 in range(k + 1, 60, 2):
                    n = (budget - n2 * (r2 - r1) - k * (EPOCHS - r2)) // r1
                    if n2 <= n <= len(c) // 2:
                        plan = (n, r1, n2, r2, k)
                        scored.append((_two_rung_chance(c, target, plan, draws, seed), plan))
    scored.sort(reverse=True)
    again = [
        (_two_rung_chance(c, target, plan, 10 * draws, seed + 1), plan) for _, plan in scored[:8]
    ]
    chance, plan = max(again)
    return TwoRungs(chance, *plan)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instance-ids", default="3945,7593,34539,126025,126026")
    ap.add_argument("--configs", type=int, default=2000, help="random configurations drawn")
    ap.add_argument("--draws", type=int, default=2000, help="draws per halving schedule")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--beyond",
        type=int,
        default=0,
        metavar="DRAWS",
        help="also check learning-curve extrapolation and a model that proposes (see beyond())",
    )
    ap.add_argument(
        "--two-rungs",
        type=int,
        default=0,
        metavar="DRAWS",
        help="also search the fixed schedules with two rungs (see two_rungs())",
    )
    args = ap.parse_args(argv)
    for name in ("configs", "draws", "beyond", "two_rungs"):
        optional = name in ("beyond", "two_rungs")
        if getattr(args, name) < (0 if optional else 1):
            flag = name.replace("_", "-")
            ap.error(f"--{flag} must be {'>= 0' if optional else '>= 1'}")
    rows = {}
    more = {}
    rungs: dict[str, TwoRungs] = {}
    for inst in args.instance_ids.split(","):
        t0 = time.perf_counter()
        x, c = sample(inst, args.configs, args.seed)
        rows[inst] = headroom(c, args.draws, args.seed)
        if args.beyond:
            more[inst] = beyond(x, c, rows[inst].target, args.beyond, args.seed)
        if args.two_rungs:
            rungs[inst] = two_rungs(c, rows[inst].target, args.two_rungs, args.seed)
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
    if more:
        print()
        head = " | ".join(f"epoch {r}" for r, _, _ in next(iter(more.values())).extrapolated)
        print(
            f"| instance | {head} | forest on 1000 finals | 28 at epoch 6, best 2 to 52 "
            "| a forest on those 28 proposes 2 |"
        )
        print("|:--|" + "--:|" * (len(more[next(iter(more))].extrapolated) + 3))
        for inst, b in more.items():
            cells = " | ".join(f"{raw:.2f} / {ext:.2f}" for _, raw, ext in b.extrapolated)
            print(f"| {inst} | {cells} | {b.learnable:.2f} | {b.halving:.2f} | {b.proposed:.2f} |")
        print(
            "\nepoch cells: Spearman with epoch 52 of the error at that epoch / of a line in "
            "log(epoch) through epochs 1..r extended to 52; the last two: P(target)"
        )
    if rungs:
        print()
        print(
            "| instance | best fixed halving, one rung "
            "| best with two rungs (N@r1 -> n2@r2 -> k@52) | its chance |"
        )
        print("|:--|--:|:--|--:|")
        for inst, t in rungs.items():
            print(
                f"| {inst} | {rows[inst].halving[0]:.2f} | {t.n}@{t.r1} -> {t.n2}@{t.r2} -> "
                f"{t.k}@52 | {t.chance:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

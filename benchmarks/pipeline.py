"""Budgeted pipeline benchmark: ``tunecraft.strategy.tune`` against the usual ways to search.

Tasks, each with a real fidelity and real seed noise:

* ``digits-mlp``: a small PyTorch MLP on scikit-learn's digits, epochs as the fidelity.
* ``cancer-sklearn``: scikit-learn's ``MLPClassifier`` on breast cancer, ``partial_fit``
  iterations (epochs) as the fidelity.
* ``lcbench/<id>``: the LCBench surrogate of YAHPO Gym (needs ``yahpo-gym`` and the data in
  ``../shared/data/yahpo``): search on its validation metric, truth on its test metric. The
  surrogate has no seed noise of its own; Gaussian noise (sd 1 point, seeded) is added to what a
  method observes, never to the truth.

Every dataset is split into train / validation / holdout / test, anew for each repetition.
Search methods see the validation error; tunecraft's final validation phase scores its
finalists on the holdout; nobody sees the test split.

Methods, same total compute (epochs; every epoch any method trains counts, final validation
included):

* ``tunecraft``: ``tc.strategy.tune`` with its default phases (explore / refine / validate);
  the finalist is chosen on full-fidelity validation runs and the holdout only scores it.
* ``tunecraft-holdout``: the same with ``select="holdout"`` (the finalist chosen on the
  holdout, whose score it then reports).
* ``tunecraft+prior`` (LCBench only): ``tunecraft`` given ``prior=`` earlier studies on the
  26 LCBench instances no benchmark scores (``multifidelity.lcbench_prior_studies``, on the
  balanced validation error used here): the transfer phase runs five of their
  configurations first.
* ``random``: random search at full fidelity.
* ``optuna-median``: Optuna TPE + ``MedianPruner``.
* ``optuna-hb``: Optuna TPE + ``HyperbandPruner``.

Each peer picks its best trial as usual and claims that trial's validation error; tunecraft
claims ``result.score`` (its holdout estimate). Truth: the chosen configuration retrained at
full fidelity with 5 fresh seeds, scored on the test split, averaged. Reported per task and
method, median over repetitions: true test error, claimed error, gap (claimed - true) and the
compute used. A second table sets each tunecraft row against each peer repetition by
repetition (wins / losses, and 90 % paired-bootstrap intervals of the differences in true error
and in abs gap), which says whether a difference between two medians is more than the
repetitions' noise.

Run::

    python benchmarks/pipeline.py --tasks digits-mlp cancer-sklearn --reps 10
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from _machine import (  # benchmarks/_machine.py (the script's folder)
    PORTABLE_HELP,
    machine,
    portable_numerics,
)
from _stats import paired  # benchmarks/_stats.py

import tunecraft as tc

TRUTH_SEEDS = (10_001, 10_002, 10_003, 10_004, 10_005)


# -- tasks ---------------------------------------------------------------------------------------
class Meter:
    """Counts the epochs every method trains."""

    def __init__(self) -> None:
        self.epochs = 0

    def add(self, n: int = 1) -> None:
        self.epochs += n


@dataclass
class Task:
    """``train(config, epochs, seed, split, on_epoch)`` returns the error (percent) on ``split``.

    ``on_epoch(epoch, validation_error)`` is called after every epoch and returns True to stop.
    """

    name: str
    max_fidelity: int
    space: dict[str, Any]
    optuna_space: Callable[[Any], dict[str, Any]]
    train: Callable[..., float]


def _splits(x: np.ndarray, y: np.ndarray, rep: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """50% train, 20% validation, 15% holdout, 15% test, drawn anew for each repetition.

    Fixed splits would add the same holdout-vs-test offset to every repetition's gap.
    """
    from sklearn.model_selection import train_test_split

    xtr, xrest, ytr, yrest = train_test_split(x, y, test_size=0.5, random_state=rep, stratify=y)
    xva, xrest, yva, yrest = train_test_split(
        xrest, yrest, test_size=0.6, random_state=rep, stratify=yrest
    )
    xho, xte, yho, yte = train_test_split(
        xrest, yrest, test_size=0.5, random_state=rep, stratify=yrest
    )
    return {
        "train": (xtr, ytr),
        "validation": (xva, yva),
        "holdout": (xho, yho),
        "test": (xte, yte),
    }


_DIGITS_SPACE = {
    "lr": tc.loguniform(1e-3, 1.0),
    "momentum": tc.uniform(0.0, 0.99),
    "weight_decay": tc.loguniform(1e-6, 1e-1),
    "batch_size": tc.choice([16, 32, 64, 128, 256]),
    "width": tc.integer(8, 256, log=True),
    "dropout": tc.uniform(0.0, 0.7),
}


def _digits_optuna(trial: Any) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", 1e-3, 1.0, log=True),
        "momentum": trial.suggest_float("momentum", 0.0, 0.99),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256]),
        "width": trial.suggest_int("width", 8, 256, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.7),
    }


def digits_mlp(meter: Meter, rep: int, max_epochs: int = 20) -> Task:
    import torch
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    data = {
        k: (torch.tensor(a / 16.0, dtype=torch.float32), torch.tensor(b))
        for k, (a, b) in _splits(x, y, rep).items()
    }

    def train(
        config: dict[str, Any],
        epochs: int,
        seed: int,
        split: str,
        on_epoch: Callable[[int, float], bool] | None = None,
    ) -> float:
        torch.manual_seed(seed)
        width = int(config["width"])
        model = torch.nn.Sequential(
            torch.nn.Linear(64, width),
            torch.nn.ReLU(),
            torch.nn.Dropout(float(config["dropout"])),
            torch.nn.Linear(width, 10),
        )
        opt = torch.optim.SGD(
            model.parameters(),
            lr=float(config["lr"]),
            momentum=float(config["momentum"]),
            weight_decay=float(config["weight_decay"]),
        )
        gen = torch.Generator().manual_seed(seed)
        xtr, ytr = data["train"]
        batch = int(config["batch_size"])

        def error(name: str) -> float:
            model.eval()
            xs, ys = data[name]
            with torch.no_grad():
                out = model(xs)
            if not torch.isfinite(out).all():
                return 100.0
            return 100.0 * float((out.argmax(1) != ys).float().mean())

        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(xtr), generator=gen)
            for i in range(0, len(xtr), batch):
                idx = order[i : i + batch]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
                if not torch.isfinite(loss):
                    break
                loss.backward()
                opt.step()
            meter.add()
            if on_epoch is not None and on_epoch(epoch, error("validation")):
                break
        return error(split)

    return Task("digits-mlp", max_epochs, _DIGITS_SPACE, _digits_optuna, train)


_CANCER_SPACE = {
    "alpha": tc.loguniform(1e-6, 1.0),
    "learning_rate_init": tc.loguniform(1e-4, 1e-1),
    "width": tc.integer(4, 128, log=True),
    "batch_size": tc.choice([8, 16, 32, 64, 128]),
}


def _cancer_optuna(trial: Any) -> dict[str, Any]:
    return {
        "alpha": trial.suggest_float("alpha", 1e-6, 1.0, log=True),
        "learning_rate_init": trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True),
        "width": trial.suggest_int("width", 4, 128, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32, 64, 128]),
    }


def cancer_sklearn(meter: Meter, rep: int, max_epochs: int = 30) -> Task:
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    parts = _splits(x, y, rep)
    scaler = StandardScaler().fit(parts["train"][0])
    data = {k: (scaler.transform(a), b) for k, (a, b) in parts.items()}
    classes = np.unique(y)

    def train(
        config: dict[str, Any],
        epochs: int,
        seed: int,
        split: str,
        on_epoch: Callable[[int, float], bool] | None = None,
    ) -> float:
        model = MLPClassifier(
            hidden_layer_sizes=(int(config["width"]),),
            alpha=float(config["alpha"]),
            learning_rate_init=float(config["learning_rate_init"]),
            batch_size=int(config["batch_size"]),
            random_state=seed,
        )
        xtr, ytr = data["train"]
        rng = np.random.default_rng(seed)

        def error(name: str) -> float:
            xs, ys = data[name]
            return 100.0 * float((model.predict(xs) != ys).mean())

        for epoch in range(epochs):
            order = rng.permutation(len(xtr))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.partial_fit(xtr[order], ytr[order], classes=classes)
            meter.add()
            if on_epoch is not None and on_epoch(epoch, error("validation")):
                break
        return error(split)

    return Task("cancer-sklearn", max_epochs, _CANCER_SPACE, _cancer_optuna, train)


def lcbench(meter: Meter, instance: str) -> Task:
    import contextlib
    import io

    from multifidelity import _LCB_SPACE, YAHPO_DATA, _lcb_optuna, lcbench_point  # same problem
    from yahpo_gym import benchmark_set, local_config

    local_config.init_config()
    local_config.set_data_path(os.path.abspath(YAHPO_DATA))
    with contextlib.redirect_stdout(io.StringIO()):
        bench = benchmark_set.BenchmarkSet("lcbench")
    bench.set_instance(instance)
    cache: dict[tuple[Any, ...], list[dict[str, float]]] = {}

    def curves(config: dict[str, Any]) -> list[dict[str, float]]:
        x = lcbench_point(config)
        key = tuple(sorted(x.items()))
        if key not in cache:
            xs = [dict(x, epoch=e, OpenML_task_id=instance) for e in range(1, 53)]
            cache[key] = bench.objective_function(xs)
        return cache[key]

    def train(
        config: dict[str, Any],
        epochs: int,
        seed: int,
        split: str,
        on_epoch: Callable[[int, float], bool] | None = None,
    ) -> float:
        res = curves(config)
        noise = np.random.default_rng([seed, 7]).normal(0.0, 1.0, size=52)
        last = 0
        for epoch in range(epochs):
            last = epoch
            meter.add()
            val = 100.0 - float(res[epoch]["val_balanced_accuracy"]) * 100.0 + noise[epoch]
            if on_epoch is not None and on_epoch(epoch, val):
                break
        if split == "test":
            return 100.0 - float(res[last]["test_balanced_accuracy"]) * 100.0
        # one validation metric: the holdout is the same with fresh noise
        extra = np.random.default_rng([seed, 11]).normal(0.0, 1.0)
        val = 100.0 - float(res[last]["val_balanced_accuracy"]) * 100.0
        return val + (extra if split == "holdout" else noise[last])

    return Task(f"lcbench/{instance}", 52, _LCB_SPACE, _lcb_optuna, train)


# -- methods -------------------------------------------------------------------------------------
@dataclass
class Outcome:
    config: dict[str, Any]
    claimed: float
    epochs: int
    seconds: float


#: Extra keyword arguments for ``tune`` (``--tc-options``).
TC_OPTIONS: dict[str, Any] = {}


def run_tunecraft(
    task: Task,
    budget: int,
    seed: int,
    meter: Meter,
    *,
    select: str = "validation",
    prior: bool = False,
) -> Outcome:
    from tunecraft.strategy import tune

    options = dict(TC_OPTIONS)
    if prior:  # earlier studies on the 26 LCBench instances no benchmark scores
        from multifidelity import lcbench_prior_studies

        options["prior"] = lcbench_prior_studies(seed, metric="val_balanced_accuracy")

    def objective(trial: Any) -> float:
        def on_epoch(epoch: int, value: float) -> bool:
            trial.report(value, step=epoch)
            return bool(trial.should_stop())

        epochs = int(trial.budget or task.max_fidelity)
        return task.train(trial.config, epochs, int(trial.seed or 0), trial.split, on_epoch)

    start = time.perf_counter()
    result = tune(
        objective,
        task.space,
        budget=budget,
        direction="minimize",
        max_fidelity=task.max_fidelity,
        seed=seed,
        select=select,
        verbose=False,
        **options,
    )
    if result.score is None:
        raise RuntimeError(f"tc.tune ({select}) validated no finalist within {budget} epochs")
    return Outcome(
        dict(result.best_config), float(result.score), meter.epochs, time.perf_counter() - start
    )


def run_random(task: Task, budget: int, seed: int, meter: Meter) -> Outcome:
    start = time.perf_counter()
    sampler = tc.make_sampler("random", seed=seed)
    space = tc.Space(task.space)
    best: tuple[float, dict[str, Any]] | None = None
    number = 0
    while meter.epochs + task.max_fidelity <= budget:
        config = sampler.suggest(space, _empty_history(), number)
        value = task.train(config, task.max_fidelity, seed * 1000 + number, "validation")
        number += 1
        if best is None or value < best[0]:
            best = (value, config)
    assert best is not None, "budget too small for one full-fidelity run"
    return Outcome(best[1], best[0], meter.epochs, time.perf_counter() - start)


def _empty_history() -> Any:
    from tunecraft.samplers import History

    return History([], "minimize")


def run_optuna(task: Task, budget: int, seed: int, meter: Meter, *, pruner: str) -> Outcome:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if pruner == "median":
        p: Any = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    else:
        p = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=task.max_fidelity)
    # A fixed name: HyperbandPruner assigns brackets by a hash of the study name, and the
    # default name is random, which made its results differ from run to run.
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=p,
        study_name=f"{pruner}-{seed}",
    )
    start = time.perf_counter()

    def objective(trial: Any) -> float:
        config = task.optuna_space(trial)
        reached = [0]

        def on_epoch(epoch: int, value: float) -> bool:
            reached[0] = epoch + 1
            trial.report(value, step=epoch)
            return bool(trial.should_prune()) or meter.epochs >= budget

        value = task.train(
            config, task.max_fidelity, seed * 1000 + trial.number, "validation", on_epoch
        )
        if reached[0] < task.max_fidelity:  # pruned, or cut off by the end of the budget
            raise optuna.TrialPruned()
        return value

    while meter.epochs < budget:
        study.optimize(objective, n_trials=1)
    complete = [
        (float(t.value), t)
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
    ]
    if not complete:
        raise RuntimeError(f"optuna ({pruner}) completed no trial within {budget} epochs")
    value, best = min(complete, key=lambda vt: vt[0])
    return Outcome(dict(best.params), value, meter.epochs, time.perf_counter() - start)


METHODS: dict[str, Callable[..., Outcome]] = {
    "tunecraft": run_tunecraft,
    "tunecraft-holdout": lambda t, b, s, m: run_tunecraft(t, b, s, m, select="holdout"),
    "tunecraft+prior": lambda t, b, s, m: run_tunecraft(t, b, s, m, prior=True),
    "random": run_random,
    "optuna-median": lambda t, b, s, m: run_optuna(t, b, s, m, pruner="median"),
    "optuna-hb": lambda t, b, s, m: run_optuna(t, b, s, m, pruner="hyperband"),
}


def truth(task: Task, config: dict[str, Any]) -> float:
    """The chosen config retrained at full fidelity with fresh seeds, on the unseen test split."""
    return statistics.fmean(task.train(config, task.max_fidelity, s, "test") for s in TRUTH_SEEDS)


# -- main ----------------------------------------------------------------------------------------
def make_task(name: str, meter: Meter, rep: int) -> Task:
    if name == "digits-mlp":
        return digits_mlp(meter, rep)
    if name == "cancer-sklearn":
        return cancer_sklearn(meter, rep)
    if name.startswith("lcbench/"):
        return lcbench(meter, name.split("/", 1)[1])
    raise SystemExit(f"unknown task {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["digits-mlp", "cancer-sklearn"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument(
        "--first-rep", type=int, default=0, help="run repetitions first-rep .. first-rep+reps-1"
    )
    parser.add_argument(
        "--budget-full", type=int, default=20, help="budget in full-fidelity trainings"
    )
    parser.add_argument(
        "--tc-options", default="{}", help='JSON keyword arguments for tune, e.g. {"n_seeds": 2}'
    )
    parser.add_argument(
        "--portable-numerics",
        action="store_true",
        help=PORTABLE_HELP,
    )
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    if args.first_rep < 0:
        parser.error(f"--first-rep must be at least 0, got {args.first_rep}")
    if args.portable_numerics:
        portable_numerics()
    TC_OPTIONS.update(json.loads(args.tc_options))
    print(machine(), file=sys.stderr)
    logging.getLogger("tunecraft").setLevel(logging.WARNING)
    rows: list[tuple[str, str, float, float, float, float, float]] = []
    versus: list[str] = []
    for task_name in args.tasks:
        results: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in args.methods}
        for rep in range(args.first_rep, args.first_rep + args.reps):
            for method in args.methods:
                if method == "tunecraft+prior" and not task_name.startswith("lcbench/"):
                    continue  # earlier studies exist for LCBench only
                meter = Meter()
                task = make_task(task_name, meter, rep)
                budget = args.budget_full * task.max_fidelity
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = METHODS[method](task, budget, rep, meter)
                true = truth(task, out.config)
                results[method].append((true, out.claimed, out.epochs / budget, out.seconds))
                print(
                    f"{task_name} rep={rep} {method}: true={true:.2f} claimed={out.claimed:.2f} "
                    f"epochs={out.epochs}/{budget} ({out.seconds:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        for method, res in results.items():
            if not res:  # skipped on this task
                continue
            trues = [r[0] for r in res]
            claimed = [r[1] for r in res]
            gaps = [abs(c - t) for t, c, _, _ in res]
            rows.append(
                (
                    task_name,
                    method,
                    statistics.median(trues),
                    statistics.median(claimed),
                    statistics.median(gaps),
                    statistics.median(r[2] for r in res),
                    statistics.median(r[3] for r in res),
                )
            )
        pairs = [
            (ours, method)
            for ours in results
            if ours.startswith("tunecraft")
            for method in results
            if not method.startswith("tunecraft") and results[ours]
        ]
        for ours, method in pairs:
            res, mine = results[method], results[ours]
            if len(res) != len(mine):
                continue
            w, lo, d, (d_lo, d_hi), dm, (dm_lo, dm_hi) = paired(
                [r[0] for r in mine], [r[0] for r in res]
            )
            gw, gl, _, _, gm, (gm_lo, gm_hi) = paired(
                [abs(r[1] - r[0]) for r in mine], [abs(r[1] - r[0]) for r in res]
            )
            versus.append(
                f"| {task_name} | {ours} - {method} | {w} / {lo} | {d:+.2f} ({d_lo:+.2f}, "
                f"{d_hi:+.2f}) | {dm:+.2f} ({dm_lo:+.2f}, {dm_hi:+.2f}) | {gw} / {gl} "
                f"| {gm:+.2f} ({gm_lo:+.2f}, {gm_hi:+.2f}) |"
            )
    print(
        "| task | method | true test error % (median) | claimed % | abs gap | compute used "
        "| seconds |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for task_name, method, true_e, claimed_e, gap, used, secs in rows:
        print(
            f"| {task_name} | {method} | {true_e:.2f} | {claimed_e:.2f} | {gap:.2f} "
            f"| {used:.2f} | {secs:.0f} |"
        )
    if versus:
        print(
            "\nRepetition by repetition (negative: tunecraft lower; wins / losses are"
            " tunecraft's; intervals 90 %, paired bootstrap):\n"
        )
        print(
            "| task | methods | true error W / L | median diff | mean diff "
            "| abs gap W / L | abs gap mean diff |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        print("\n".join(versus))
    return 0


if __name__ == "__main__":
    sys.exit(main())

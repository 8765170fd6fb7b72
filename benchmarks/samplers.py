"""Samplers side by side: tunecraft's gp, tpe and auto against random search, Optuna 5 (TPE,
GP, CMA-ES) and Hyperopt TPE, on the same problems, budgets and seeds, in one run.

Problems (all minimized):

* standard functions with known optima: Branin, Hartmann-3, Hartmann-6, Rosenbrock (4-D),
  Ackley, Levy, Styblinski-Tang and Michalewicz (5-D);
* ``mixed``: floats, a log float, an int and a categorical, optimum 0;
* ``cond``: a conditional space ("booster-dependent" parameters), optimum 0;
* scikit-learn tuning on bundled datasets, a continuous 3-fold cross-validated loss (optimum
  taken as the best value any method reached in the run): ``logreg-cancer`` (logistic
  regression's C, penalty, class weights and intercept scaling on breast cancer, log loss),
  ``krr-diabetes`` (kernel ridge with a kernel choice and poly-only degree and coef0 on
  diabetes, MSE), ``tree-diabetes`` (a decision tree's integer depth and leaf sizes, feature
  share and criterion on diabetes, MSE).

Each (problem, sampler, seed) runs ``max(budgets)`` sequential trials; the regret after the
first ``b`` trials is the regret at budget ``b`` (none of the samplers is told the budget).
Reported per problem and budget: the median final regret over seeds and the normalized score
``1 - median regret / median regret of random search`` (1 = optimum, 0 = random's median,
negative = worse than random); then the mean normalized score and the mean rank (by median
regret) over problems. Separately, ``--timing`` measures milliseconds per suggestion (ask +
the suggestion, objective excluded) of ``--timing-repeats`` consecutive suggestions, after
50 and 200 random trials on Hartmann-6 and one untimed warm-up suggestion: the median, and
the mean (which includes the GP's periodic hyperparameter refits, see
``fit_kwargs["refit_growth"]`` of ``GPSampler``).

Run::

    python benchmarks/samplers.py --problems all --seeds 10 --budgets 50 100 --jobs 2 --out q.json
    python benchmarks/samplers.py --timing --timing-trials 50 200 --out t.json
    python benchmarks/samplers.py --report out1.json out2.json   # merge saved runs

Peers need ``pip install "tunecraft[benchmark]"`` (optuna, cmaes, hyperopt, torch for Optuna's
GPSampler: ``pip install torch==2.13.0 greenlet``). A missing peer is skipped with a note.
This is a benchmark, not a test.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import tunecraft as tc  # noqa: E402
from tunecraft.space import Categorical, Float, Int, Space  # noqa: E402

SAMPLERS = (
    "random",
    "tc-gp",
    "tc-tpe",
    "tc-auto",
    "optuna-tpe",
    "optuna-gp",
    "optuna-cmaes",
    "hyperopt-tpe",
)
OURS = ("tc-gp", "tc-tpe", "tc-auto")


# -- problems -----------------------------------------------------------------------------------
@dataclass
class Problem:
    """A minimization problem over a tunecraft space."""

    name: str
    space: dict[str, Any]
    fn: Callable[[dict[str, Any]], float]
    optimum: float | None  # None: the best value any method reached
    kind: str = "synthetic"


def _vec(c: dict[str, Any], d: int) -> np.ndarray:
    return np.array([c[f"x{i}"] for i in range(d)], dtype=float)


def _box(d: int, low: float, high: float) -> dict[str, Any]:
    return {f"x{i}": tc.uniform(low, high) for i in range(d)}


def branin(c: dict[str, Any]) -> float:
    x, y = c["x0"], c["x1"]
    b, cc = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (y - b * x**2 + cc * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array(
    [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
)
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann(x: np.ndarray, a: np.ndarray, p: np.ndarray) -> float:
    return float(-(_H_ALPHA * np.exp(-(a * (x - p) ** 2).sum(1))).sum())


def hartmann3(c: dict[str, Any]) -> float:
    return _hartmann(_vec(c, 3), _H3_A, _H3_P)


def hartmann6(c: dict[str, Any]) -> float:
    return _hartmann(_vec(c, 6), _H6_A, _H6_P)


def rosenbrock(c: dict[str, Any]) -> float:
    x = _vec(c, 4)
    return float((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum())


def ackley(c: dict[str, Any]) -> float:
    x = _vec(c, 5)
    a = -20 * math.exp(-0.2 * math.sqrt(float((x**2).mean())))
    return a - math.exp(float(np.cos(2 * math.pi * x).mean())) + 20 + math.e


def levy(c: dict[str, Any]) -> float:
    w = 1 + (_vec(c, 5) - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    mid = ((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2)).sum()
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + mid + tail)


def styblinski_tang(c: dict[str, Any]) -> float:
    x = _vec(c, 5)
    return float(0.5 * (x**4 - 16 * x**2 + 5 * x).sum())


def michalewicz(c: dict[str, Any]) -> float:
    x = _vec(c, 5)
    i = np.arange(1, 6)
    return float(-(np.sin(x) * np.sin(i * x**2 / math.pi) ** 20).sum())


_MIXED_CAT = {"a": 0.6, "b": 0.0, "c": 1.2, "d": 0.3}


def mixed(c: dict[str, Any]) -> float:
    """Optimum 0 at x=0.3, y=-0.2, n=7, kind="b", lr=1e-3."""
    return (
        (c["x"] - 0.3) ** 2
        + 2 * (c["y"] + 0.2) ** 2
        + ((c["n"] - 7) / 5) ** 2
        + _MIXED_CAT[c["kind"]]
        + (math.log10(c["lr"]) + 3) ** 2 / 4
        + 0.3 * (1 - math.cos(3 * (c["x"] - 0.3)))
    )


def cond(c: dict[str, Any]) -> float:
    """Optimum 0 with booster="tree", depth=6, eta=0.05, shared reg=1e-2."""
    reg = (math.log10(c["reg"]) + 2) ** 2 / 4
    if c["booster"] == "linear":
        return 0.4 + reg + (math.log10(c["alpha"]) + 1) ** 2 / 4
    if c["booster"] == "dart":
        return 0.2 + reg + (c["drop"] - 0.1) ** 2 + ((c["depth"] - 4) / 4) ** 2
    return reg + ((c["depth"] - 6) / 4) ** 2 + (math.log10(c["eta"]) - math.log10(0.05)) ** 2


def _cv_loss(
    make: Callable[[], Any], x: np.ndarray, y: np.ndarray, folds: Any, loss: str
) -> float:
    """Mean validation loss over fixed folds: mean squared error, or log loss of a binary
    classifier (clipped probabilities). A plain loop over the folds, without
    ``cross_val_score``'s per-call overhead, so that 10 seeds of every sampler stay cheap."""
    total = 0.0
    for tr, te in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make().fit(x[tr], y[tr])
        if loss == "mse":
            total += float(((model.predict(x[te]) - y[te]) ** 2).mean())
        else:
            p = np.clip(model.predict_proba(x[te])[:, 1], 1e-15, 1 - 1e-15)
            total -= float((y[te] * np.log(p) + (1 - y[te]) * np.log1p(-p)).mean())
    return total / len(folds)


def _sklearn_problem(name: str) -> Problem:
    """Tuning tasks on bundled datasets with a continuous 3-fold CV loss (so that runs are
    ranked by more than a single misclassified sample), each 10-40 ms an evaluation."""
    from sklearn import datasets
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    if name == "logreg-cancer":
        from sklearn.linear_model import LogisticRegression

        x, y = datasets.load_breast_cancer(return_X_y=True)
        x = StandardScaler().fit_transform(x)
        folds = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(x, y))
        loss = "log_loss"
        space = {
            "C": tc.loguniform(1e-3, 1e2),
            "penalty": tc.choice(["l1", "l2"]),
            "class_weight": tc.choice([None, "balanced"]),
            "intercept_scaling": tc.loguniform(1e-2, 1e2),
        }

        def build(c: dict[str, Any]) -> Any:
            return LogisticRegression(
                solver="liblinear", max_iter=100, tol=1e-3, random_state=0, **c
            )

    elif name == "krr-diabetes":
        from sklearn.kernel_ridge import KernelRidge

        x, y = datasets.load_diabetes(return_X_y=True)
        x = StandardScaler().fit_transform(x)
        y = (y - y.mean()) / y.std()
        folds = list(KFold(n_splits=3, shuffle=True, random_state=0).split(x))
        loss = "mse"
        space = {
            "alpha": tc.loguniform(1e-4, 1e2),
            "kernel": tc.choice(["rbf", "laplacian", "poly"]),
            "gamma": tc.loguniform(1e-4, 1e1),
            "degree": tc.integer(2, 4).when(kernel="poly"),
            "coef0": tc.uniform(0.0, 5.0).when(kernel="poly"),
        }

        def build(c: dict[str, Any]) -> Any:
            return KernelRidge(**c)

    elif name == "tree-diabetes":
        from sklearn.tree import DecisionTreeRegressor

        x, y = datasets.load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()
        folds = list(KFold(n_splits=3, shuffle=True, random_state=0).split(x))
        loss = "mse"
        space = {
            "max_depth": tc.integer(1, 20),
            "min_samples_leaf": tc.integer(1, 50, log=True),
            "min_samples_split": tc.integer(2, 40),
            "max_features": tc.uniform(0.1, 1.0),
            "criterion": tc.choice(["squared_error", "friedman_mse", "absolute_error"]),
        }

        def build(c: dict[str, Any]) -> Any:
            return DecisionTreeRegressor(random_state=0, **c)

    else:
        raise ValueError(name)

    def fn(c: dict[str, Any]) -> float:
        return _cv_loss(lambda: build(c), x, y, folds, loss)

    return Problem(name, space, fn, None, "sklearn")


SYNTHETIC = {
    "branin": Problem(
        "branin", {"x0": tc.uniform(-5, 10), "x1": tc.uniform(0, 15)}, branin, 0.397887
    ),
    "hartmann3": Problem("hartmann3", _box(3, 0, 1), hartmann3, -3.86278),
    "hartmann6": Problem("hartmann6", _box(6, 0, 1), hartmann6, -3.32237),
    "rosenbrock": Problem("rosenbrock", _box(4, -5, 10), rosenbrock, 0.0),
    "ackley": Problem("ackley", _box(5, -32.768, 32.768), ackley, 0.0),
    "levy": Problem("levy", _box(5, -10, 10), levy, 0.0),
    "styblinski_tang": Problem("styblinski_tang", _box(5, -5, 5), styblinski_tang, -39.16617 * 5),
    "michalewicz": Problem("michalewicz", _box(5, 0, math.pi), michalewicz, -4.687658),
    "mixed": Problem(
        "mixed",
        {
            "x": tc.uniform(-1, 1),
            "y": tc.uniform(-1, 1),
            "n": tc.integer(1, 20),
            "kind": tc.choice(["a", "b", "c", "d"]),
            "lr": tc.loguniform(1e-5, 1e-1),
        },
        mixed,
        0.0,
    ),
    "cond": Problem(
        "cond",
        {
            "booster": tc.choice(["linear", "tree", "dart"]),
            "reg": tc.loguniform(1e-5, 1e1),
            "alpha": tc.loguniform(1e-4, 1e2).when(booster="linear"),
            "depth": tc.integer(1, 12).when(booster=["tree", "dart"]),
            "eta": tc.loguniform(1e-3, 1).when(booster="tree"),
            "drop": tc.uniform(0, 0.5).when(booster="dart"),
        },
        cond,
        0.0,
    ),
}
SKLEARN = ("logreg-cancer", "krr-diabetes", "tree-diabetes")


def get_problem(name: str) -> Problem:
    return SYNTHETIC[name] if name in SYNTHETIC else _sklearn_problem(name)


# -- peers: each runner returns (values, ask seconds) for n sequential trials -----------------
def _quiet() -> None:
    logging.getLogger("optuna").setLevel(logging.ERROR)
    logging.getLogger("hyperopt").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def run_tunecraft(name: str, prob: Problem, seed: int, n: int) -> tuple[list[float], list[float]]:
    sampler = tc.make_sampler(name, seed=seed)
    study = tc.Study(prob.space, sampler=sampler)
    values, asks = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        asks.append(time.perf_counter() - t0)
        v = prob.fn(trial.config)
        study.tell(trial, v)
        values.append(v)
    return values, asks


def _optuna_config(trial: Any, space: Space) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name in space.names:
        if not space.is_active(name, config):
            continue
        p = space[name]
        if isinstance(p, Float):
            config[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        elif isinstance(p, Int):
            step = None if p.log else p.step
            config[name] = trial.suggest_int(name, p.low, p.high, log=p.log, step=step or 1)
        else:
            assert isinstance(p, Categorical)
            config[name] = trial.suggest_categorical(name, list(p.options))
    return config


def _optuna_sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna-gp":
        import torch

        torch.set_num_threads(1)
        return optuna.samplers.GPSampler(seed=seed)
    if name == "optuna-cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(name)


def run_optuna(name: str, prob: Problem, seed: int, n: int) -> tuple[list[float], list[float]]:
    import optuna

    _quiet()
    study = optuna.create_study(sampler=_optuna_sampler(name, seed))
    space = Space(prob.space)
    values, asks = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        config = _optuna_config(trial, space)
        asks.append(time.perf_counter() - t0)
        v = prob.fn(config)
        study.tell(trial, v)
        values.append(v)
    return values, asks


def _hyperopt_space(space: Space) -> dict[str, Any]:
    """Hyperopt's nested form: a categorical parent becomes a choice among dicts that hold the
    children active for each option (one level of conditions, enough for these problems)."""
    from hyperopt import hp

    def leaf(label: str, p: Any) -> Any:
        if isinstance(p, Float):
            if p.log:
                return hp.loguniform(label, math.log(p.low), math.log(p.high))
            return hp.uniform(label, p.low, p.high)
        if isinstance(p, Int):
            if p.log:
                return hp.qloguniform(label, math.log(p.low - 0.5), math.log(p.high + 0.5), 1)
            return hp.quniform(label, p.low - 0.5, p.high + 0.5, p.step)
        return hp.choice(label, list(p.options))

    children: dict[str, list[str]] = {}
    for name in space.names:
        for parent in space[name].condition or {}:
            children.setdefault(parent, []).append(name)
    out: dict[str, Any] = {}
    for name in space.names:
        p = space[name]
        if p.condition:
            continue
        if name in children:
            assert isinstance(p, Categorical), f"{name}: a condition's parent is a choice"
            branches = []
            for opt in p.options:
                branch: dict[str, Any] = {name: opt}
                for child in children[name]:
                    if space.is_active(child, {name: opt}):
                        branch[child] = leaf(f"{child}|{opt}", space[child])
                branches.append(branch)
            out[f"__branch_{name}"] = hp.choice(name, branches)
        else:
            out[name] = leaf(name, p)
    return out


def _flatten_hyperopt(sample: dict[str, Any], space: Space) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in sample.items():
        if k.startswith("__branch_"):
            flat.update(v)
        else:
            flat[k] = v
    config = {}
    for name in space.names:
        if name in flat:
            p, v = space[name], flat[name]
            if isinstance(p, Int):
                v = int(min(p.high, max(p.low, round(v))))
            elif isinstance(p, Float):
                v = float(min(p.high, max(p.low, v)))
            config[name] = v
    return config


def run_hyperopt(name: str, prob: Problem, seed: int, n: int) -> tuple[list[float], list[float]]:
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    _quiet()
    space = Space(prob.space)
    values: list[float] = []
    stamps: list[tuple[float, float]] = []  # (call start, call end) of the objective

    def objective(sample: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        v = prob.fn(_flatten_hyperopt(sample, space))
        values.append(v)
        stamps.append((start, time.perf_counter()))
        return {"loss": v, "status": STATUS_OK}

    t0 = time.perf_counter()
    fmin(
        objective,
        _hyperopt_space(space),
        algo=tpe.suggest,
        max_evals=n,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    asks = [stamps[0][0] - t0] + [stamps[i][0] - stamps[i - 1][1] for i in range(1, n)]
    return values, asks


def run(name: str, prob: Problem, seed: int, n: int) -> tuple[list[float], list[float]]:
    if name == "random":
        return run_tunecraft("random", prob, seed, n)
    if name in OURS:
        return run_tunecraft(name[3:], prob, seed, n)
    if name.startswith("optuna"):
        return run_optuna(name, prob, seed, n)
    if name == "hyperopt-tpe":
        return run_hyperopt(name, prob, seed, n)
    raise ValueError(name)


def _job(args: tuple[str, str, int, int]) -> dict[str, Any]:
    sampler, problem, seed, n = args
    prob = get_problem(problem)
    try:
        values, asks = run(sampler, prob, seed, n)
    except ImportError as exc:
        return {"sampler": sampler, "problem": problem, "seed": seed, "error": repr(exc)}
    best = np.minimum.accumulate(np.array(values, dtype=float)).tolist()
    return {
        "sampler": sampler,
        "problem": problem,
        "seed": seed,
        "best": best,
        "ask_ms": [1e3 * a for a in asks],
        "optimum": prob.optimum,
    }


# -- timing: ms per suggestion after n random trials on Hartmann-6 ---------------------------
def time_suggestions(sampler: str, n: int, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` suggestions after ``n`` random trials."""
    prob = SYNTHETIC["hartmann6"]
    space = Space(prob.space)
    rng = np.random.default_rng(0)
    warm = [space.sample(rng) for _ in range(n)]
    out = []
    if sampler.startswith("tc") or sampler == "random":
        name = "random" if sampler == "random" else sampler[3:]
        study = tc.Study(space, sampler=tc.make_sampler(name, seed=0))
        for c in warm:
            study.enqueue(c)
            study.tell(study.ask(), prob.fn(c))
        for i in range(repeats + 1):  # the first suggestion warms up, untimed
            t0 = time.perf_counter()
            trial = study.ask()
            if i:
                out.append(1e3 * (time.perf_counter() - t0))
            study.tell(trial, prob.fn(trial.config))
    elif sampler.startswith("optuna"):
        import optuna

        _quiet()
        ostudy = optuna.create_study(sampler=_optuna_sampler(sampler, 0))
        dists: dict[str, optuna.distributions.BaseDistribution] = {
            k: optuna.distributions.FloatDistribution(0, 1) for k in space.names
        }
        for c in warm:
            ostudy.add_trial(
                optuna.trial.create_trial(params=c, distributions=dists, value=prob.fn(c))
            )
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            otrial = ostudy.ask()
            config = _optuna_config(otrial, space)
            if i:
                out.append(1e3 * (time.perf_counter() - t0))
            ostudy.tell(otrial, prob.fn(config))
    else:
        from hyperopt import STATUS_OK, Trials, fmin, tpe

        _quiet()
        stamps: list[tuple[float, float]] = []

        def objective(sample: dict[str, Any]) -> dict[str, Any]:
            start = time.perf_counter()
            v = prob.fn(_flatten_hyperopt(sample, space))
            stamps.append((start, time.perf_counter()))
            return {"loss": v, "status": STATUS_OK}

        fmin(
            objective,
            _hyperopt_space(space),
            algo=tpe.suggest,
            max_evals=n + repeats + 1,
            trials=Trials(),
            rstate=np.random.default_rng(0),
            show_progressbar=False,
            points_to_evaluate=warm,
        )
        out = [1e3 * (stamps[i][0] - stamps[i - 1][1]) for i in range(n + 1, n + repeats + 1)]
    return out


# -- report -------------------------------------------------------------------------------------
def report(results: list[dict[str, Any]], budgets: list[int]) -> str:
    results = [r for r in results if "best" in r]
    problems = list(dict.fromkeys(r["problem"] for r in results))
    samplers = [s for s in SAMPLERS if any(r["sampler"] == s for r in results)]
    lines = []
    summary: dict[int, dict[str, tuple[list[float], list[float]]]] = {}
    for b in budgets:
        scores: dict[str, list[float]] = {s: [] for s in samplers}
        ranks: dict[str, list[float]] = {s: [] for s in samplers}
        header = "| problem | seeds | " + " | ".join(samplers) + " |"
        lines += [
            f"\n**{b} trials**: median final regret (normalized score in brackets; "
            "1 = optimum, 0 = random's median)\n",
            header,
            "|" + "---|" * (len(samplers) + 2),
        ]
        for p in problems:
            rows = [r for r in results if r["problem"] == p and len(r["best"]) >= b]
            opt = rows[0]["optimum"]
            if opt is None:
                opt = min(min(r["best"]) for r in rows)
            med = {}
            for s in samplers:
                regs = [r["best"][b - 1] - opt for r in rows if r["sampler"] == s]
                med[s] = statistics.median(regs) if regs else math.nan
            base = med.get("random", math.nan)
            order = sorted((v, s) for s, v in med.items() if not math.isnan(v))
            rank = _ranks([v for v, _ in order])
            for (_, s), rk in zip(order, rank, strict=True):
                ranks[s].append(rk)
            cells = []
            for s in samplers:
                score = 1.0 - med[s] / base if base > 0 else (1.0 if med[s] <= 0 else 0.0)
                scores[s].append(score)
                cells.append(f"{med[s]:.3g} ({score:.2f})")
            seeds = len({r["seed"] for r in rows})
            lines.append(f"| {p} | {seeds} | " + " | ".join(cells) + " |")
        lines.append(
            "| **mean score** | | "
            + " | ".join(f"**{statistics.mean(scores[s]):.3f}**" for s in samplers)
            + " |"
        )
        lines.append(
            "| median score | | "
            + " | ".join(f"{statistics.median(scores[s]):.3f}" for s in samplers)
            + " |"
        )
        lines.append(
            "| **mean rank** | | "
            + " | ".join(f"**{statistics.mean(ranks[s]):.2f}**" for s in samplers)
            + " |"
        )
        summary[b] = {s: (scores[s], ranks[s]) for s in samplers}
    return "\n".join(lines)


def _ranks(sorted_values: list[float]) -> list[float]:
    """Ranks (1 = best) of sorted values, ties sharing their mean rank."""
    out, i = [], 0
    while i < len(sorted_values):
        j = i
        while j + 1 < len(sorted_values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        out += [(i + j) / 2 + 1] * (j - i + 1)
        i = j + 1
    return out


def timing_report(timing: dict[str, dict[str, list[float]]]) -> str:
    ns = sorted({int(n) for per in timing.values() for n in per})
    lines = [
        "| sampler | " + " | ".join(f"ms/suggestion at {n}: median (mean)" for n in ns) + " |",
        "|---|" + "---|" * len(ns),
    ]
    for s in SAMPLERS:
        if s in timing:
            runs = [timing[s].get(str(n)) for n in ns]
            cells = [
                f"{statistics.median(r):.1f} ({statistics.mean(r):.1f})" if r else "-"
                for r in runs
            ]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--problems",
        nargs="+",
        default=["synthetic"],
        help="names, 'synthetic', 'sklearn' or 'all'",
    )
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budgets", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--out", help="write the raw results as JSON here")
    ap.add_argument("--report", nargs="+", help="only report saved JSON results (merged)")
    ap.add_argument("--timing", action="store_true", help="measure ms per suggestion")
    ap.add_argument("--timing-trials", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--timing-repeats", type=int, default=21)
    args = ap.parse_args(argv)
    _quiet()

    if args.report:
        results: list[Any] = []
        timing: dict[str, Any] = {}
        for path in args.report:
            with open(path) as fh:
                data = json.load(fh)
            results += data.get("results", [])
            for s, per in data.get("timing", {}).items():
                timing.setdefault(s, {}).update(per)
        # a later file replaces an earlier one's run of the same sampler, problem and seed
        merged = {(r["sampler"], r["problem"], r["seed"]): r for r in results}
        results = [r for r in merged.values() if r["sampler"] in args.samplers]
        if results:
            print(report(results, args.budgets))
        if timing:
            print("\n" + timing_report(timing))
        return

    print(
        f"python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} cpus; tunecraft {tc.__version__}",
        file=sys.stderr,
    )
    out: dict[str, Any] = {"argv": sys.argv[1:], "results": [], "timing": {}}
    if args.timing:
        for s in args.samplers:
            out["timing"][s] = {}
            for n in args.timing_trials:
                try:
                    ms = time_suggestions(s, n, args.timing_repeats)
                except ImportError as exc:
                    print(f"skip {s}: {exc}", file=sys.stderr)
                    break
                out["timing"][s][str(n)] = ms
                print(f"{s} n={n}: {statistics.median(ms):.1f} ms", file=sys.stderr)
        print(timing_report(out["timing"]))
    else:
        names: list[str] = []
        for p in args.problems:
            if p in ("synthetic", "all"):
                names += list(SYNTHETIC)
            if p in ("sklearn", "all"):
                names += list(SKLEARN)
            if p not in ("synthetic", "sklearn", "all"):
                names.append(p)
        n = max(args.budgets)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        jobs = [(s, p, seed, n) for p in names for seed in seeds for s in args.samplers]
        # seed by seed (a run cut short still has whole seeds for every sampler), the slow
        # peer first within a seed
        jobs.sort(key=lambda j: (j[2], j[0] != "optuna-gp", j[1]))
        t0 = time.time()

        def done(i: int, r: dict[str, Any]) -> None:
            out["results"].append(r)
            if i % 20 == 0:
                print(f"{i + 1}/{len(jobs)} jobs, {time.time() - t0:.0f}s", file=sys.stderr)
                if args.out:  # partial results survive an interrupted run
                    with open(args.out, "w") as fh:
                        json.dump(out, fh)

        if args.jobs > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(args.jobs) as pool:
                for i, r in enumerate(pool.imap(_job, jobs)):
                    done(i, r)
        else:
            for i, job in enumerate(jobs):
                done(i, _job(job))
        for r in out["results"]:
            if "error" in r:
                print(f"skipped {r['sampler']}: {r['error']}", file=sys.stderr)
        print(report(out["results"], args.budgets))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh)


if __name__ == "__main__":
    main()

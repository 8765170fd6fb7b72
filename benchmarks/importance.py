"""Hyperparameter importance: tunecraft's fANOVA (and its cheap alternatives) against Optuna's
``FanovaImportanceEvaluator`` on the same trials, in one run.

Studies (random search, ``--trials`` trials each, tunecraft's random sampler, seed 0):

* synthetic, additive, so the true main-effect shares are known exactly (computed on a fine
  grid): ``add6`` (six uniform floats, weights 8, 4, 2, 1, 0.5, 0.25 on bowls with optima
  inside), ``mixed`` (a log float, a log int, a categorical, a linear int and two floats that do
  not matter), ``linear6`` (``10*x0 + x1``, x2..x5 do not matter);
* scikit-learn tuning on bundled datasets (3-fold cross-validated error): ``svc-digits`` (SVC
  on 600 digits: C, gamma, kernel, shrinking, tol), ``rf-wine`` (random forest: trees, depth,
  leaf size, feature share, criterion, bootstrap), ``enet-diabetes`` (elastic net: alpha,
  l1_ratio, tol, max_iter, fit_intercept), ``hgb-cancer`` (histogram gradient boosting:
  learning rate, iterations, leaves, leaf size, L2).

For each study, each method runs with seeds ``0..--repeats-1``. Reported: the Spearman
correlation of tunecraft's shares with Optuna's (median over seeds, same seed for both), the
same between two seeds of Optuna itself (the agreement one can expect at best, given the
forests' randomness) and between two seeds of tunecraft, the correlation with the true shares
where known, whether the top parameter agrees, and the median time per call.

Run::

    python benchmarks/importance.py --trials 100 --repeats 3

Needs optuna (``pip install "tunecraft[benchmark]"``). A benchmark, not a test.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import tunecraft as tc  # noqa: E402
from tunecraft.analysis import importance  # noqa: E402
from tunecraft.space import Categorical, Float, Int, Space  # noqa: E402

Pairs = list[tuple[dict[str, Any], float]]


@dataclass
class Problem:
    name: str
    space: dict[str, Any]
    fn: Callable[[dict[str, Any]], float]
    truth: dict[str, float] | None = None
    kind: str = "synthetic"
    notes: list[str] = field(default_factory=list)


# -- synthetic problems with known shares --------------------------------------------------------
def _bowl_terms(
    space: Space, weights: dict[str, float], centres: dict[str, float]
) -> Callable[[dict[str, Any]], float]:
    def f(c: dict[str, Any]) -> float:
        return float(
            sum(w * (space[n].to_unit(c[n]) - centres[n]) ** 2 for n, w in weights.items())
        )

    return f


def _additive_truth(
    space: Space, terms: dict[str, Callable[[Any], float]], others: list[str]
) -> dict[str, float]:
    """Exact shares of an additive function under the unit-cube measure (fine grids)."""
    var: dict[str, float] = {}
    for name, term in terms.items():
        p = space[name]
        if isinstance(p, (Categorical, Int)) and p.n_values <= 256:
            values = p.grid(10_000)
            if isinstance(p, Int) and p.log:
                w = np.array([math.log(v + 0.5) - math.log(v - 0.5) for v in values])
            else:
                w = np.ones(len(values))
        else:
            values = [p.from_unit((i + 0.5) / 20_000) for i in range(20_000)]
            w = np.ones(len(values))
        w = w / w.sum()
        y = np.array([term(v) for v in values])
        mean = float(w @ y)
        var[name] = float(w @ (y - mean) ** 2)
    total = sum(var.values())
    out = {n: v / total for n, v in var.items()}
    out.update(dict.fromkeys(others, 0.0))
    return out


def synthetic() -> list[Problem]:
    probs = []
    add6 = Space({f"x{i}": tc.uniform(0, 1) for i in range(6)})
    weights = dict(zip(add6.names, [8, 4, 2, 1, 0.5, 0.25], strict=True))
    centres = dict(zip(add6.names, [0.3, 0.7, 0.4, 0.6, 0.35, 0.65], strict=True))

    def term(n: str) -> Callable[[Any], float]:
        return lambda v: weights[n] * (v - centres[n]) ** 2

    terms6 = {n: term(n) for n in add6.names}
    probs.append(
        Problem(
            "add6",
            add6.to_dict(),
            _bowl_terms(add6, weights, centres),
            _additive_truth(add6, terms6, []),
        )
    )

    mixed = Space(
        {
            "lr": tc.loguniform(1e-5, 1.0),
            "width": tc.integer(8, 512, log=True),
            "act": tc.choice(["relu", "tanh", "gelu", "silu"]),
            "layers": tc.integer(1, 6),
            "noise_a": tc.uniform(0, 1),
            "noise_b": tc.uniform(-1, 1),
        }
    )
    act_cost = {"relu": 0.0, "tanh": 1.5, "gelu": 0.3, "silu": 0.6}
    mterms: dict[str, Callable[[Any], float]] = {
        "lr": lambda v: 0.4 * (math.log10(v) + 3) ** 2,
        "width": lambda v: 0.5 * abs(math.log2(v) - 7),
        "act": lambda v: act_cost[v],
        "layers": lambda v: 0.2 * abs(v - 3),
    }
    probs.append(
        Problem(
            "mixed",
            mixed.to_dict(),
            lambda c: float(sum(t(c[n]) for n, t in mterms.items())),
            _additive_truth(mixed, mterms, ["noise_a", "noise_b"]),
        )
    )

    lin = Space({f"x{i}": tc.uniform(0, 1) for i in range(6)})
    lterms: dict[str, Callable[[Any], float]] = {"x0": lambda v: 10 * v, "x1": lambda v: v}
    probs.append(
        Problem(
            "linear6",
            lin.to_dict(),
            lambda c: 10 * c["x0"] + c["x1"],
            _additive_truth(lin, lterms, ["x2", "x3", "x4", "x5"]),
        )
    )
    return probs


# -- scikit-learn problems ------------------------------------------------------------------------
def sklearn_problems() -> list[Problem]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    digits_x, digits_y = load_digits(return_X_y=True)
    digits_x, digits_y = digits_x[:600] / 16.0, digits_y[:600]
    wine_x, wine_y = load_wine(return_X_y=True)
    dia_x, dia_y = load_diabetes(return_X_y=True)
    can_x, can_y = load_breast_cancer(return_X_y=True)
    can_x = StandardScaler().fit_transform(can_x)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)

    def svc(c: dict[str, Any]) -> float:
        model = SVC(
            C=c["C"],
            gamma=c["gamma"],
            kernel=c["kernel"],
            shrinking=c["shrinking"],
            tol=c["tol"],
        )
        return 1.0 - float(cross_val_score(model, digits_x, digits_y, cv=cv).mean())

    def rf(c: dict[str, Any]) -> float:
        model = RandomForestClassifier(
            n_estimators=c["n_estimators"],
            max_depth=c["max_depth"],
            min_samples_leaf=c["min_samples_leaf"],
            max_features=c["max_features"],
            criterion=c["criterion"],
            bootstrap=c["bootstrap"],
            random_state=0,
            n_jobs=1,
        )
        return 1.0 - float(cross_val_score(model, wine_x, wine_y, cv=cv).mean())

    def enet(c: dict[str, Any]) -> float:
        model = ElasticNet(
            alpha=c["alpha"],
            l1_ratio=c["l1_ratio"],
            tol=c["tol"],
            max_iter=c["max_iter"],
            fit_intercept=c["fit_intercept"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r2 = cross_val_score(model, dia_x, dia_y, cv=KFold(3, shuffle=True, random_state=0))
        return 1.0 - float(r2.mean())

    def hgb(c: dict[str, Any]) -> float:
        model = HistGradientBoostingClassifier(
            learning_rate=c["learning_rate"],
            max_iter=c["max_iter"],
            max_leaf_nodes=c["max_leaf_nodes"],
            min_samples_leaf=c["min_samples_leaf"],
            l2_regularization=c["l2_regularization"],
            early_stopping=False,
            random_state=0,
        )
        return 1.0 - float(cross_val_score(model, can_x, can_y, cv=cv).mean())

    return [
        Problem(
            "svc-digits",
            {
                "C": tc.loguniform(1e-3, 1e3),
                "gamma": tc.loguniform(1e-5, 1.0),
                "kernel": tc.choice(["rbf", "sigmoid"]),
                "shrinking": tc.choice([True, False]),
                "tol": tc.loguniform(1e-5, 1e-1),
            },
            svc,
            kind="sklearn",
        ),
        Problem(
            "rf-wine",
            {
                "n_estimators": tc.integer(5, 100, log=True),
                "max_depth": tc.integer(1, 12),
                "min_samples_leaf": tc.integer(1, 30),
                "max_features": tc.uniform(0.05, 1.0),
                "criterion": tc.choice(["gini", "entropy"]),
                "bootstrap": tc.choice([True, False]),
            },
            rf,
            kind="sklearn",
        ),
        Problem(
            "enet-diabetes",
            {
                "alpha": tc.loguniform(1e-4, 10.0),
                "l1_ratio": tc.uniform(0.0, 1.0),
                "tol": tc.loguniform(1e-6, 1e-1),
                "max_iter": tc.integer(5, 1000, log=True),
                "fit_intercept": tc.choice([True, False]),
            },
            enet,
            kind="sklearn",
        ),
        Problem(
            "hgb-cancer",
            {
                "learning_rate": tc.loguniform(1e-3, 1.0),
                "max_iter": tc.integer(5, 150, log=True),
                "max_leaf_nodes": tc.integer(2, 64, log=True),
                "min_samples_leaf": tc.integer(1, 60),
                "l2_regularization": tc.loguniform(1e-6, 10.0),
            },
            hgb,
            kind="sklearn",
        ),
    ]


# -- running ------------------------------------------------------------------------------------
def collect(problem: Problem, n_trials: int) -> Pairs:
    study = tc.Study(problem.space, sampler=tc.make_sampler("random", seed=0))
    study.optimize(lambda t: problem.fn(t.config), n_trials=n_trials)
    return [(t.config, float(t.value)) for t in study.trials if t.value is not None]


def optuna_importance(space: Space, pairs: Pairs, seed: int) -> tuple[dict[str, float], float]:
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    dists: dict[str, BaseDistribution] = {}
    for name in space.names:
        p = space[name]
        if isinstance(p, Float):
            dists[name] = FloatDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, Int):
            dists[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        else:
            assert isinstance(p, Categorical)
            dists[name] = CategoricalDistribution(list(p.options))
    study = optuna.create_study()
    study.add_trials(
        [
            optuna.trial.create_trial(params=c, distributions={n: dists[n] for n in c}, value=v)
            for c, v in pairs
        ]
    )
    t0 = time.perf_counter()
    imp = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    return {k: float(v) for k, v in imp.items()}, time.perf_counter() - t0


def ours(space: Space, pairs: Pairs, method: str, seed: int) -> tuple[dict[str, float], float]:
    t0 = time.perf_counter()
    imp = importance(pairs, space, method=method, seed=seed)
    return dict(imp), time.perf_counter() - t0


def linear_scale(space: Space) -> Space:
    """The same space with every log scale made linear (the scale Optuna's fANOVA uses)."""
    params: dict[str, Any] = {}
    for name in space.names:
        p = space[name]
        if isinstance(p, Float) and p.log:
            p = Float(p.low, p.high, condition=p.condition)
        elif isinstance(p, Int) and p.log:
            p = Int(p.low, p.high, condition=p.condition)
        params[name] = p
    return Space(params)


def rho(a: dict[str, float], b: dict[str, float]) -> float:
    names = sorted(set(a) & set(b))
    if len(names) < 3:
        return math.nan
    r = spearmanr([a[n] for n in names], [b[n] for n in names])[0]
    return float(r)


def top(a: dict[str, float]) -> str:
    return max(a, key=lambda n: a[n])


def med(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--problems", choices=("all", "synthetic", "sklearn"), default="all")
    args = ap.parse_args()
    logging.getLogger("optuna").setLevel(logging.WARNING)
    logging.getLogger("tunecraft").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    problems: list[Problem] = []
    if args.problems in ("all", "synthetic"):
        problems += synthetic()
    if args.problems in ("all", "sklearn"):
        problems += sklearn_problems()

    rows = []
    for prob in problems:
        t0 = time.perf_counter()
        pairs = collect(prob, args.trials)
        space = Space(prob.space)
        t_collect = time.perf_counter() - t0
        res: dict[str, list[tuple[dict[str, float], float]]] = {
            m: [] for m in ("optuna", "fanova", "permutation", "mdi", "fanova-linear")
        }
        lin = linear_scale(space)
        for seed in range(args.repeats):
            res["optuna"].append(optuna_importance(space, pairs, seed))
            for m in ("fanova", "permutation", "mdi"):
                res[m].append(ours(space, pairs, m, seed))
            res["fanova-linear"].append(ours(lin, pairs, "fanova", seed))
        opt = [r[0] for r in res["optuna"]]
        row: dict[str, Any] = {"problem": prob.name, "d": len(space), "n": len(pairs)}
        for m in ("fanova", "permutation", "mdi"):
            row[f"rho_{m}"] = med([rho(r[0], o) for r, o in zip(res[m], opt, strict=True)])
            row[f"t_{m}"] = med([r[1] for r in res[m]])
        row["rho_linear"] = med(
            [rho(r[0], o) for r, o in zip(res["fanova-linear"], opt, strict=True)]
        )
        row["n_log"] = sum(1 for n in space.names if getattr(space[n], "log", False))
        row["rho_opt_self"] = med([rho(opt[i], opt[i + 1]) for i in range(len(opt) - 1)])
        fan = [r[0] for r in res["fanova"]]
        row["rho_tc_self"] = med([rho(fan[i], fan[i + 1]) for i in range(len(fan) - 1)])
        row["top_agree"] = sum(top(f) == top(o) for f, o in zip(fan, opt, strict=True))
        row["t_optuna"] = med([r[1] for r in res["optuna"]])
        if prob.truth is not None:
            row["truth_tc"] = med([rho(f, prob.truth) for f in fan])
            row["truth_opt"] = med([rho(o, prob.truth) for o in opt])
        row["tc_fanova"] = {k: round(v, 3) for k, v in fan[0].items()}
        row["optuna"] = {k: round(v, 3) for k, v in opt[0].items()}
        rows.append(row)
        print(
            f"{prob.name}: collected {len(pairs)} trials in {t_collect:.1f}s; "
            f"tc fanova {row['tc_fanova']}; optuna {row['optuna']}",
            flush=True,
        )

    def f(x: Any, nd: int = 2) -> str:
        if isinstance(x, float):
            return "n/a" if math.isnan(x) else f"{x:.{nd}f}"
        return str(x)

    print()
    print(
        "| study | d (log) | trials | rho(tc fANOVA, Optuna) | "
        "rho(tc fANOVA linear scale, Optuna) "
        "| rho(Optuna, Optuna other seed) | "
        "rho(tc, tc other seed) | rho(tc permutation, Optuna) | rho(tc MDI, Optuna) | "
        "rho(tc, truth) | rho(Optuna, truth) | same top-1 | ms tc fANOVA | ms Optuna | "
        "ms tc permutation | ms tc MDI |"
    )
    print("|" + "---|" * 16)
    for r in rows:
        print(
            f"| {r['problem']} | {r['d']} ({r['n_log']}) | {r['n']} | {f(r['rho_fanova'])} | "
            f"{f(r['rho_linear'])} | "
            f"{f(r['rho_opt_self'])} | {f(r['rho_tc_self'])} | {f(r['rho_permutation'])} | "
            f"{f(r['rho_mdi'])} | {f(r.get('truth_tc', math.nan))} | "
            f"{f(r.get('truth_opt', math.nan))} | {r['top_agree']}/{args.repeats} | "
            f"{1000 * r['t_fanova']:.0f} | {1000 * r['t_optuna']:.0f} | "
            f"{1000 * r['t_permutation']:.0f} | {1000 * r['t_mdi']:.0f} |"
        )
    ratio = [r["t_optuna"] / r["t_fanova"] for r in rows]
    print()
    print(
        f"median over studies: rho(tc fANOVA, Optuna) {f(med([r['rho_fanova'] for r in rows]))}, "
        f"rho(Optuna, Optuna other seed) {f(med([r['rho_opt_self'] for r in rows]))}; "
        f"Optuna time / tc fANOVA time {statistics.median(ratio):.1f}x"
    )


if __name__ == "__main__":
    main()

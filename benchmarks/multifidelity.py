"""Multi-fidelity benchmark: tunecraft's schedulers against Optuna's pruners, DEHB and random.

Problems:

* ``lcbench``: the LCBench surrogate of YAHPO Gym (epochs 1-52 as the fidelity, validation
  error ``100 - val_accuracy`` in percent), on several OpenML task instances.
* ``digits``: real training of a small PyTorch MLP on scikit-learn's digits (epochs as the
  fidelity, validation error in percent).

Methods, same budget of epochs (``--budget-full`` full-fidelity trainings' worth):

* ``random``: random search at full fidelity.
* ``tc-auto``: tunecraft's default multi-fidelity scheduler,
  ``make_scheduler("auto", options={"max_resource": max_epochs, "reduction_factor": 3})``
  (:class:`~tunecraft.schedulers.AutoScheduler`: ASHA, promotion variant, whose rungs are the
  steps whose ranking predicts the next level in use, checked by Spearman's correlation on
  each rung's top third; model-based view so the sampler learns from rung results); paused
  trials resume from checkpoints. The sampler is ``--sampler`` (default ``auto``, the
  study's default: what ``tc.Study(space, scheduler="auto")`` gets; ``tpe`` pits the same
  sampler family as Optuna's against it).
* ``tc-auto+prior`` (LCBench only): ``tc-auto`` that first runs ``PRIOR_K`` configurations
  transferred from earlier studies on the other LCBench instances
  (:func:`lcbench_portfolio`: ``load_prior(..., select="portfolio")``, enqueued; the
  scheduler treats them like any other trial). The transfer step of the budgeted pipeline.
* ``tc-auto+defaults``: ``tc-auto`` that first runs the defaults table's configuration
  (:func:`tunecraft.strategy.default_config`: the parameters with well-known names at their
  textbook values, the rest sampled), as the budgeted pipeline's transfer step does when it
  is given no earlier studies. No knowledge of LCBench goes in.
* ``tc-auto-stop``: ``tc-auto`` with ``variant="stopping"`` (prunes instead of pausing: for
  objectives that cannot resume; what the budgeted pipeline's refine phase uses).
* ``tc-asha``: ASHA promotion with ``min_resource="auto"`` (the first rung chosen from the
  correlation with full-budget trials, an earlier design), for contrast.
* ``tc-asha-r1``: ASHA promotion with ``min_resource=1`` (no correlation check), for contrast.
* ``tc-asha-nomodel``: ``tc-asha`` without the model-based view (TPE sees complete trials only).
* ``tc-bohb``: model-based Hyperband (promotion variant, ``model_based=True``) with TPE.
* ``optuna-hb``: Optuna TPE + ``HyperbandPruner(min_resource=1)``.
* ``optuna-sha``: Optuna TPE + ``SuccessiveHalvingPruner(min_resource=1)``.
* ``dehb``: DEHB, when ``pip install dehb`` worked (each evaluation trains from scratch).

The incumbent is the best configuration evaluated at full fidelity; a method that has none yet
has no incumbent. Reported per problem: the final validation error (median over seeds), the
error at 10 / 25 / 50 % of the budget, and the fraction of the budget each method needs to
reach full-budget random search's final error (the median over seeds of random's final error;
the lower median over seeds of the fraction, ``never`` when the median run does not get there;
in brackets a 90 % bootstrap interval over seeds for it, the target held fixed), and the
number of seeds that reach that error within one tenth of the budget (the fraction is at most
0.10 when at least half of them do). A last table sets each ``tc-`` method against
``optuna-hb`` on the same seeds: wins / losses and the differences of the median and mean
final errors, with 90 % paired-bootstrap intervals.

Run (in a benchmark venv with yahpo-gym, onnxruntime, optuna, dehb and torch, see
docs/benchmarks.md; one process a problem, then merge the saved runs)::

    M=random,tc-auto,optuna-hb,optuna-sha,dehb
    python benchmarks/multifidelity.py --problems lcbench --instance-ids 3945 --seeds 10 \\
        --methods $M --save lcb_3945.pkl
    python benchmarks/multifidelity.py --load lcb_*.pkl
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _machine import (  # benchmarks/_machine.py (the script's folder)
    PORTABLE_HELP,
    machine,
    portable_numerics,
)
from _stats import paired  # benchmarks/_stats.py

import tunecraft as tc
from tunecraft.schedulers import ASHAScheduler, HyperbandScheduler, make_scheduler

YAHPO_DATA = os.environ.get(
    "YAHPO_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "yahpo")
)
AUTO_OPTIONS: dict[str, Any] = {"reduction_factor": 3}
PRIOR_K = 5  # tc-auto+prior: configurations transferred from earlier studies, run first
NEEDS_PRIOR = {"tc-auto+prior"}
LCBENCH_INSTANCES = ["3945", "7593", "34539", "126025", "126026", "126029", "146212", "167104"]


# -- problems ------------------------------------------------------------------------------------
class Run:
    """One configuration being trained: ``step()`` trains one more epoch, returns val error."""

    epoch = 0

    def step(self) -> float:
        raise NotImplementedError


@dataclass
class Problem:
    name: str
    max_epochs: int
    space: dict[str, Any]
    start: Callable[[dict[str, Any], int], Run]
    optuna_space: Callable[[Any], dict[str, Any]]
    # earlier studies on other tasks, for the transfer row: (seed, k) -> configs to run first
    prior: Callable[[int, int], list[dict[str, Any]]] | None = None


class SurrogateRun(Run):
    """An LCBench surrogate learning curve, queried lazily in chunks (epochs 1-3, 4-9, 10-27,
    28-52): each epoch is its own row of the surrogate, so a configuration stopped early costs
    a few rows instead of the whole curve (same values, less CPU). Pickles (checkpoints) hold
    the instance, the configuration and the curve so far."""

    def __init__(self, instance: str, x: dict[str, Any], max_epochs: int) -> None:
        self.instance = instance
        self.x = x
        self.max_epochs = max_epochs
        self.curve: list[float] = []
        self.epoch = 0

    def step(self) -> float:
        self.epoch += 1
        if self.epoch > len(self.curve):
            end = 3
            while end < self.epoch:
                end *= 3
            first, last = len(self.curve) + 1, min(end, self.max_epochs)
            bench = _BENCHES[self.instance]
            xs = [
                dict(self.x, epoch=e, OpenML_task_id=self.instance) for e in range(first, last + 1)
            ]
            self.curve += [100.0 - float(r["val_accuracy"]) for r in bench.objective_function(xs)]
        return self.curve[self.epoch - 1]


_BENCHES: dict[str, Any] = {}
_LCB_SPACE = {
    "batch_size": tc.integer(16, 512, log=True),
    "learning_rate": tc.loguniform(1e-4, 1e-1),
    "max_dropout": tc.uniform(0.0, 1.0),
    "max_units": tc.integer(64, 1024, log=True),
    "momentum": tc.uniform(0.1, 0.99),
    "num_layers": tc.integer(1, 5),
    "weight_decay": tc.uniform(1e-5, 0.1),
}


def _lcb_optuna(trial: Any) -> dict[str, Any]:
    return {
        "batch_size": trial.suggest_int("batch_size", 16, 512, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "max_dropout": trial.suggest_float("max_dropout", 0.0, 1.0),
        "max_units": trial.suggest_int("max_units", 64, 1024, log=True),
        "momentum": trial.suggest_float("momentum", 0.1, 0.99),
        "num_layers": trial.suggest_int("num_layers", 1, 5),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 0.1),
    }


def lcbench_point(config: dict[str, Any]) -> dict[str, Any]:
    """The surrogate's input for ``config``: the space's parameters, the learning rate clipped
    into the range YAHPO accepts (its lower bound is a hair above 1e-4)."""
    x = {k: config[k] for k in _LCB_SPACE}
    x["learning_rate"] = min(max(x["learning_rate"], 1.0000000000000009e-4), 0.1)
    return x


def lcbench(instance: str) -> Problem:
    from yahpo_gym import benchmark_set, local_config

    local_config.init_config()
    local_config.set_data_path(os.path.abspath(YAHPO_DATA))
    with _quiet():
        bench = benchmark_set.BenchmarkSet("lcbench")
    bench.set_instance(instance)
    _BENCHES[instance] = bench

    def start(config: dict[str, Any], seed: int) -> Run:
        return SurrogateRun(instance, lcbench_point(config), 52)

    def prior(seed: int, k: int) -> list[dict[str, Any]]:
        return lcbench_portfolio(seed, k)

    return Problem(f"lcbench/{instance}", 52, _LCB_SPACE, start, _lcb_optuna, prior)


PRIOR_CONFIGS = 500  # configurations of each earlier study on another LCBench instance
_PORTFOLIOS: dict[tuple[int, int], list[dict[str, Any]]] = {}


def lcbench_prior_studies(
    seed: int, metric: str = "val_accuracy"
) -> list[list[tuple[dict[str, Any], float]]]:
    """Earlier studies for the transfer row: one per LCBench instance this benchmark never
    scores (26 of the 34; none of ``LCBENCH_INSTANCES``), each the same ``PRIOR_CONFIGS``
    random configurations (drawn from ``seed``) trained for 52 epochs there, as
    ``(config, validation error)`` pairs: ``100 - val_accuracy``, or with
    ``metric="val_balanced_accuracy"`` (a fraction) ``100 - 100 * val_balanced_accuracy``."""
    from yahpo_gym import benchmark_set, local_config

    scales = {"val_accuracy": 1.0, "val_balanced_accuracy": 100.0}  # percent, fraction
    if metric not in scales:
        raise ValueError(
            f"lcbench_prior_studies: metric must be one of {list(scales)}, got {metric!r}"
        )
    scale = scales[metric]
    local_config.init_config()
    local_config.set_data_path(os.path.abspath(YAHPO_DATA))
    with _quiet():
        bench = benchmark_set.BenchmarkSet("lcbench")
    space = tc.space.Space(_LCB_SPACE)
    rng = np.random.default_rng([seed, 7919])
    configs = [lcbench_point(space.sample(rng)) for _ in range(PRIOR_CONFIGS)]
    studies = []
    for inst in (str(i) for i in bench.instances):
        if inst in LCBENCH_INSTANCES:
            continue
        bench.set_instance(inst)
        out = bench.objective_function([dict(x, epoch=52, OpenML_task_id=inst) for x in configs])
        errors = [100.0 - scale * float(r[metric]) for r in out]
        studies.append(list(zip(configs, errors, strict=True)))
    return studies


def lcbench_portfolio(seed: int, k: int) -> list[dict[str, Any]]:
    """The transfer row's prior: ``k`` configurations that ``load_prior(...,
    select="portfolio")`` chooses from :func:`lcbench_prior_studies`. The earlier studies'
    cost is not charged to the target's budget: they stand for the studies a team ran before
    on other datasets."""
    from tunecraft.strategy import load_prior

    if (seed, k) not in _PORTFOLIOS:
        studies = lcbench_prior_studies(seed)
        chosen = load_prior(studies, _LCB_SPACE, k=k, select="portfolio", seed=seed)
        _PORTFOLIOS[seed, k] = [c.config for c in chosen]
    return _PORTFOLIOS[seed, k]


class DigitsRun(Run):
    def __init__(self, config: dict[str, Any], seed: int, data: Any) -> None:
        import torch

        torch.manual_seed(seed)
        self.torch = torch
        self.data = data
        n_in, width, depth = 64, int(config["width"]), int(config["layers"])
        layers: list[Any] = []
        for i in range(depth):
            layers += [torch.nn.Linear(n_in if i == 0 else width, width), torch.nn.ReLU()]
            layers.append(torch.nn.Dropout(float(config["dropout"])))
        layers.append(torch.nn.Linear(width if depth else n_in, 10))
        self.model = torch.nn.Sequential(*layers)
        self.opt = torch.optim.SGD(
            self.model.parameters(),
            lr=float(config["lr"]),
            momentum=float(config["momentum"]),
            weight_decay=float(config["weight_decay"]),
        )
        self.batch = int(config["batch_size"])
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def step(self) -> float:
        torch = self.torch
        xtr, ytr, xva, yva = self.data
        self.model.train()
        order = torch.randperm(len(xtr), generator=self.gen)
        for i in range(0, len(xtr), self.batch):
            idx = order[i : i + self.batch]
            self.opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.model(xtr[idx]), ytr[idx])
            if not torch.isfinite(loss):
                break
            loss.backward()
            self.opt.step()
        self.epoch += 1
        self.model.eval()
        with torch.no_grad():
            pred = self.model(xva).argmax(1)
        return 100.0 * float((pred != yva).float().mean())

    def __getstate__(self) -> dict[str, Any]:  # a checkpoint: weights, optimizer, RNG
        state = dict(self.__dict__)
        state.pop("torch")
        buf = io.BytesIO()
        self.torch.save(
            {"model": self.model, "opt": self.opt.state_dict(), "gen": self.gen.get_state()}, buf
        )
        state.update(model=None, opt=None, gen=None, blob=buf.getvalue(), opt_cls=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import torch

        blob = state.pop("blob")
        state.pop("opt_cls")
        self.__dict__.update(state)
        self.torch = torch
        saved = torch.load(io.BytesIO(blob), weights_only=False)
        self.model = saved["model"]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.opt.load_state_dict(saved["opt"])
        self.gen = torch.Generator()
        self.gen.set_state(saved["gen"])


_DIGITS_SPACE = {
    "lr": tc.loguniform(1e-3, 1.0),
    "momentum": tc.uniform(0.0, 0.99),
    "weight_decay": tc.loguniform(1e-6, 1e-1),
    "batch_size": tc.choice([16, 32, 64, 128, 256]),
    "width": tc.integer(8, 256, log=True),
    "layers": tc.integer(1, 3),
    "dropout": tc.uniform(0.0, 0.7),
}


def _digits_optuna(trial: Any) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", 1e-3, 1.0, log=True),
        "momentum": trial.suggest_float("momentum", 0.0, 0.99),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256]),
        "width": trial.suggest_int("width", 8, 256, log=True),
        "layers": trial.suggest_int("layers", 1, 3),
        "dropout": trial.suggest_float("dropout", 0.0, 0.7),
    }


def digits(max_epochs: int = 27) -> Problem:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)
    data = (
        torch.tensor(xtr, dtype=torch.float32),
        torch.tensor(ytr),
        torch.tensor(xva, dtype=torch.float32),
        torch.tensor(yva),
    )
    return Problem(
        "digits-mlp",
        max_epochs,
        _DIGITS_SPACE,
        lambda config, seed: DigitsRun(config, seed, data),
        _digits_optuna,
    )


# -- bookkeeping ---------------------------------------------------------------------------------
@dataclass
class Ledger:
    """Epochs spent and the incumbent (best full-fidelity error) after each of them."""

    budget: int
    max_epochs: int
    used: int = 0
    best: float = math.inf
    full: int = 0  # evaluations at full fidelity: the more, the luckier the best of them
    trace: list[tuple[int, float]] = field(default_factory=list)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.budget

    def epoch(self, run: Run, value: float) -> None:
        self.used += 1
        if run.epoch >= self.max_epochs:
            self.full += 1
            if value < self.best:
                self.best = value
                self.trace.append((self.used, value))

    def at(self, epochs: float) -> float:
        best = math.inf
        for used, v in self.trace:
            if used > epochs:
                break
            best = v
        return best

    def reach(self, target: float) -> float:
        for used, v in self.trace:
            if v <= target:
                return used / self.budget
        return math.inf


# -- methods -------------------------------------------------------------------------------------
def run_random(problem: Problem, seed: int, ledger: Ledger) -> None:
    space = tc.space.Space(problem.space)
    rng = np.random.default_rng(seed)
    while not ledger.exhausted:
        run = problem.start(space.sample(rng), seed)
        while run.epoch < problem.max_epochs and not ledger.exhausted:
            ledger.epoch(run, run.step())


def run_tunecraft(
    problem: Problem,
    seed: int,
    ledger: Ledger,
    *,
    min_resource: int | str,
    sampler: str,
    model_based: bool = True,
    hyperband: bool = False,
    auto_options: dict[str, Any] | None = None,
    prior: int = 0,
    defaults: bool = False,
) -> None:
    scheduler: Any
    if auto_options is not None:
        scheduler = make_scheduler(
            "auto", seed=seed, options={"max_resource": problem.max_epochs, **auto_options}
        )
    elif hyperband:
        scheduler = HyperbandScheduler(
            min_resource=1,
            max_resource=problem.max_epochs,
            reduction_factor=3,
            variant="promotion",
            model_based=model_based,
        )
    else:
        scheduler = ASHAScheduler(
            min_resource=min_resource,
            max_resource=problem.max_epochs,
            reduction_factor=3,
            variant="promotion",
            model_based=model_based,
        )
    with tempfile.TemporaryDirectory() as tmp:
        study = tc.Study(
            problem.space,
            sampler=tc.make_sampler(sampler, seed=seed),
            scheduler=scheduler,
            artifact_dir=tmp,
        )
        if prior:
            assert problem.prior is not None
            for config in problem.prior(seed, prior):
                study.enqueue(config)
        if defaults:
            from tunecraft.strategy import default_config

            study.enqueue(default_config(study.space))
        while not ledger.exhausted:
            trial = study.ask()
            run = trial.load_checkpoint() if trial.resumed else None
            if run is None:
                run = problem.start(trial.config, seed * 100_003 + trial.number)
            value = math.inf
            while run.epoch < problem.max_epochs and not ledger.exhausted:
                value = run.step()
                ledger.epoch(run, value)
                trial.report(value if math.isfinite(value) else 100.0, step=run.epoch)
                if trial.should_stop():
                    break
            if trial.decision == "pause":
                trial.save_checkpoint(run)
            study.tell(trial, value if math.isfinite(value) else 100.0)


def run_optuna(problem: Problem, seed: int, ledger: Ledger, *, pruner: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if pruner == "hyperband":
        p: Any = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=problem.max_epochs, reduction_factor=3
        )
    else:
        p = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    # a fixed name: HyperbandPruner hashes it into its bracket choice (the default is random)
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=seed), pruner=p, study_name=f"{pruner}-{seed}"
    )
    while not ledger.exhausted:
        trial = study.ask()
        config = problem.optuna_space(trial)
        run = problem.start(config, seed * 100_003 + trial.number)
        value = math.inf
        pruned = False
        while run.epoch < problem.max_epochs and not ledger.exhausted:
            value = run.step()
            ledger.epoch(run, value)
            trial.report(value, run.epoch)
            if trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)


def run_dehb(problem: Problem, seed: int, ledger: Ledger) -> None:
    import ConfigSpace
    from dehb import DEHB

    cs = ConfigSpace.ConfigurationSpace(seed=seed)
    for name, p in problem.space.items():
        if isinstance(p, tc.space.Categorical):
            cs.add_hyperparameter(ConfigSpace.CategoricalHyperparameter(name, list(p.options)))
        elif isinstance(p, tc.space.Int):
            cs.add_hyperparameter(
                ConfigSpace.UniformIntegerHyperparameter(name, p.low, p.high, log=p.log)
            )
        else:
            cs.add_hyperparameter(
                ConfigSpace.UniformFloatHyperparameter(name, p.low, p.high, log=p.log)
            )
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        dehb = DEHB(
            cs=cs,
            dimensions=len(problem.space),
            min_fidelity=1,
            max_fidelity=problem.max_epochs,
            eta=3,
            n_workers=1,
            output_path=tmp,
            seed=seed,
        )
        while not ledger.exhausted:
            job = dehb.ask()
            epochs = max(1, round(job["fidelity"]))
            config = dict(job["config"])
            run = problem.start(config, seed * 100_003 + ledger.used)
            value = math.inf
            while run.epoch < epochs and not ledger.exhausted:
                value = run.step()
                ledger.epoch(run, value)
            dehb.tell(job, {"fitness": float(value), "cost": float(epochs)})


def _quiet() -> Any:
    import contextlib

    return contextlib.redirect_stdout(io.StringIO())


def methods(available: set[str], sampler: str) -> dict[str, Callable[..., None]]:
    out: dict[str, Callable[..., None]] = {
        "random": run_random,
        "tc-auto": lambda p, s, led: run_tunecraft(
            p, s, led, min_resource=1, sampler=sampler, auto_options=dict(AUTO_OPTIONS)
        ),
        "tc-auto+prior": lambda p, s, led: run_tunecraft(
            p,
            s,
            led,
            min_resource=1,
            sampler=sampler,
            auto_options=dict(AUTO_OPTIONS),
            prior=PRIOR_K,
        ),
        "tc-auto+defaults": lambda p, s, led: run_tunecraft(
            p,
            s,
            led,
            min_resource=1,
            sampler=sampler,
            auto_options=dict(AUTO_OPTIONS),
            defaults=True,
        ),
        "tc-asha": lambda p, s, led: run_tunecraft(
            p, s, led, min_resource="auto", sampler=sampler
        ),
        "tc-auto-stop": lambda p, s, led: run_tunecraft(
            p,
            s,
            led,
            min_resource=1,
            sampler=sampler,
            auto_options=dict(AUTO_OPTIONS, variant="stopping"),
        ),
        "tc-asha-r1": lambda p, s, led: run_tunecraft(p, s, led, min_resource=1, sampler=sampler),
        "tc-asha-nomodel": lambda p, s, led: run_tunecraft(
            p, s, led, min_resource="auto", sampler=sampler, model_based=False
        ),
        "tc-bohb": lambda p, s, led: run_tunecraft(
            p, s, led, min_resource=1, sampler=sampler, hyperband=True
        ),
        "optuna-hb": lambda p, s, led: run_optuna(p, s, led, pruner="hyperband"),
        "optuna-sha": lambda p, s, led: run_optuna(p, s, led, pruner="sha"),
    }
    if "dehb" in available:
        out["dehb"] = run_dehb
    return out


# -- main ----------------------------------------------------------------------------------------
def _lower_median(xs: list[float]) -> float:
    """The median run's value (the lower of the two middle ones for an even count, so a
    fraction that half the runs never reach reads as the last one that does)."""
    return sorted(xs)[(len(xs) - 1) // 2]


def _reach_interval(xs: list[float], n_boot: int = 2000) -> tuple[float, float]:
    """A 90 % bootstrap interval (over seeds, fixed resampling seed) for ``_lower_median`` of
    the budget fractions ``xs``, the target held fixed.

    With 10 seeds the lower median is the 5th smallest of ten noisy fractions: a change that
    does nothing on average moves it by several hundredths (docs/benchmarks.md), and the
    interval says how far "0.14 against a target of 0.10" is from a miss.
    """
    a = np.asarray(xs, dtype=float)
    rows = np.sort(a[np.random.default_rng(0).integers(0, len(a), (n_boot, len(a)))], axis=1)
    meds = rows[:, (len(a) - 1) // 2]
    # "lower"/"higher": no interpolation, which would turn two infinities into nan
    return float(np.quantile(meds, 0.05, method="lower")), float(
        np.quantile(meds, 0.95, method="higher")
    )


def _fmt(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.2f}"


def _frac(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="lcbench,digits")
    ap.add_argument("--instances", type=int, default=5, help="LCBench instances")
    ap.add_argument("--instance-ids", default=None, help="comma-separated, overrides --instances")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    ap.add_argument("--digits-seeds", type=int, default=None, help="default: --seeds")
    ap.add_argument("--digits-epochs", type=int, default=27)
    ap.add_argument("--budget-full", type=int, default=50, help="full trainings of budget")
    ap.add_argument("--methods", default="all")
    ap.add_argument(
        "--sampler",
        default="auto",
        help="tunecraft sampler for tc-* methods (the study's default)",
    )
    ap.add_argument(
        "--auto-options",
        default=None,
        help='JSON options for the tc-auto scheduler, e.g. {"reduction_factor": 4}',
    )
    ap.add_argument("--save", default=None, help="pickle the raw ledgers here")
    ap.add_argument("--load", nargs="*", default=None, help="only print the table of saved runs")
    ap.add_argument(
        "--portable-numerics",
        action="store_true",
        help=PORTABLE_HELP,
    )
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.portable_numerics and not args.load:
        portable_numerics()
    logging.getLogger("tunecraft").setLevel(logging.ERROR)
    if args.load:
        merged: dict[str, dict[str, list[Ledger]]] = {}
        for path in args.load:
            with open(path, "rb") as f:
                for problem, by_method in pickle.load(f).items():  # files add seeds
                    for name, ledgers in by_method.items():
                        merged.setdefault(problem, {}).setdefault(name, []).extend(ledgers)
        print(report(merged))
        return 0

    print(machine(), file=sys.stderr)
    available = set()
    try:
        import dehb  # noqa: F401

        available.add("dehb")
    except ImportError:
        print("dehb not installed: skipped", file=sys.stderr)
    if args.auto_options is not None:
        AUTO_OPTIONS.clear()
        AUTO_OPTIONS.update(json.loads(args.auto_options))
    table = methods(available, args.sampler)
    if args.methods != "all":
        table = {k: v for k, v in table.items() if k in args.methods.split(",")}

    problems: list[tuple[Problem, int]] = []
    names = args.problems.split(",")
    if "lcbench" in names:
        ids = (
            args.instance_ids.split(",")
            if args.instance_ids
            else LCBENCH_INSTANCES[: args.instances]
        )
        problems += [(lcbench(i), args.seeds) for i in ids]
    if "digits" in names:
        problems.append((digits(args.digits_epochs), args.digits_seeds or args.seeds))

    raw: dict[str, dict[str, list[Ledger]]] = {}
    for problem, n_seeds in problems:
        budget = args.budget_full * problem.max_epochs
        raw[problem.name] = {}
        for name, fn in table.items():
            if name in NEEDS_PRIOR and problem.prior is None:
                print(f"{problem.name}: no earlier studies, {name} skipped", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            ledgers = []
            for seed in range(args.first_seed, args.first_seed + n_seeds):
                ledger = Ledger(budget, problem.max_epochs)
                fn(problem, seed, ledger)
                ledgers.append(ledger)
            raw[problem.name][name] = ledgers
            final = _fmt(float(np.median([x.best for x in ledgers])))
            print(
                f"{problem.name:>20} {name:>11}: final {final} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            if args.save:  # after every method, so an interrupted run keeps what it did
                with open(args.save, "wb") as f:
                    pickle.dump(raw, f)
    if args.save:
        with open(args.save, "wb") as f:
            pickle.dump(raw, f)
    print(report(raw))
    return 0


def report(raw: dict[str, dict[str, list[Ledger]]]) -> str:
    lines = [
        "| problem | method | err@10% | err@25% | err@50% | final err | budget to random's "
        "final (90% bootstrap interval) | seeds there by 10% | worse than random (seeds) "
        "| full-fidelity runs |",
        "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for problem, by_method in raw.items():
        rand = by_method.get("random")
        target = float(np.median([x.best for x in rand])) if rand else math.nan
        for name, ledgers in by_method.items():
            b = ledgers[0].budget
            cells = [
                _fmt(float(np.median([x.at(f * b) for x in ledgers]))) for f in (0.1, 0.25, 0.5)
            ]
            final = float(np.median([x.best for x in ledgers]))
            fracs = [x.reach(target) for x in ledgers]
            reach = _lower_median(fracs) if rand else math.nan
            lo, hi = _reach_interval(fracs) if rand else (math.nan, math.nan)
            # the fraction is a median: one tenth needs at least half the seeds here
            by_tenth = f"{sum(f <= 0.1 for f in fracs)}/{len(fracs)}" if rand else "-"
            worse = (
                sum(x.best > r.best for x, r in zip(ledgers, rand, strict=False)) if rand else 0
            )
            # ledgers saved before the count existed have none: "-"
            counts = [x.full for x in ledgers]
            full = f"{np.median(counts):g}" if any(counts) else "-"
            lines.append(
                f"| {problem} | {name} | {' | '.join(cells)} | {_fmt(final)} "
                f"| {_frac(reach)} ({_frac(lo)}-{_frac(hi)}) | {by_tenth} "
                f"| {worse}/{len(ledgers)} | {full} |"
            )
    lines += ["", summary(raw), "", versus(raw)]
    return "\n".join(lines)


def versus(raw: dict[str, dict[str, list[Ledger]]], peer: str = "optuna-hb") -> str:
    """tunecraft's methods against ``peer``, problem by problem, on the final error of the
    same seeds: wins / losses, and the differences of medians and of means with 90 %
    paired-bootstrap intervals (negative: tunecraft lower)."""
    lines = [
        f"Final error against {peer}, same seeds (negative: tunecraft lower; intervals 90 %, "
        "paired bootstrap):",
        "",
        "| problem | method | W / L | median diff | mean diff |",
        "|:--|:--|--:|--:|--:|",
    ]
    for problem, by_method in raw.items():
        if peer not in by_method:
            continue
        theirs = [x.best for x in by_method[peer]]
        for name, ledgers in by_method.items():
            mine = [x.best for x in ledgers]
            if not name.startswith("tc-") or len(mine) != len(theirs):
                continue
            if not all(map(math.isfinite, mine + theirs)):  # a seed with no full-length result
                w = sum(x < y for x, y in zip(mine, theirs, strict=True))
                lo = sum(x > y for x, y in zip(mine, theirs, strict=True))
                lines.append(f"| {problem} | {name} | {w} / {lo} | - | - |")
                continue
            w, lo, d, (d_lo, d_hi), dm, (dm_lo, dm_hi) = paired(mine, theirs)
            lines.append(
                f"| {problem} | {name} | {w} / {lo} | {d:+.2f} ({d_lo:+.2f}, {d_hi:+.2f}) "
                f"| {dm:+.2f} ({dm_lo:+.2f}, {dm_hi:+.2f}) |"
            )
    return "\n".join(lines)


def summary(raw: dict[str, dict[str, list[Ledger]]], peer: str = "optuna-hb") -> str:
    """One row a method, over all problems: the issue's three targets at a glance."""
    names: list[str] = []
    for by_method in raw.values():
        names += [n for n in by_method if n not in names]
    lines = [
        "| method | budget to random's final (median per problem: min / median / max) | "
        f"problems with median final <= random's | problems with median final < {peer}'s | "
        f"runs better / worse than {peer} (same seed) | runs worse than random (same seed) |",
        "|:--|:--|--:|--:|--:|--:|",
    ]
    for name in names:
        reaches, le_random, lt_peer, worse, n_runs = [], 0, 0, 0, 0
        beat, lost = 0, 0
        n_problems = 0
        for by_method in raw.values():
            if name not in by_method or "random" not in by_method:
                continue
            ledgers, rand = by_method[name], by_method["random"]
            n_problems += 1
            target = float(np.median([x.best for x in rand]))
            final = float(np.median([x.best for x in ledgers]))
            reaches.append(_lower_median([x.reach(target) for x in ledgers]))
            le_random += final <= target
            if peer in by_method:
                lt_peer += final < float(np.median([x.best for x in by_method[peer]]))
                pairs = list(zip(ledgers, by_method[peer], strict=False))
                beat += sum(x.best < y.best for x, y in pairs)
                lost += sum(x.best > y.best for x, y in pairs)
            worse += sum(x.best > r.best for x, r in zip(ledgers, rand, strict=False))
            n_runs += min(len(ledgers), len(rand))
        if not n_problems:
            continue
        r = sorted(reaches)
        span = f"{_frac(r[0])} / {_frac(float(np.median(r)))} / {_frac(r[-1])}"
        vs_peer = "-" if name == peer else f"{lt_peer}/{n_problems}"
        runs_vs_peer = "-" if name == peer else f"{beat} / {lost}"
        lines.append(
            f"| {name} | {span} | {le_random}/{n_problems} | {vs_peer} | {runs_vs_peer} "
            f"| {worse}/{n_runs} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""Storage throughput: ask/tell trials per second, tunecraft vs Optuna, in memory and on SQLite.

Each run is an ask/tell loop of a trivial objective (``x ** 2`` of one uniform float on
[-1, 1], random sampler) through each library's explicit ask/tell API:

* ``tunecraft/memory``: ``tc.Study(...)`` with the default in-memory storage;
* ``tunecraft/sqlite``: ``storage="sqlite:///<fresh tmpdir>/tc.db"``;
* ``optuna/memory``: ``optuna.create_study(storage=InMemoryStorage())``;
* ``optuna/sqlite``: ``RDBStorage("sqlite:///<fresh tmpdir>/optuna.db")``.

Only the loop is timed (``time.perf_counter``): creating the study, the engine and the schema
is not. Every repeat uses a fresh study (and, for SQLite, a fresh database file). The backends
run interleaved, one run of each per repeat, the order rotated from repeat to repeat, so that
machine noise hits all of them alike. The table reports the median trials per second over the
repeats, and the ratio tunecraft / Optuna for each storage.

Run::

    python benchmarks/storage_throughput.py                      # 1000 trials, 5 repeats
    python benchmarks/storage_throughput.py --optuna-sqlite-trials 200 --markdown

Needs Optuna: ``pip install "tunecraft[benchmark]"``. This is a benchmark, not a test: it is
run on demand, not by CI.
"""

from __future__ import annotations

import argparse
import gc
import logging
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BACKENDS = ("tunecraft/memory", "tunecraft/sqlite", "optuna/memory", "optuna/sqlite")
TARGETS = {"memory": 1.0, "sqlite": 5.0}  # tunecraft / Optuna trials per second, at least

Runner = Callable[[int, Path], float]


def _objective(x: float) -> float:
    return x**2


def _import_optuna() -> ModuleType:
    try:
        import optuna
    except ImportError:
        sys.exit(
            "This benchmark compares against Optuna, which is not installed; install it with: "
            'pip install "tunecraft[benchmark]"'
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    warnings.filterwarnings("ignore", module="optuna")
    return optuna


# -- one timed run per backend -------------------------------------------------------------------
def _run_tunecraft(n_trials: int, workdir: Path, *, sqlite: bool) -> float:
    import tunecraft as tc

    storage = f"sqlite:///{workdir / 'tc.db'}" if sqlite else None
    study = tc.Study(
        {"x": tc.uniform(-1, 1)}, sampler=tc.make_sampler("random", seed=0), storage=storage
    )
    try:
        start = time.perf_counter()
        for _ in range(n_trials):
            trial = study.ask()
            study.tell(trial, _objective(trial.config["x"]))
        elapsed = time.perf_counter() - start
        _check_count(len(study.trials), n_trials, "tunecraft")
    finally:
        close = getattr(study.storage, "close", None)
        if close is not None:
            close()
    return elapsed


def _run_optuna(n_trials: int, workdir: Path, *, sqlite: bool) -> float:
    optuna = _import_optuna()
    if sqlite:
        storage: Any = optuna.storages.RDBStorage(f"sqlite:///{workdir / 'optuna.db'}")
    else:
        storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    try:
        start = time.perf_counter()
        for _ in range(n_trials):
            trial = study.ask()
            study.tell(trial, _objective(trial.suggest_float("x", -1.0, 1.0)))
        elapsed = time.perf_counter() - start
        _check_count(len(study.trials), n_trials, "optuna")
    finally:
        if sqlite:
            storage.remove_session()
            storage.engine.dispose()
    return elapsed


def _check_count(got: int, want: int, who: str) -> None:
    if got != want:
        raise RuntimeError(f"{who}: expected {want} trials in the study, found {got}.")


RUNNERS: dict[str, Runner] = {
    "tunecraft/memory": lambda n, d: _run_tunecraft(n, d, sqlite=False),
    "tunecraft/sqlite": lambda n, d: _run_tunecraft(n, d, sqlite=True),
    "optuna/memory": lambda n, d: _run_optuna(n, d, sqlite=False),
    "optuna/sqlite": lambda n, d: _run_optuna(n, d, sqlite=True),
}


# -- the driver ----------------------------------------------------------------------------------
@dataclass
class Result:
    """The timings of one backend over all repeats."""

    backend: str
    n_trials: int
    seconds: list[float] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [self.n_trials / s for s in self.seconds]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)


def run(
    backends: Sequence[str],
    trials: dict[str, int],
    repeats: int,
    *,
    warmup: int,
    verbose: bool,
) -> dict[str, Result]:
    """Run every backend ``repeats`` times, interleaved, and return the timings."""
    results = {b: Result(b, trials[b]) for b in backends}
    with tempfile.TemporaryDirectory(prefix="tc-bench-") as tmp:
        root = Path(tmp)
        if warmup:
            for b in backends:  # imports, SQLAlchemy statement caches, first-call costs
                work = root / f"warmup-{b.replace('/', '-')}"
                work.mkdir()
                RUNNERS[b](warmup, work)
        for r in range(repeats):
            order = list(backends[r % len(backends) :]) + list(backends[: r % len(backends)])
            for b in order:
                work = root / f"r{r}-{b.replace('/', '-')}"
                work.mkdir()
                gc.collect()
                seconds = RUNNERS[b](trials[b], work)
                results[b].seconds.append(seconds)
                if verbose:
                    print(
                        f"  repeat {r + 1}/{repeats} {b:<17} {trials[b]:>5} trials "
                        f"{seconds:8.3f} s  {trials[b] / seconds:10.1f} trials/s",
                        file=sys.stderr,
                        flush=True,
                    )
    return results


def _ratio(results: dict[str, Result], storage: str) -> float | None:
    tc_r, op_r = results.get(f"tunecraft/{storage}"), results.get(f"optuna/{storage}")
    if tc_r is None or op_r is None:
        return None
    return tc_r.median_rate / op_r.median_rate


def format_table(results: dict[str, Result], repeats: int, *, markdown: bool) -> str:
    """The results as a plain-text (or markdown) table, with the ratios and targets below."""
    header = [
        "backend",
        "trials/run",
        "repeats",
        "median trials/s",
        "min-max trials/s",
        "ms/trial",
    ]
    rows = []
    for res in results.values():
        rates = res.rates
        rows.append(
            [
                res.backend,
                str(res.n_trials),
                str(repeats),
                f"{res.median_rate:,.1f}",
                f"{min(rates):,.1f}-{max(rates):,.1f}",
                f"{1000.0 / res.median_rate:.3f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = [False, True, True, True, True, True]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return ("| " + " | ".join(padded) + " |") if markdown else "  ".join(padded)

    out = [line(header)]
    if markdown:
        out.append(
            "|"
            + "|".join(
                ("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1))
                for w, r in zip(widths, right, strict=True)
            )
            + "|"
        )
    else:
        out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in rows)
    out.append("")
    ratio_rows = []
    for storage, target in TARGETS.items():
        ratio = _ratio(results, storage)
        if ratio is None:
            continue
        verdict = "met" if ratio >= target else "MISSED"
        ratio_rows.append(
            f"tunecraft / Optuna on {storage}: {ratio:.2f}x (target >= {target:g}x: {verdict})"
        )
    if markdown:
        out.extend(f"- {r}" for r in ratio_rows)
    else:
        out.extend(ratio_rows)
    if len({r.n_trials for r in results.values()}) > 1:
        out.append("")
        note = (
            "Rows ran different numbers of trials per run (see trials/run); trials/s stays "
            "comparable because per-trial cost does not fall as a study grows (it stays flat or "
            "rises), so a shorter run, if anything, flatters that row."
        )
        out.append(f"_{note}_" if markdown else note)
    return "\n".join(out)


def profile(backend: str, n_trials: int, *, warmup: int, top: int = 25) -> None:
    """Run ``backend`` once under cProfile and print the top functions by cumulative and
    by own time."""
    import cProfile
    import pstats

    if backend.startswith("optuna/"):
        _import_optuna()
    with tempfile.TemporaryDirectory(prefix="tc-bench-") as tmp:
        if warmup:
            (Path(tmp) / "warmup").mkdir()
            RUNNERS[backend](warmup, Path(tmp) / "warmup")
        (Path(tmp) / "run").mkdir()
        profiler = cProfile.Profile()
        profiler.enable()
        seconds = RUNNERS[backend](n_trials, Path(tmp) / "run")
        profiler.disable()
    print(f"{backend}: {n_trials} trials in {seconds:.3f} s under the profiler; {versions()}")
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def versions() -> str:
    """Python, platform and library versions, for the record."""
    import os

    import sqlalchemy

    import tunecraft

    parts = [
        f"Python {platform.python_version()}",
        f"{platform.system()} {platform.machine()}",
        f"{os.cpu_count()} CPUs",
        f"tunecraft {tunecraft.__version__}",
    ]
    try:
        import optuna

        parts.append(f"optuna {optuna.__version__}")
    except ImportError:
        parts.append("optuna not installed")
    parts.append(f"SQLAlchemy {sqlalchemy.__version__}")
    import sqlite3

    parts.append(f"SQLite {sqlite3.sqlite_version}")
    return ", ".join(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ask/tell trials per second, tunecraft vs Optuna, in memory and on SQLite."
    )
    parser.add_argument("--trials", type=int, default=1000, help="trials per run (default 1000)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per backend; the median is reported"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BACKENDS,
        metavar="BACKEND",
        help=f"run only these backends (of: {', '.join(BACKENDS)})",
    )
    parser.add_argument(
        "--optuna-sqlite-trials",
        type=int,
        default=None,
        help="trials per run for optuna/sqlite only (default: --trials); Optuna's SQLite path "
        "is slow, this time-boxes it",
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed trials per backend first (default 20)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        "--profile",
        choices=BACKENDS,
        metavar="BACKEND",
        help="instead of the table, run one BACKEND once for --trials under cProfile and print "
        "its hot spots (the loop only; the profiler inflates the times)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-run progress on stderr")
    args = parser.parse_args(argv)
    for name in ("trials", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.optuna_sqlite_trials is not None and args.optuna_sqlite_trials < 1:
        parser.error("--optuna-sqlite-trials must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends = [b for b in BACKENDS if not args.only or b in args.only]
    if any(b.startswith("optuna/") for b in backends):
        _import_optuna()
    logging.getLogger("tunecraft").setLevel(logging.WARNING)
    if args.profile:
        profile(args.profile, args.trials, warmup=args.warmup)
        return 0
    trials = {b: args.trials for b in backends}
    if "optuna/sqlite" in trials and args.optuna_sqlite_trials is not None:
        trials["optuna/sqlite"] = args.optuna_sqlite_trials
    results = run(backends, trials, args.repeats, warmup=args.warmup, verbose=not args.quiet)
    print(f"Storage throughput: ask/tell of x**2, random sampler; {versions()}")
    print()
    print(format_table(results, args.repeats, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``tunecraft`` command.

::

    tunecraft --version
    tunecraft demo [--n-trials N] [--n-jobs J] [--storage URL] [--study NAME] [--seed S]
                   [--no-progress]
    tunecraft run CONFIG.yaml [--n-trials N] [--n-jobs J] [--storage URL] [--study NAME]
                   [--no-progress]
    tunecraft tune CONFIG.yaml [--storage URL] [--study NAME] [--quiet]
    tunecraft studies [--storage URL]
    tunecraft trials NAME [--storage URL] [--top K]
    tunecraft best NAME [--storage URL] [--json]

Every mistake a user can make (a bad config, an unknown key, a study that does not exist, a
storage that cannot be opened, an objective that cannot be imported) ends with one line
``tunecraft: error: ...`` on stderr and a non-zero exit status: 2 for a misused command line,
1 otherwise. Set ``TUNECRAFT_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tunecraft.exceptions import TunecraftError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from tunecraft.study import Study
    from tunecraft.trial import FrozenTrial

__all__ = ["CONFIG_KEYS", "TUNE_KEYS", "ConfigError", "load_config", "load_tune_config", "main"]

PROG = "tunecraft"
DEFAULT_STORAGE = "sqlite:///tunecraft.db"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The keys a ``tunecraft run`` config file may hold, with what each one means.
CONFIG_KEYS: dict[str, str] = {
    "objective": "'module:function' returning the value to optimize (required)",
    "space": "{name: domain} such as 'log-uniform(1e-5, 1e-2)' (required)",
    "direction": "'minimize' (default) or 'maximize'",
    "n_trials": "finished trials the study should hold; a re-run adds only the missing ones",
    "timeout": "seconds after which no new trial starts",
    "n_jobs": "worker processes (default 1; -1: one per CPU)",
    "sampler": "a name ('auto', 'random', 'sobol', 'grid'...) or {name, seed, options}",
    "seed": "seeds the sampler",
    "scheduler": "a name or {name, options} (default: none)",
    "storage": f"a storage URL (default '{DEFAULT_STORAGE}')",
    "study": "the study's name (default: the config file's name)",
    "heartbeat": "seconds between heartbeats of running trials, so that processes on other "
    "machines sharing the study fail the trials of one that died (default: none)",
}
#: The keys a ``tunecraft tune`` config file may hold (the budgeted pipeline).
TUNE_KEYS: dict[str, str] = {
    "objective": "'module:function' reading trial.budget, trial.seed, trial.split (required)",
    "space": "{name: domain} such as 'log-uniform(1e-5, 1e-2)' (required)",
    "budget": "fidelity units (800), full-length trials ('40 trials') or time ('2h') (required)",
    "max_fidelity": "the length of a full run in the fidelity unit, e.g. 20 epochs (required)",
    "min_fidelity": "the shortest run worth doing (default 1)",
    "unit": "the fidelity unit's name (default 'epochs')",
    "direction": "'minimize' (default) or 'maximize'",
    "shares": "{explore: 0.1, refine: 0.3, validate: 0.6} (the default)",
    "holdout": (
        "{finalists: K, seeds: S, select: validation|holdout, cost: C, race: true|false}: the "
        "final validation (default: 3 finalists raced, one run each and 3 seeds for the best; "
        "chosen on validation; each run costing a full one)"
    ),
    "prior": "names of earlier studies in the storage to start from",
    "defaults": "start from the shipped defaults table (default true)",
    "lr_scaling": "'linear' or 'sqrt': search lr at a reference batch size",
    "lr_param": "the learning-rate parameter (default 'lr' or 'learning_rate')",
    "batch_param": "the batch-size parameter of lr_scaling (default 'batch_size')",
    "reference_batch_size": "the batch size lr_scaling searches lr at (default the smallest)",
    "scheduler": "the refine phase's scheduler: a name or {name, options}",
    "timeout": "wall-clock seconds for the whole pipeline",
    "seed": "seeds the samplers (default 0)",
    "storage": f"a storage URL (default '{DEFAULT_STORAGE}')",
    "study": "the pipeline's name (default: the config file's name)",
}
_COMPONENT_KEYS = {
    "sampler": ("name", "seed", "options"),
    "scheduler": ("name", "options"),
}


class ConfigError(TunecraftError, ValueError):
    """A ``tunecraft run`` config file cannot be used; the message says where and why."""


class _UsageError(Exception):
    """The command line itself is wrong (exit status 2)."""


class _ParserExitError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises instead of exiting, so :func:`main` decides."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _ParserExitError(status)


# -- entry point -----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tunecraft`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 for an error, 2 for a misused command line, 130 when
        interrupted with Ctrl-C.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.command is None:
            raise _UsageError(
                "choose a command: demo, run, tune, studies, trials or best "
                "(see 'tunecraft --help')"
            )
        status: int = args.handler(args)
        return status
    except _ParserExitError as exc:
        return exc.status
    except _UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail(
            "interrupted; finished trials are stored, run the same command again to resume",
            EXIT_INTERRUPTED,
        )
    except BrokenPipeError:  # `tunecraft trials NAME | head`
        _silence_stdout()
        return EXIT_ERROR
    except (TunecraftError, ValueError, TypeError, ImportError, OSError) as exc:
        if os.environ.get("TUNECRAFT_DEBUG"):
            raise
        return _fail(_one_line(exc), EXIT_ERROR)


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    return status


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if not text:
        return type(exc).__name__
    if isinstance(exc, (ImportError, OSError)) and not isinstance(exc, TunecraftError):
        return f"{type(exc).__name__}: {text}"
    return text


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _build_parser() -> _Parser:
    from tunecraft import __version__

    parser = _Parser(
        prog=PROG,
        description="Budget-aware hyperparameter optimization.",
        epilog="Run 'tunecraft COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def storage_option(p: argparse.ArgumentParser, default: str = DEFAULT_STORAGE) -> None:
        p.add_argument(
            "--storage",
            metavar="URL",
            default=default,
            help="'sqlite:///path.db' or 'postgresql://user@host/db' (default: %(default)s)",
        )

    demo = sub.add_parser(
        "demo",
        help="tune an SVM on scikit-learn's digits (resumable)",
        description=(
            "Tune an SVM (C, gamma, kernel, and degree for the polynomial kernel) on "
            "scikit-learn's digits, minimizing the 3-fold cross-validated error. The study is "
            "stored; running the command again continues it and runs only the trials missing "
            "to reach --n-trials."
        ),
    )
    demo.add_argument(
        "--n-trials", type=_positive_int, default=None, metavar="N", help="target (default 30)"
    )
    demo.add_argument(
        "--n-jobs", type=_jobs, default=1, metavar="J", help="worker processes (default 1)"
    )
    storage_option(demo)
    demo.add_argument("--study", default=None, metavar="NAME", help="default: svm-digits")
    demo.add_argument("--seed", type=_non_negative_int, default=0, metavar="S")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(handler=_cmd_demo)

    run = sub.add_parser(
        "run",
        help="run the study a YAML config describes",
        description=(
            "Run the study described by a YAML file. Keys: "
            + "; ".join(f"{k}: {v}" for k, v in CONFIG_KEYS.items())
            + ". Options given here override the file."
        ),
    )
    run.add_argument("config", metavar="CONFIG.yaml")
    run.add_argument("--n-trials", type=_positive_int, default=None, metavar="N")
    run.add_argument("--n-jobs", type=_jobs, default=None, metavar="J")
    run.add_argument("--storage", metavar="URL", default=None, help="overrides the config's")
    run.add_argument("--study", default=None, metavar="NAME", help="overrides the config's")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.set_defaults(handler=_cmd_run)

    tune = sub.add_parser(
        "tune",
        help="run the budgeted pipeline a YAML config describes",
        description=(
            "Run the budgeted pipeline (transfer, explore, refine, validate on a holdout) "
            "described by a YAML file: print the plan, each phase, the validation table. "
            "Running it again continues a pipeline that stopped. Keys: "
            + "; ".join(f"{k}: {v}" for k, v in TUNE_KEYS.items())
            + "."
        ),
    )
    tune.add_argument("config", metavar="CONFIG.yaml")
    tune.add_argument("--storage", metavar="URL", default=None, help="overrides the config's")
    tune.add_argument("--study", default=None, metavar="NAME", help="overrides the config's")
    tune.add_argument("--quiet", action="store_true", help="print only the final tables")
    tune.set_defaults(handler=_cmd_tune)

    studies = sub.add_parser("studies", help="list the studies in a storage")
    storage_option(studies)
    studies.set_defaults(handler=_cmd_studies)

    trials = sub.add_parser("trials", help="show a study's trials")
    trials.add_argument("name", metavar="NAME")
    storage_option(trials)
    trials.add_argument(
        "--top", type=_positive_int, default=None, metavar="K", help="only the K best, best first"
    )
    trials.set_defaults(handler=_cmd_trials)

    best = sub.add_parser("best", help="show a study's best trial")
    best.add_argument("name", metavar="NAME")
    storage_option(best)
    best.add_argument("--json", action="store_true", help="print it as JSON")
    best.set_defaults(handler=_cmd_best)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected -1 or an int >= 1, got {text!r}")
    return value


# -- commands --------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from tunecraft import _demo
    from tunecraft.study import Study

    console = _console()
    target = args.n_trials or _demo.DEMO_N_TRIALS
    name = args.study or _demo.DEMO_STUDY
    console.print(
        f"[bold]tunecraft demo[/]: an SVM (sklearn SVC) on scikit-learn's digits, "
        f"{_demo.N_FOLDS}-fold CV error.",
        soft_wrap=True,
    )
    study = Study(
        _demo.demo_space(),
        direction="minimize",
        sampler="auto",
        storage=args.storage,
        name=name,
        seed=args.seed,
        load_if_exists=True,
    )
    _run_to_target(
        console,
        study,
        _demo.svm_objective,
        target=target,
        timeout=None,
        n_jobs=args.n_jobs,
        progress=not args.no_progress,
        storage_url=args.storage,
    )
    trials = study.trials
    _print_best(console, study, trials)
    console.print()
    console.print(_trials_table(study, trials))
    _print_next_steps(console, study, args.storage)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from tunecraft.study import Study

    path = Path(args.config)
    config = load_config(path)
    objective = import_objective(config["objective"], search=[path.resolve().parent, Path.cwd()])
    storage = args.storage or config.get("storage", DEFAULT_STORAGE)
    name = args.study or config.get("study") or path.stem
    target = args.n_trials or config.get("n_trials")
    n_jobs = args.n_jobs if args.n_jobs is not None else config.get("n_jobs", 1)
    sampler, scheduler = _components(config)

    console = _console()
    study = Study(
        config["space"],
        direction=config.get("direction", "minimize"),
        sampler=sampler,
        scheduler=scheduler,
        storage=storage,
        name=name,
        load_if_exists=True,
        heartbeat_interval=config.get("heartbeat"),
    )
    _run_to_target(
        console,
        study,
        objective,
        target=target,
        timeout=config.get("timeout"),
        n_jobs=n_jobs,
        progress=not args.no_progress,
        storage_url=storage,
    )
    trials = study.trials
    _print_best(console, study, trials)
    console.print()
    shown = 10
    console.print(_trials_table(study, trials, top=shown))
    if len(trials) > shown:
        console.print(
            f"The {shown} best of {len(trials)} trials; "
            f"'tunecraft trials {_quote(name)}{_storage_flag(storage)}' lists them all."
        )
    return EXIT_OK


def _cmd_tune(args: argparse.Namespace) -> int:
    from tunecraft.strategy import BudgetedSearch

    path = Path(args.config)
    config = load_tune_config(path)
    objective = import_objective(config["objective"], search=[path.resolve().parent, Path.cwd()])
    storage = args.storage or config.get("storage", DEFAULT_STORAGE)
    name = args.study or config.get("study") or path.stem
    console = _console()
    _, scheduler = _components({"scheduler": config.get("scheduler"), "seed": config.get("seed")})
    holdout = config.get("holdout") or {}

    status = console.status("", spinner="dots") if not args.quiet else None

    def say(text: str) -> None:
        if not args.quiet:
            console.print(_text(text), soft_wrap=True)

    def progress(phase: str, record: Any) -> None:
        if status is not None:
            value = "-" if record.value is None else f"{record.value:.4g}"
            status.update(_text(f"{phase}: run #{record.number} {record.state.value}, {value}"))

    search = BudgetedSearch(
        objective,
        config["space"],
        budget=config["budget"],
        max_fidelity=config["max_fidelity"],
        min_fidelity=config.get("min_fidelity"),
        unit=config.get("unit", "epochs"),
        direction=config.get("direction", "minimize"),
        storage=storage,
        name=name,
        seed=config.get("seed", 0),
        prior=config.get("prior"),
        defaults=config.get("defaults", True),
        lr_scaling=config.get("lr_scaling"),
        lr_param=config.get("lr_param"),
        batch_param=config.get("batch_param"),
        reference_batch_size=config.get("reference_batch_size"),
        shares=config.get("shares"),
        n_finalists=holdout.get("finalists"),
        n_seeds=holdout.get("seeds", 3),
        select=holdout.get("select", "validation"),
        validation_cost=holdout.get("cost"),
        race=holdout.get("race", True),
        scheduler=scheduler,
        timeout=config.get("timeout"),
        verbose=say,
        on_trial=progress,
    )
    say(f"Pipeline '{name}' in {storage}.")
    if status is None:
        result = search.run()
    else:
        with status:  # one transient line for the run in flight; the phases are printed
            result = search.run()
    console.print(_text(result.summary()), soft_wrap=True)
    console.print(
        _text(
            f"Stored in {storage}: studies {', '.join(result.studies.values())}. Running the "
            "same command again continues or re-reads it."
        ),
        style="dim",
        soft_wrap=True,
    )
    return EXIT_OK


def _cmd_studies(args: argparse.Namespace) -> int:
    from tunecraft.study import load_study
    from tunecraft.trial import TrialState

    storage = _open_existing(args.storage)
    infos = storage.list_studies()
    console = _console()
    if not infos:
        console.print(_text(f"No studies in {args.storage}."))
        return EXIT_OK
    table = _table(f"Studies in {args.storage}")
    table.add_column("name", overflow="fold")
    table.add_column("direction")
    table.add_column("trials", justify="right")
    table.add_column("complete", justify="right")
    table.add_column("best", justify="right")
    table.add_column("created (UTC)", no_wrap=True)
    for info in infos:
        study = load_study(info.name, storage=storage)
        trials = study.trials
        complete = [t for t in trials if t.state is TrialState.COMPLETE]
        best = _best_of(study.direction, trials)
        created = info.datetime_created
        table.add_row(
            _text(info.name),
            info.direction,
            str(len(trials)),
            str(len(complete)),
            _fmt(best.value) if best is not None else "-",
            created.strftime("%Y-%m-%d %H:%M") if created is not None else "-",
        )
    console.print(table)
    return EXIT_OK


def _cmd_trials(args: argparse.Namespace) -> int:
    from tunecraft.study import load_study

    study = load_study(args.name, storage=_open_existing(args.storage))
    trials = study.trials
    console = _console()
    if not trials:
        console.print(_text(f"Study '{study.name}' has no trials yet."))
        return EXIT_OK
    console.print(_trials_table(study, trials, top=args.top))
    return EXIT_OK


def _cmd_best(args: argparse.Namespace) -> int:
    from tunecraft.study import load_study

    study = load_study(args.name, storage=_open_existing(args.storage))
    trials = study.trials
    best = _best_of(study.direction, trials)
    if best is None:
        raise TunecraftError(_no_complete_trial(study, trials))
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "study": study.name,
                    "direction": study.direction,
                    "number": best.number,
                    "value": best.value,
                    "config": best.config,
                    "user_attrs": best.user_attrs,
                }
            )
            + "\n"
        )
        return EXIT_OK
    _print_best(_console(), study, trials)
    return EXIT_OK


# -- running a study to its target -----------------------------------------------------------
def _run_to_target(
    console: Console,
    study: Study,
    objective: Callable[..., Any],
    *,
    target: int | None,
    timeout: float | None,
    n_jobs: int,
    progress: bool,
    storage_url: str,
) -> None:
    """Run the trials that ``study`` misses to hold ``target`` finished ones.

    Complete and pruned trials count; failed ones (an objective that raised, a run killed
    mid-trial) do not, so a re-run after a crash completes the job.
    """
    from tunecraft.trial import TrialState

    stale = study.fail_stale_trials()
    done = len(study.get_trials([TrialState.COMPLETE, TrialState.PRUNED]))
    where = _text(f"Study '{study.name}' in {storage_url}: ")
    if stale:
        where.append(f"{len(stale)} trial(s) left running by a stopped process marked failed; ")
    if target is None:
        where.append(f"{done} trials done; running until the {timeout:g} s timeout.")
        missing: int | None = None
    elif done >= target:
        where.append(f"{done} of {target} trials done; nothing to run.")
        console.print(where, soft_wrap=True)
        return
    else:
        missing = target - done
        resumed = "resuming: " if done else ""
        where.append(f"{resumed}{done} of {target} trials done; running {missing}.")
    console.print(where, soft_wrap=True)
    before = {t.number for t in study.trials}
    study.optimize(
        objective,
        n_trials=missing,
        timeout=timeout,
        n_jobs=n_jobs,
        show_progress_bar=progress,
    )
    if study.sampler.is_exhausted(study.space, study.history()):
        console.print(
            f"The {type(study.sampler).__name__} has nothing left to propose "
            "(every point of its grid has run).",
            soft_wrap=True,
        )
    failed = [t for t in study.trials if t.number not in before and t.state is TrialState.FAILED]
    if failed:
        reason = _first_line(failed[0].error or "no reason recorded")
        console.print(
            _text(f"{len(failed)} trial(s) failed; trial {failed[0].number}: {reason}"),
            style="yellow",
            soft_wrap=True,
        )


# -- config files ----------------------------------------------------------------------------
def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a ``tunecraft run`` YAML config.

    Raises:
        ConfigError: The file cannot be read, is not YAML, has an unknown key or a bad value.
            The message names the file and the key.
    """
    path = Path(path)
    return _check_config(_read_yaml(path, CONFIG_KEYS), str(path))


def load_tune_config(path: str | Path) -> dict[str, Any]:
    """Read and check a ``tunecraft tune`` YAML config (see :data:`TUNE_KEYS`).

    Raises:
        ConfigError: The file cannot be read, is not YAML, has an unknown key or a bad value.
            The message names the file and the key.
    """
    path = Path(path)
    return _check_tune_config(_read_yaml(path, TUNE_KEYS), str(path))


def _read_yaml(path: Path, keys: Mapping[str, str]) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{at}: {problem}.") from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: a config must be a mapping with keys {_allowed(keys)}; "
            f"got {type(data).__name__}."
        )
    return dict(data)


def _check_config(data: dict[str, Any], where: str) -> dict[str, Any]:
    _check_common(data, where, CONFIG_KEYS)
    _check_number(data, "n_trials", where, integer=True, low=1)
    _check_number(data, "timeout", where, integer=False, low=0)
    _check_number(data, "seed", where, integer=True, low=0)
    _check_number(data, "heartbeat", where, integer=False, low=0)
    if "n_jobs" in data:
        jobs = data["n_jobs"]
        if not _is_int(jobs) or jobs == 0 or jobs < -1:
            raise ConfigError(f"{where}: 'n_jobs' must be -1 or an int >= 1, got {jobs!r}.")
    if data.get("n_trials") is None and data.get("timeout") is None:
        raise ConfigError(f"{where}: give 'n_trials' (or 'timeout') to bound the study.")
    for key, allowed in _COMPONENT_KEYS.items():
        value = data.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{where}: '{key}' must be a name or a mapping with keys "
                f"{_allowed(allowed)}, got {value!r}."
            )
        for sub in value:
            if sub not in allowed:
                raise ConfigError(
                    f"{where}: unknown key '{key}.{sub}'; allowed keys are {_allowed(allowed)}."
                )
        if not isinstance(value.get("name"), str):
            raise ConfigError(f"{where}: '{key}.name' is required (a {key} name).")
        if value.get("options") is not None and not isinstance(value["options"], Mapping):
            raise ConfigError(f"{where}: '{key}.options' must be a mapping of keyword arguments.")
        if "seed" in value:
            _check_number(dict(value), "seed", f"{where}: '{key}'", integer=True, low=0)
            if "seed" in data:
                raise ConfigError(f"{where}: give the seed once, as 'seed' or '{key}.seed'.")
    return data


def _check_common(data: dict[str, Any], where: str, keys: Mapping[str, str]) -> None:
    """The checks ``run`` and ``tune`` configs share: keys, objective, space, direction."""
    from tunecraft.space import Space

    for key in data:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key '{key}'; allowed keys are {_allowed(keys)}.")
    for key in ("objective", "space"):
        if data.get(key) is None:
            raise ConfigError(f"{where}: the '{key}' key is required ({keys[key]}).")
    objective = data["objective"]
    if (
        not isinstance(objective, str)
        or objective.count(":") != 1
        or not all(part.strip() for part in objective.split(":"))
    ):
        raise ConfigError(
            f"{where}: 'objective' must be written 'module:function', got {objective!r}."
        )
    _check_flow_commas(data["space"], where)
    try:
        data["space"] = Space.from_dict(data["space"])
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: 'space': {_one_line(exc)}") from None
    if data.get("direction", "minimize") not in ("minimize", "maximize"):
        raise ConfigError(
            f"{where}: 'direction' must be 'minimize' or 'maximize', got {data['direction']!r}."
        )
    for key in ("storage", "study"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise ConfigError(f"{where}: '{key}' must be a non-empty string, got {data[key]!r}.")


def _check_tune_config(data: dict[str, Any], where: str) -> dict[str, Any]:
    from tunecraft.strategy import Budget
    from tunecraft.strategy._plan import check_shares

    _check_common(data, where, TUNE_KEYS)
    for key in ("budget", "max_fidelity"):
        if data.get(key) is None:
            raise ConfigError(f"{where}: the '{key}' key is required ({TUNE_KEYS[key]}).")
    unit = data.get("unit", "epochs")
    if not isinstance(unit, str) or not unit.strip():
        raise ConfigError(f"{where}: 'unit' must be a word such as 'epochs', got {unit!r}.")
    try:
        Budget.parse(data["budget"], unit=unit)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: 'budget': {_one_line(exc)}") from None
    fid = data["max_fidelity"]
    if not _is_number(fid) or not math.isfinite(fid) or fid <= 0:
        raise ConfigError(f"{where}: 'max_fidelity' must be a number > 0, got {fid!r}.")
    if data.get("min_fidelity") is not None:
        _check_number(
            data, "min_fidelity", where, integer=_is_int(fid), low=1 if _is_int(fid) else 0
        )
    _check_number(data, "timeout", where, integer=False, low=0)
    _check_number(data, "seed", where, integer=True, low=0)
    if "shares" in data:
        try:
            check_shares(data["shares"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: 'shares': {_one_line(exc)}") from None
    holdout = data.get("holdout")
    if holdout is not None:
        keys = ("finalists", "seeds", "select", "cost", "race")
        allowed = ", ".join(f"'{k}'" for k in keys)
        if not isinstance(holdout, Mapping):
            raise ConfigError(
                f"{where}: 'holdout' must be a mapping with keys {allowed}; got {holdout!r}."
            )
        for sub in holdout:
            if sub not in keys:
                raise ConfigError(
                    f"{where}: unknown key 'holdout.{sub}'; allowed keys are {allowed}."
                )
            if sub == "race":
                if not isinstance(holdout[sub], bool):
                    raise ConfigError(
                        f"{where}: 'holdout.race' must be true or false, got {holdout[sub]!r}."
                    )
            elif sub == "select":
                if holdout[sub] not in ("validation", "holdout"):
                    raise ConfigError(
                        f"{where}: 'holdout.select' must be 'validation' or 'holdout', "
                        f"got {holdout[sub]!r}."
                    )
            else:
                _check_number(
                    holdout,
                    sub,
                    f"{where}: 'holdout'",
                    integer=sub != "cost",
                    low=1 if sub != "cost" else 0,
                )
    prior = data.get("prior")
    if prior is not None:
        names = [prior] if isinstance(prior, str) else prior
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(
                f"{where}: 'prior' must be a study name or a list of names, got {prior!r}."
            )
        data["prior"] = names
    if not isinstance(data.get("defaults", True), bool):
        raise ConfigError(f"{where}: 'defaults' must be true or false, got {data['defaults']!r}.")
    if data.get("lr_scaling") not in (None, "linear", "sqrt"):
        raise ConfigError(
            f"{where}: 'lr_scaling' must be 'linear' or 'sqrt', got {data['lr_scaling']!r}."
        )
    for key in ("lr_param", "batch_param"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or value not in data["space"]):
            raise ConfigError(
                f"{where}: '{key}' must name a parameter of 'space' "
                f"({', '.join(map(repr, data['space'].names))}), got {value!r}."
            )
    _check_number(data, "reference_batch_size", where, integer=True, low=1)
    value = data.get("scheduler")
    if value is not None and not isinstance(value, str):
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            raise ConfigError(
                f"{where}: 'scheduler' must be a name or a mapping with keys 'name', 'options'; "
                f"got {value!r}."
            )
        for sub in value:
            if sub not in ("name", "options"):
                raise ConfigError(
                    f"{where}: unknown key 'scheduler.{sub}'; allowed keys are 'name', 'options'."
                )
        if value.get("options") is not None and not isinstance(value["options"], Mapping):
            raise ConfigError(
                f"{where}: 'scheduler.options' must be a mapping of keyword arguments."
            )
    return data


def _check_flow_commas(space: Any, where: str) -> None:
    """Catch ``{distribution: uniform(0, 1), ...}``: YAML splits a flow mapping at each comma."""
    if not isinstance(space, Mapping):
        return
    for name, spec in space.items():
        if isinstance(spec, Mapping) and any(
            isinstance(k, str) and k.strip().endswith(")") for k in spec
        ):
            raise ConfigError(
                f"{where}: 'space.{name}': inside {{...}} YAML splits at each comma; quote the "
                "domain (distribution: 'uniform(0, 1)') or write the mapping one key a line."
            )


def _check_number(
    data: Mapping[str, Any], key: str, where: str, *, integer: bool, low: float
) -> None:
    if key not in data or (data[key] is None and key in ("timeout", "n_trials", "heartbeat")):
        return
    value = data[key]
    ok = _is_int(value) if integer else _is_number(value) and math.isfinite(value)
    if not ok or value < low or (not integer and value <= low):
        kind = f"an int >= {low:g}" if integer else f"a number > {low:g}"
        raise ConfigError(f"{where}: '{key}' must be {kind}, got {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _allowed(keys: Mapping[str, Any] | Sequence[str]) -> str:
    return ", ".join(f"'{k}'" for k in keys)


def _components(config: Mapping[str, Any]) -> tuple[Any, Any]:
    """The sampler and the scheduler a checked config names, built and seeded."""
    from tunecraft.samplers import make_sampler

    seed = config.get("seed")
    spec = config.get("sampler") or "auto"
    if isinstance(spec, str):
        spec = {"name": spec}
    sampler = make_sampler(spec["name"], seed=spec.get("seed", seed), options=spec.get("options"))
    spec = config.get("scheduler")
    if spec is None:
        return sampler, None
    from tunecraft.schedulers import make_scheduler

    if isinstance(spec, str):
        spec = {"name": spec}
    return sampler, make_scheduler(spec["name"], seed=seed, options=spec.get("options"))


def import_objective(spec: str, *, search: Sequence[Path] = ()) -> Callable[..., Any]:
    """Import the objective a config names as ``module:function``.

    ``search`` folders (the config file's folder and the working directory) go first on
    ``sys.path``, so a module beside the config file is found.

    Raises:
        ConfigError: The module cannot be imported or has no such callable.
    """
    module_name, _, attr_path = spec.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    search = list(dict.fromkeys(Path(p).resolve() for p in search))  # the config is in cwd
    for folder in reversed([str(p) for p in search]):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            places = " and ".join(f"'{p}'" for p in search) or "sys.path"
            raise ConfigError(
                f"cannot import objective '{spec}': no module named '{exc.name}' "
                f"(looked in {places} and the installed packages)."
            ) from None
        raise ConfigError(
            f"importing objective '{spec}' failed: {_one_line(exc)} "
            "(a module it imports is missing)."
        ) from None
    except Exception as exc:  # the user's module raised while importing
        raise ConfigError(
            f"importing objective '{spec}' failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from None
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(
                f"objective '{spec}': module '{module_name}' has no attribute '{attr_path}'."
            ) from None
    if not callable(target):
        raise ConfigError(f"objective '{spec}' is not callable ({type(target).__name__}).")
    objective: Callable[..., Any] = target
    return objective


# -- storage ---------------------------------------------------------------------------------
def _open_existing(url: str) -> Any:
    """Open a storage to read from it, without creating an empty SQLite file by mistake."""
    from tunecraft.storage import get_storage

    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise TunecraftError(
            f"no tunecraft database at '{path}' ({url}); run 'tunecraft demo' or "
            "'tunecraft run CONFIG.yaml' first, or pass --storage URL."
        )
    return get_storage(url)


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


# -- display ---------------------------------------------------------------------------------
def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _text(value: str) -> Text:
    """Plain text for rich: brackets in names and values are not read as markup."""
    from rich.text import Text

    return Text(value)


def _table(title: str) -> Any:
    from rich import box
    from rich.table import Table

    return Table(
        title=_text(title),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        min_width=min(len(title), 99),
    )


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _quote(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else repr(name)


def _storage_flag(url: str) -> str:
    return "" if url == DEFAULT_STORAGE else f" --storage {url}"


def _best_of(direction: str, trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    from tunecraft.trial import TrialState

    complete = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    return min(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))


def _no_complete_trial(study: Study, trials: Sequence[FrozenTrial]) -> str:
    from tunecraft.trial import TrialState

    failed = [t for t in trials if t.state is TrialState.FAILED]
    text = f"study '{study.name}' has no complete trial yet"
    if failed:
        reason = _first_line(failed[-1].error or "no reason recorded")
        text += f" ({len(failed)} failed; trial {failed[-1].number}: {reason})"
    return text + "."


def _print_best(console: Console, study: Study, trials: Sequence[FrozenTrial]) -> None:
    best = _best_of(study.direction, trials)
    if best is None:
        raise TunecraftError(_no_complete_trial(study, trials))
    head = _text("")
    head.append("Best trial", style="bold")
    head.append(f" #{best.number} of study '{study.name}': value {_fmt(best.value)}")
    head.append(f" ({study.direction})")
    console.print(head)
    width = max(len(k) for k in [*best.config, *best.user_attrs, "x"])
    for key, value in best.config.items():
        console.print(_text(f"  {key:<{width}} = {_fmt(value)}"))
    for key, value in best.user_attrs.items():
        console.print(_text(f"  {key:<{width}} : {_fmt(value)}"), style="dim")


def _trials_table(study: Study, trials: Sequence[FrozenTrial], *, top: int | None = None) -> Any:
    from tunecraft.space import Categorical
    from tunecraft.trial import TrialState

    best = _best_of(study.direction, trials)
    rows = list(trials)
    title = f"Trials of study '{study.name}' ({study.direction})"
    if top is not None:
        sign = 1.0 if study.direction == "minimize" else -1.0
        rows = sorted(
            (t for t in rows if t.state is TrialState.COMPLETE and t.value is not None),
            key=lambda t: (sign * float(t.value or 0.0), t.number),
        )[:top]
        title = f"The {len(rows)} best trials of study '{study.name}' ({study.direction})"
    attrs: list[str] = []
    for t in rows:
        attrs += [
            k
            for k, v in t.user_attrs.items()
            if k not in attrs and isinstance(v, (int, float, str, bool))
        ]
    table = _table(title)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for name in study.space.names:
        left = isinstance(study.space[name], Categorical)
        table.add_column(
            _text(name), justify="left" if left else "right", min_width=min(len(name), 12)
        )
    for key in attrs:
        table.add_column(_text(key), justify="right", min_width=min(len(key), 12))
    table.add_column("secs", justify="right", no_wrap=True)
    for t in rows:
        cells = [str(t.number), t.state.value, _fmt(t.value)]
        cells += [_fmt(t.config[n], 3) if n in t.config else "-" for n in study.space.names]
        cells += [_fmt(t.user_attrs.get(k)) for k in attrs]
        cells.append(f"{t.duration:.2f}" if t.duration is not None else "-")
        style = "bold green" if best is not None and t.number == best.number else None
        if t.state is TrialState.FAILED:
            style = "red"
        table.add_row(*[_text(c) for c in cells], style=style)
    return table


def _print_next_steps(console: Console, study: Study, storage: str) -> None:
    flag = _storage_flag(storage)
    name = _quote(study.name)
    console.print(
        _text(
            f"Stored in {storage}. Next: 'tunecraft best {name}{flag}', "
            f"'tunecraft trials {name}{flag}', 'tunecraft studies{flag}'."
        ),
        style="dim",
        soft_wrap=True,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

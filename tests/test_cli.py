"""The ``tunecraft`` command: in a subprocess (as users run it) and in-process via ``main``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import tunecraft as tc
from tunecraft import _demo
from tunecraft.cli import load_config, main
from tunecraft.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ERROR_PREFIX = "tunecraft: error: "


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run each test in its own folder, with a wide terminal and sys.path restored after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("TUNECRAFT_DEBUG", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m tunecraft ARGS`` in a fresh process."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("TUNECRAFT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "tunecraft", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def joined(text: str) -> str:
    """``text`` with whitespace runs (line wraps included) made single spaces, for matching."""
    return " ".join(text.split())


def assert_one_error_line(err: str, *fragments: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def write_objective_module(folder: Path, body: str) -> str:
    """Write a uniquely named objective module into ``folder``; return its module name."""
    name = f"tc_objective_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(body))
    return name


QUADRATIC = """
    def objective(trial):
        c = trial.config
        penalty = 0.0 if c["kind"] == "a" else c["extra"]
        return (c["x"] - 1.0) ** 2 + penalty + c["n"] / 100
"""


def write_config(folder: Path, module: str, **overrides: object) -> Path:
    lines = [
        f"objective: {module}:objective",
        "direction: minimize",
        "space:",
        "  x: uniform(-3, 3)",
        "  n: int(1, 4)",
        "  kind: choice(a, b)",
        "  extra:",
        "    distribution: log-uniform(1e-3, 1)",
        "    when: {kind: [b]}",
        "n_trials: 6",
        "sampler: {name: random, seed: 3}",
        "study: quad",
    ]
    text = "\n".join(lines) + "\n"
    for key, value in overrides.items():
        text += f"{key}: {value}\n"
    path = folder / f"{module}.yaml"
    path.write_text(text)
    return path


# -- --version, --help -------------------------------------------------------------------------
def test_version_in_a_subprocess() -> None:
    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tunecraft {tc.__version__}"
    assert result.stderr == ""


def test_version_and_help_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "--version")
    assert status == 0
    assert out.strip() == f"tunecraft {tc.__version__}"
    for command in ([], ["demo"], ["run"], ["studies"], ["trials"], ["best"]):
        status, out, err = run_main(capsys, *command, "--help")
        assert status == 0, err
        assert "usage: tunecraft" in joined(out)


def test_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'tunecraft = "tunecraft.cli:main"' in text


# -- demo ----------------------------------------------------------------------------------------
def test_demo_in_a_subprocess_with_progress_bar(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = cli("demo", "--n-trials", "3", "--storage", sqlite_url(db), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 of 3 trials done; running 3" in joined(result.stdout)
    assert "3/3" in joined(result.stdout)  # the progress bar's final state
    assert "Best trial" in joined(result.stdout)
    assert "kernel" in joined(result.stdout) and "accuracy" in result.stdout
    study = tc.load_study(_demo.DEMO_STUDY, storage=sqlite_url(db))
    assert [t.state.value for t in study.trials] == ["complete"] * 3
    assert 0.0 <= study.best_value <= 1.0
    assert study.space == _demo.demo_space()


def test_demo_defaults_to_tunecraft_db_in_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(capsys, "demo", "--n-trials", "2", "--no-progress")
    assert status == 0, err
    assert (tmp_path / "tunecraft.db").exists()
    assert "Study 'svm-digits' in sqlite:///tunecraft.db" in joined(out)
    assert len(tc.load_study("svm-digits", storage="sqlite:///tunecraft.db").trials) == 2


def test_demo_rerun_resumes_to_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url(tmp_path / "demo.db")
    args = ("demo", "--storage", url, "--study", "d", "--no-progress")
    status, out, err = run_main(capsys, *args, "--n-trials", "3")
    assert status == 0, err
    first = tc.load_study("d", storage=url).trials

    status, out, err = run_main(capsys, *args, "--n-trials", "3")
    assert status == 0, err
    assert "3 of 3 trials done; nothing to run" in joined(out)
    assert "Best trial" in joined(out)
    again = tc.load_study("d", storage=url).trials
    assert [(t.number, t.config) for t in again] == [(t.number, t.config) for t in first]

    status, out, err = run_main(capsys, *args, "--n-trials", "5")
    assert status == 0, err
    assert "resuming: 3 of 5 trials done; running 2" in joined(out)
    assert len(tc.load_study("d", storage=url).trials) == 5


def test_demo_finishes_the_job_after_a_killed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url(tmp_path / "demo.db")
    args = ("demo", "--storage", url, "--no-progress")
    assert main([*args, "--n-trials", "2"]) == 0
    # A process that dies (kill -9) in the middle of a trial leaves it running in storage.
    crash = textwrap.dedent(
        f"""
        import os, signal
        import tunecraft as tc
        from tunecraft import _demo
        study = tc.Study(_demo.demo_space(), storage={url!r}, name="svm-digits",
                         load_if_exists=True)
        study.ask()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", crash], capture_output=True, timeout=60)
    assert killed.returncode == -9
    capsys.readouterr()
    states = [t.state.value for t in tc.load_study("svm-digits", storage=url).trials]
    assert states == ["complete", "complete", "running"]

    status, out, err = run_main(capsys, *args, "--n-trials", "4")
    assert status == 0, err
    assert "marked failed" in joined(out)
    assert "resuming: 2 of 4 trials done; running 2" in joined(out)
    states = [t.state.value for t in tc.load_study("svm-digits", storage=url).trials]
    assert states == ["complete", "complete", "failed", "complete", "complete"]


def test_demo_with_two_worker_processes(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "demo.db")
    result = cli("demo", "--n-trials", "4", "--n-jobs", "2", "--storage", url, "--no-progress")
    assert result.returncode == 0, result.stderr
    trials = tc.load_study("svm-digits", storage=url).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert {t.state.value for t in trials} == {"complete"}


# -- run -----------------------------------------------------------------------------------------
def test_run_a_config_in_a_subprocess_then_inspect_it(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    module = write_objective_module(configs, QUADRATIC)
    config = write_config(configs, module, storage=sqlite_url(tmp_path / "runs.db"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = cli("run", str(config), "--no-progress", cwd=elsewhere)  # module found beside it
    assert result.returncode == 0, result.stderr
    assert "0 of 6 trials done; running 6" in joined(result.stdout)
    assert "Best trial" in joined(result.stdout)
    url = sqlite_url(tmp_path / "runs.db")
    study = tc.load_study("quad", storage=url)
    assert len(study.trials) == 6
    assert {t.state.value for t in study.trials} == {"complete"}

    studies = cli("studies", "--storage", url)
    assert studies.returncode == 0, studies.stderr
    assert re.search(r"quad\s.*minimize\s.*\b6\b", studies.stdout)

    trials = cli("trials", "quad", "--storage", url)
    assert trials.returncode == 0, trials.stderr
    for t in study.trials:
        assert re.search(rf"^\s*{t.number}\s+complete\s", trials.stdout, re.MULTILINE)
    inactive = [t for t in study.trials if t.config["kind"] == "a"]
    if inactive:  # an inactive conditional parameter shows as '-'
        row = re.search(rf"^\s*{inactive[0].number}\s+complete\s.*$", trials.stdout, re.M)
        assert row is not None and " - " in row.group(0)

    best = cli("best", "quad", "--storage", url, "--json")
    assert best.returncode == 0, best.stderr
    data = json.loads(best.stdout)
    assert data["number"] == study.best_trial.number
    assert data["value"] == pytest.approx(study.best_value)
    assert data["config"] == study.best_config

    text = cli("best", "quad", "--storage", url)
    assert text.returncode == 0
    assert f"Best trial #{study.best_trial.number} of study 'quad'" in text.stdout


def test_run_rerun_adds_only_missing_trials_and_options_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write_objective_module(tmp_path, QUADRATIC)
    config = write_config(tmp_path, module)  # default storage: sqlite:///tunecraft.db here
    status, out, err = run_main(capsys, "run", str(config), "--no-progress")
    assert status == 0, err
    status, out, err = run_main(capsys, "run", str(config), "--no-progress")
    assert status == 0, err
    assert "6 of 6 trials done; nothing to run" in joined(out)
    status, out, err = run_main(
        capsys, "run", str(config), "--no-progress", "--n-trials", "8", "--study", "quad2"
    )
    assert status == 0, err
    assert len(tc.load_study("quad", storage="sqlite:///tunecraft.db").trials) == 6
    assert len(tc.load_study("quad2", storage="sqlite:///tunecraft.db").trials) == 8

    status, out, err = run_main(capsys, "trials", "quad2", "--top", "2")
    assert status == 0, err
    assert "The 2 best trials of study 'quad2'" in joined(out)


def test_run_with_heartbeats_fails_a_silent_trial_of_another_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    module = write_objective_module(tmp_path, QUADRATIC)
    config = write_config(tmp_path, module, heartbeat=0.1, n_jobs=1)
    study = tc.Study(load_config(config)["space"], storage="sqlite:///tunecraft.db", name="quad")
    lost = study.storage.create_trial(study.study_id, worker="elsewhere:1")
    study.storage.record_heartbeat([lost.trial_id])  # then that machine went quiet
    time.sleep(0.5)
    status, _, err = run_main(capsys, "run", str(config), "--no-progress")
    assert status == 0, err
    record = study.storage.get_trial(lost.trial_id)
    assert record.state is TrialState.FAILED
    assert str(record.error).startswith("stale: no heartbeat")
    assert len(study.get_trials(["complete"])) == 6


def test_run_config_heartbeat_null_means_none(tmp_path: Path) -> None:
    module = write_objective_module(tmp_path, QUADRATIC)
    assert load_config(write_config(tmp_path, module, heartbeat="null"))["heartbeat"] is None


def test_run_finds_the_objective_in_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write_objective_module(tmp_path, QUADRATIC)
    sub = tmp_path / "configs"
    sub.mkdir()
    config = write_config(sub, module, n_jobs=1)
    status, _, err = run_main(capsys, "run", str(config), "--no-progress")
    assert status == 0, err


def test_an_interrupted_run_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "interrupt-at-trial-2"
    marker.touch()
    module = write_objective_module(
        tmp_path,
        f"""
        import os
        def objective(trial):
            if trial.number == 2 and os.path.exists({str(marker)!r}):
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of a trial
            return trial.config["x"] ** 2 + trial.config["n"]
        """,
    )
    config = write_config(tmp_path, module)
    status, _, err = run_main(capsys, "run", str(config), "--no-progress")
    assert status == 130
    assert_one_error_line(err, "interrupted", "run the same command again")
    states = [
        t.state.value for t in tc.load_study("quad", storage="sqlite:///tunecraft.db").trials
    ]
    assert states == ["complete", "complete", "failed"]

    marker.unlink()
    status, out, err = run_main(capsys, "run", str(config), "--no-progress")
    assert status == 0, err
    assert "resuming: 2 of 6 trials done; running 4" in joined(out)
    trials = tc.load_study("quad", storage="sqlite:///tunecraft.db").trials
    assert sum(t.state.value == "complete" for t in trials) == 6


def test_failed_trials_are_summarized_and_an_all_failed_study_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write_objective_module(
        tmp_path,
        """
        def objective(trial):
            raise RuntimeError("the GPU caught fire")
        """,
    )
    config = write_config(tmp_path, module)
    status, out, err = run_main(capsys, "run", str(config), "--no-progress")
    assert status == 1
    assert "6 trial(s) failed" in joined(out)
    assert_one_error_line(err, "no complete trial", "RuntimeError: the GPU caught fire")


def test_examples_are_valid_and_the_svm_config_is_the_demo_space() -> None:
    svm = load_config(EXAMPLES / "svm_digits.yaml")
    assert svm["space"] == _demo.demo_space()
    assert svm["objective"] == "tunecraft._demo:svm_objective"
    toy = load_config(EXAMPLES / "toy_training.yaml")
    assert toy["space"].names  # parsed into a Space


def test_the_toy_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = sqlite_url(tmp_path / "toy.db")
    config = str(EXAMPLES / "toy_training.yaml")
    status, _, err = run_main(capsys, "run", config, "--storage", url, "--no-progress")
    assert status == 0, err
    study = tc.load_study("toy-training", storage=url)
    assert len(study.trials) == 40
    assert study.best_value < 0.6


def test_the_readme_yaml_is_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)
    assert blocks, "README.md shows no YAML config"
    assert blocks[0] == (EXAMPLES / "toy_training.yaml").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```\w*\n(.*?)```", readme, re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]


# -- studies, trials, best on their own ----------------------------------------------------------
def test_studies_on_an_empty_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = sqlite_url(tmp_path / "empty.db")
    tc.storage.get_storage(url)
    status, out, err = run_main(capsys, "studies", "--storage", url)
    assert status == 0, err
    assert "No studies" in joined(out)


def test_trials_and_best_of_a_study_told_by_hand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url(tmp_path / "s.db")
    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-1)}, storage=url, name="[odd] name")
    for value in (0.5, 0.25):
        trial = study.ask()
        study.tell(trial, value)
    study.tell(study.ask(), state="failed", error="boom")
    status, out, err = run_main(capsys, "trials", "[odd] name", "--storage", url)
    assert status == 0, err
    assert "[odd] name" in joined(out)  # brackets are shown, not read as rich markup
    assert re.search(r"^\s*2\s+failed\s", out, re.MULTILINE)
    status, out, err = run_main(capsys, "best", "[odd] name", "--storage", url)
    assert status == 0, err
    assert "Best trial #1" in joined(out) and "0.25" in out


# -- errors: one line on stderr, non-zero exit ----------------------------------------------------
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    cases = ([], ["bogus"], ["trials"], ["demo", "--n-trials", "0"], ["demo", "--n-jobs", "0"])
    for args in cases:
        status, _, err = run_main(capsys, *args)
        assert status == 2, args
        assert_one_error_line(err)


CONFIG_ERRORS = {
    "bad-yaml": ("objective: [unclosed\n", "invalid YAML at line"),
    "not-a-mapping": ("- a\n- b\n", "a config must be a mapping"),
    "unknown-key": ("n_trails: 3\n", "unknown key 'n_trails'; allowed keys are 'objective'"),
    "unknown-sampler-key": ("sampler: {name: random, sede: 1}\n", "unknown key 'sampler.sede'"),
    "unknown-param-key": (
        "space:\n  y: {distribution: 'uniform(0, 1)', whn: {x: [1]}}\n",
        "unknown key 'whn'",
    ),
    "flow-comma": ("space:\n  y: {distribution: uniform(0, 1)}\n", "quote the domain"),
    "bad-space": ("space:\n  x: uniform(1, 0)\n", "'space'"),
    "unknown-domain": ("space:\n  x: normal(0, 1)\n", "unknown domain 'normal'"),
    "no-objective": ("objective: null\n", "the 'objective' key is required"),
    "objective-format": ("objective: no_colon_here\n", "must be written 'module:function'"),
    "missing-module": (
        "objective: tc_no_such_module_xyz:f\n",
        "no module named 'tc_no_such_module_xyz'",
    ),
    "missing-function": ("objective: json:no_such_function\n", "has no attribute"),
    "not-callable": ("objective: json:__doc__\n", "is not callable"),
    "direction": ("direction: up\n", "'direction' must be 'minimize' or 'maximize'"),
    "n-trials": ("n_trials: ten\n", "'n_trials' must be an int >= 1"),
    "no-budget": ("n_trials: null\n", "give 'n_trials'"),
    "n-jobs": ("n_jobs: 0\n", "'n_jobs' must be -1 or an int >= 1"),
    "heartbeat": ("heartbeat: 0\n", "'heartbeat' must be a number > 0"),
    "sampler-name": ("sampler: annealing\n", "annealing"),
    "two-seeds": ("seed: 1\nsampler: {name: random, seed: 2}\n", "give the seed once"),
    "storage-scheme": ("storage: mongodb://localhost/x\n", "storage"),
}


def _config_text(override: str) -> str:
    """A valid config with ``override``'s top-level keys replacing the defaults."""
    base = {
        "objective": "json:dumps",
        "space": "space:\n  x: uniform(0, 1)\n",
        "n_trials": "n_trials: 2\n",
        "study": "study: s\n",
    }
    keys = {line.split(":")[0] for line in override.splitlines() if line and line[0].isalpha()}
    text = "".join(v for k, v in base.items() if k != "objective" and k not in keys)
    if "objective" not in keys:
        text = "objective: json:dumps\n" + text
    return text + override


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors_are_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    override, fragment = CONFIG_ERRORS[case]
    text = override if case in ("bad-yaml", "not-a-mapping") else _config_text(override)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    status, out, err = run_main(capsys, "run", str(path))
    assert status == 1, (out, err)
    assert_one_error_line(err, fragment)


def test_an_objective_module_that_fails_to_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write_objective_module(tmp_path, "def objective(trial)\n    return 1\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"objective: {module}:objective\nspace: {{x: 'uniform(0, 1)'}}\nn_trials: 1\n")
    status, _, err = run_main(capsys, "run", str(path))
    assert status == 1
    assert_one_error_line(err, "SyntaxError")


def test_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(capsys, "run", "nowhere.yaml")
    assert status == 1
    assert_one_error_line(err, "config file 'nowhere.yaml' does not exist")


def test_storage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.db"
    for command in (["studies"], ["trials", "x"], ["best", "x"]):
        status, _, err = run_main(capsys, *command, "--storage", sqlite_url(missing))
        assert status == 1
        assert_one_error_line(err, "no tunecraft database at")
    assert not missing.exists()  # reading never creates an empty database

    status, _, err = run_main(capsys, "studies", "--storage", "mongodb://localhost/x")
    assert status == 1
    assert_one_error_line(err, "storage")

    bad_dir = sqlite_url(tmp_path / "no" / "such" / "dir.db")
    status, _, err = run_main(capsys, "demo", "--n-trials", "1", "--storage", bad_dir)
    assert status == 1
    assert_one_error_line(err, "Cannot open storage")


def test_unreachable_postgresql_is_one_line() -> None:
    result = cli("studies", "--storage", "postgresql://tunecraft@127.0.0.1:1/nowhere", timeout=60)
    assert result.returncode == 1
    assert_one_error_line(result.stderr)


def test_missing_study_and_study_without_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url(tmp_path / "s.db")
    study = tc.Study({"x": tc.uniform(0, 1)}, storage=url, name="empty")
    for command in (["trials", "nope"], ["best", "nope"]):
        status, _, err = run_main(capsys, *command, "--storage", url)
        assert status == 1
        assert_one_error_line(err, "nope")
    study.tell(study.ask(), state="failed", error="out of memory")
    status, _, err = run_main(capsys, "best", "empty", "--storage", url)
    assert status == 1
    assert_one_error_line(err, "no complete trial", "out of memory")


def test_demo_on_a_study_with_another_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url(tmp_path / "s.db")
    tc.Study({"x": tc.uniform(0, 1)}, storage=url, name="svm-digits")
    status, _, err = run_main(capsys, "demo", "--storage", url, "--no-progress")
    assert status == 1
    assert_one_error_line(err, "another space")


@pytest.mark.parametrize(
    "args",
    [
        ["trials", "nope"],
        ["run", "nowhere.yaml"],
        ["demo", "--seed", "-1"],
        ["studies", "--storage", "sqlite:///no/such/dir/x.db"],
    ],
)
def test_errors_in_a_subprocess_are_one_line(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "tunecraft.db").touch()
    result = cli(*args, cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert_one_error_line(result.stderr)


def test_debug_env_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TUNECRAFT_DEBUG", "1")
    with pytest.raises(ValueError, match="does not exist"):
        main(["run", "nowhere.yaml"])


# -- tunecraft tune: the budgeted pipeline -----------------------------------------------------
PIPELINE_OBJECTIVE = """
    def objective(trial):
        c = trial.config
        base = (c["x"] - 0.6) ** 2 + 0.1 * c["y"]
        value = base
        for epoch in range(1, int(trial.budget) + 1):
            value = base + 1.0 / epoch + 0.001 * (trial.seed or 0)
            trial.report(value, step=epoch)
        return value + (0.05 if trial.split == "holdout" else 0.0)
"""


def write_tune_config(folder: Path, module: str, **overrides: object) -> Path:
    data: dict[str, object] = {
        "objective": f"{module}:objective",
        "space": {"x": "uniform(0, 1)", "y": "uniform(0, 1)"},
        "budget": "10 trials",
        "max_fidelity": 4,
        "holdout": {"finalists": 2, "seeds": 1},
        "seed": 0,
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    path = folder / "pipe.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


@pytest.mark.parametrize(
    ("select", "fragment"),
    [("validation", "Chosen by the validation metric"), ("holdout", "Chosen by the holdout")],
)
def test_tune_passes_the_holdout_selection_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], select: str, fragment: str
) -> None:
    module = write_objective_module(tmp_path, PIPELINE_OBJECTIVE)
    config = write_tune_config(
        tmp_path, module, holdout={"finalists": 2, "seeds": 1, "select": select, "cost": 4}
    )
    status, out, err = run_main(capsys, "tune", str(config))
    assert status == 0, err
    assert fragment in joined(out)


def test_tune_prints_the_plan_phases_and_validation_then_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write_objective_module(tmp_path, PIPELINE_OBJECTIVE)
    config = write_tune_config(tmp_path, module)
    status, out, err = run_main(capsys, "tune", str(config))
    assert status == 0, err
    text = joined(out)
    assert out.index("Plan: 40 epochs") < out.index("explore:")  # the plan comes first
    for fragment in ("explore", "refine", "validate", "Final validation on the holdout"):
        assert fragment in text
    assert "Holdout score" in text and "Best config" in text
    validate = tc.load_study("pipe.validate", storage="sqlite:///tunecraft.db").trials
    assert len(validate) == 2 and {t.split for t in validate} == {"holdout"}
    # Again: nothing new runs, the stored result is printed.
    status, out, err = run_main(capsys, "tune", str(config), "--quiet")
    assert status == 0, err
    assert "Continuing" not in out and "Holdout score" in joined(out)
    assert len(tc.load_study("pipe.validate", storage="sqlite:///tunecraft.db").trials) == 2


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"budget": None}, ("'budget' key is required",)),
        ({"max_fidelity": None}, ("'max_fidelity' key is required",)),
        ({"budget": "3 parsecs"}, ("'budget'", "unknown unit")),
        ({"budget": 2}, ("too small", "would suffice")),
        ({"max_fidelity": "long"}, ("'max_fidelity' must be a number",)),
        ({"shares": {"explore": 0.5, "refine": 0.5, "validate": 0.5}}, ("'shares'", "sum to 1")),
        ({"holdout": {"finalists": 2, "folds": 3}}, ("unknown key 'holdout.folds'",)),
        ({"holdout": {"seeds": 0}}, ("'seeds' must be an int >= 1",)),
        ({"holdout": {"select": "test"}}, ("'holdout.select' must be 'validation' or 'holdout'",)),
        ({"holdout": {"race": "yes"}}, ("'holdout.race' must be true or false",)),
        ({"holdout": {"cost": 0}}, ("'cost' must be a number > 0",)),
        ({"prior": [3]}, ("'prior' must be a study name",)),
        ({"lr_scaling": "cubic"}, ("'lr_scaling' must be 'linear' or 'sqrt'",)),
        ({"defaults": "yes"}, ("'defaults' must be true or false",)),
        ({"n_trials": 5}, ("unknown key 'n_trials'",)),
        ({"scheduler": {"name": "asha", "rungs": 3}}, ("unknown key 'scheduler.rungs'",)),
        ({"objective": "nosuchmodule_xyz:objective"}, ("no module named 'nosuchmodule_xyz'",)),
        ({"batch_param": "bs"}, ("'batch_param' must name a parameter of 'space'", "'x', 'y'")),
        ({"lr_param": 3}, ("'lr_param' must name a parameter of 'space'",)),
        ({"reference_batch_size": 0}, ("'reference_batch_size' must be an int >= 1",)),
        ({"lr_scaling": "linear"}, ("learning-rate parameter", "'lr_param' key")),
    ],
)
def test_tune_bad_config_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    overrides: dict[str, object],
    fragments: tuple[str, ...],
) -> None:
    module = write_objective_module(tmp_path, PIPELINE_OBJECTIVE)
    config = write_tune_config(tmp_path, module, **overrides)
    status, _, err = run_main(capsys, "tune", str(config))
    assert status == 1
    assert_one_error_line(err, *fragments)


def test_tune_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(capsys, "tune", "nope.yaml")
    assert status == 1
    assert_one_error_line(err, "nope.yaml", "does not exist")


def test_tune_example_config_is_valid() -> None:
    from tunecraft.cli import load_tune_config

    config = load_tune_config(EXAMPLES / "pipeline_toy.yaml")
    assert config["budget"] == "40 trials" and config["max_fidelity"] == 20


LR_OBJECTIVE = """
    def objective(trial):
        c = trial.config
        value = abs(c["rate"] * 32 / c["bs"] - 0.01)
        for epoch in range(1, int(trial.budget) + 1):
            trial.report(value + 1.0 / epoch, step=epoch)
        return value + 1.0 / trial.budget
"""


def test_tune_lr_scaling_names_its_parameters_in_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write_objective_module(tmp_path, LR_OBJECTIVE)
    config = write_tune_config(
        tmp_path,
        module,
        space={"rate": "log-uniform(1e-4, 1e-1)", "bs": "choice(32, 64)"},
        lr_scaling="linear",
        lr_param="rate",
        batch_param="bs",
        reference_batch_size=16,
        defaults=False,
    )
    status, out, err = run_main(capsys, "tune", str(config), "--quiet")
    assert status == 0, err
    assert "Holdout score" in joined(out)
    explore = tc.load_study("pipe.explore", storage="sqlite:///tunecraft.db").trials
    assert explore
    for t in explore:  # searched at batch size 16, run scaled linearly to the trial's
        assert t.run_config["rate"] == pytest.approx(t.config["rate"] * t.config["bs"] / 16)


def test_an_objective_not_found_names_each_folder_once(tmp_path: Path) -> None:
    from tunecraft.cli import ConfigError, import_objective

    with pytest.raises(ConfigError) as info:  # the config's folder is the working directory
        import_objective("nosuch_xyz:objective", search=[tmp_path, Path.cwd()])
    assert str(info.value).count(str(tmp_path.resolve())) == 1

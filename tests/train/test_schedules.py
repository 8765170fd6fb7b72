"""Schedules: pure functions agree with torch's schedulers; parameter groups may be added."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.optim import lr_scheduler  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.train import (  # noqa: E402
    SCHEDULES,
    ScheduleConfig,
    make_lr_scheduler,
    plateau_factor,
    schedule_factor,
)

BASE_LR = 0.5
N = 40


def _opt(lr: float = BASE_LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _torch_lrs(make: Callable[[torch.optim.Optimizer], Any], n: int = N) -> list[float]:
    opt = _opt()
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def _ours(name: str, options: dict[str, Any], n: int = N) -> list[float]:
    return [BASE_LR * schedule_factor(name, s, options) for s in range(n)]


CASES = [
    ("step", {"step_size": 7, "gamma": 0.5}, lambda o: lr_scheduler.StepLR(o, 7, 0.5)),
    (
        "multistep",
        {"milestones": (5, 20), "gamma": 0.3},
        lambda o: lr_scheduler.MultiStepLR(o, [5, 20], 0.3),
    ),
    ("exponential", {"gamma": 0.9}, lambda o: lr_scheduler.ExponentialLR(o, 0.9)),
    (
        "cosine",
        {"total_steps": N, "min_factor": 0.1},
        lambda o: lr_scheduler.CosineAnnealingLR(o, N, eta_min=0.1 * BASE_LR),
    ),
    (
        "cosine_restarts",
        {"period": 6, "period_mult": 2, "min_factor": 0.0},
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, 6, 2),
    ),
    (
        "cosine_restarts",
        {"period": 7},
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, 7),
    ),
    (
        "polynomial",
        {"total_steps": 30, "power": 2.0},
        lambda o: lr_scheduler.PolynomialLR(o, total_iters=30, power=2.0),
    ),
    (
        "linear",
        {"total_steps": 30},
        lambda o: lr_scheduler.PolynomialLR(o, total_iters=30, power=1.0),
    ),
    (
        "one_cycle",
        {"total_steps": N, "pct_start": 0.25},
        lambda o: lr_scheduler.OneCycleLR(
            o, max_lr=BASE_LR, total_steps=N, pct_start=0.25, cycle_momentum=False
        ),
    ),
]


@pytest.mark.parametrize(("name", "options", "make"), CASES, ids=[c[0] for c in CASES])
def test_pure_function_matches_torch_scheduler(
    name: str, options: dict[str, Any], make: Callable[[Any], Any]
) -> None:
    assert _ours(name, options) == pytest.approx(_torch_lrs(make), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("name", "options", "make"), CASES, ids=[c[0] for c in CASES])
def test_adapter_follows_the_pure_function(
    name: str, options: dict[str, Any], make: Callable[[Any], Any]
) -> None:
    opt = _opt()
    sched = make_lr_scheduler(opt, name, options)
    seen = []
    for _ in range(N):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(_ours(name, options), rel=1e-12)


def test_plateau_matches_reduce_lr_on_plateau() -> None:
    metrics = [1.0, 0.8, 0.8, 0.81, 0.79, 0.79, 0.79, 0.79, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    opt = _opt()
    torch_sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)
    ours = make_lr_scheduler(
        _opt(),
        "plateau",
        {"plateau_factor": 0.5, "plateau_patience": 2, "plateau_cooldown": 1},
    )
    for i, m in enumerate(metrics):
        torch_sched.step(m)
        ours.observe(m)
        expected = opt.param_groups[0]["lr"]
        assert ours.get_last_lr()[0] == pytest.approx(expected)
        assert BASE_LR * plateau_factor(
            metrics[: i + 1], factor=0.5, patience=2, cooldown=1
        ) == pytest.approx(expected)


def test_warmup_comes_before_any_schedule() -> None:
    config = ScheduleConfig("step", warmup_steps=4, step_size=2, gamma=0.5)
    factors = [config.factor(s) for s in range(10)]
    assert factors == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    cosine = ScheduleConfig("cosine", total_steps=14, warmup_steps=4)
    assert cosine.factor(4) == 1.0 and cosine.factor(9) == pytest.approx(0.5)
    assert cosine.factor(14) == pytest.approx(0.0)


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_starts_at_one_and_stays_in_range(name: str) -> None:
    config = ScheduleConfig.from_name(name, {"total_steps": 50})
    factors = [config.factor(s) for s in range(60)]
    assert all(0.0 <= f <= 1.0 + 1e-12 for f in factors)
    if name != "one_cycle":
        assert factors[0] == 1.0


def test_adding_a_param_group_mid_training_keeps_the_schedule() -> None:
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([a], lr=1.0)
    sched = make_lr_scheduler(opt, "cosine", {"warmup_steps": 3}, total_steps=20)
    config = sched.config
    for _ in range(8):
        opt.step()
        sched.step()
    opt.add_param_group({"params": [b], "lr": 0.1})  # gradual unfreezing
    for step in range(9, 20):
        opt.step()
        sched.step()  # torch's own schedulers raise here (zip strict)
        assert opt.param_groups[0]["lr"] == pytest.approx(1.0 * config.factor(step))
        assert opt.param_groups[1]["lr"] == pytest.approx(0.1 * config.factor(step))
    state = sched.state_dict()
    assert state["base_lrs"] == [1.0, 0.1]
    fresh_opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    fresh = make_lr_scheduler(fresh_opt, "cosine", {"warmup_steps": 3}, total_steps=20)
    fresh.load_state_dict(state)
    assert fresh.last_epoch == sched.last_epoch


def test_torch_scheduler_crashes_on_a_new_group_ours_does_not() -> None:
    opt = _opt()
    torch_sched = lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))]})
    opt.step()
    with pytest.raises(ValueError):
        torch_sched.step()


def test_bad_schedule_arguments_say_what_is_wrong() -> None:
    with pytest.raises(InvalidParameterError, match="'name' parameter of ScheduleConfig"):
        ScheduleConfig("triangle")
    with pytest.raises(InvalidParameterError, match="Unknown schedule option"):
        ScheduleConfig.from_name("cosine", {"T_max": 3})
    with pytest.raises(InvalidParameterError, match="needs 'total_steps'"):
        make_lr_scheduler(_opt(), "cosine")
    with pytest.raises(InvalidParameterError, match="must be > warmup_steps"):
        ScheduleConfig("cosine", total_steps=5, warmup_steps=5)
    assert math.isclose(schedule_factor("constant", 10**6), 1.0)


def test_cosine_restarts_restart_where_torch_does_with_a_growing_period() -> None:
    # int(math.log(243, 3)) == 4: the period count came out one short at steps 121, 242, ...
    # and the factor fell to its minimum there instead of restarting at 1.
    make = lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, 1, 3)  # noqa: E731
    options = {"period": 1, "period_mult": 3}
    assert _ours("cosine_restarts", options, n=400) == pytest.approx(
        _torch_lrs(make, n=400), rel=1e-9, abs=1e-12
    )

"""Strategies: layer groups, trainable parameters, learning rates, gradual unfreezing, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune import (  # noqa: E402
    STRATEGIES,
    GradualUnfreezing,
    layer_groups,
    prepare,
    strategy_options,
)
from tunecraft.train import (  # noqa: E402
    SCHEDULES,
    Callback,
    FitState,
    ModelCheckpoint,
    fit,
    seed_everything,
)

from .conftest import make_data, make_mlp  # noqa: E402


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ---------------------------------------------------------------- layer groups


def test_sequential_groups_skip_parameter_free_layers_and_flatten_nesting() -> None:
    net = nn.Sequential(
        nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8)), nn.Dropout(), nn.Linear(8, 2)
    )
    groups = layer_groups(net)
    assert [g.name for g in groups] == ["0.0", "0.2", "2"]
    assert groups[0].param_names == ["0.0.weight", "0.0.bias"]
    assert sum(g.numel for g in groups) == sum(p.numel() for p in net.parameters())


class Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.body(x)))


def test_user_groups_and_a_clear_error_when_none_can_be_found() -> None:
    model = Custom()
    with pytest.raises(InvalidParameterError, match="groups=") as info:
        layer_groups(model)
    assert "\n" not in str(info.value)
    groups = layer_groups(model, [["body", model.norm], "out"])
    assert [g.name for g in groups] == ["body+norm", "out"]
    with pytest.raises(InvalidParameterError, match="leaves parameters out"):
        layer_groups(model, ["body", "out"])
    with pytest.raises(InvalidParameterError, match="'nope'"):
        layer_groups(model, ["nope", "out"])
    with pytest.raises(InvalidParameterError, match="two groups"):
        layer_groups(model, [["body", "norm"], ["norm", "out"]])


def test_head_option_moves_the_head_last() -> None:
    net = make_mlp()
    groups = layer_groups(net, head="0")
    assert [g.name for g in groups] == ["2", "4", "0"]


# ---------------------------------------------------------------- trainable parameters


def _expected_trainable(strategy: str, names: list[str]) -> set[str]:
    if strategy == "feature_extraction":
        return {n for n in names if n.startswith("4.")}
    if strategy in ("full", "discriminative", "gradual_unfreeze"):
        return set(names)
    if strategy == "adapter":
        return {n for n in names if ".adapter." in n or n.startswith("4.")}
    # lora / ia3 on a plain MLP: the adapter weights and the head's trainable copy
    return {n for n in names if "lora_" in n or "ia3_" in n or "modules_to_save" in n}


@pytest.mark.parametrize(
    "strategy",
    [
        *("feature_extraction", "full", "discriminative", "gradual_unfreeze"),
        "adapter",
        "lora",
        "ia3",
    ],
)
def test_every_strategy_trains_exactly_the_intended_parameters(strategy: str) -> None:
    train, val = make_data()
    options: dict[str, Any] = {"unfreeze_every": 1} if strategy == "gradual_unfreeze" else {}
    setup = prepare(make_mlp(), strategy, lr=0.02, options=options)
    model = setup.model
    before = _snapshot(model)
    result = fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        optimizer=setup.make_optimizer("adamw", weight_decay=0.01),
        callbacks=setup.callbacks,
        epochs=3,
        device="cpu",
    )
    assert result.last["val_loss"] < result.history[0]["val_loss"] * 1.5
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == _expected_trainable(strategy, list(before))
    assert changed  # something trained


def test_peft_counts_on_a_plain_mlp_match_peft_and_a_hand_count() -> None:
    setup = prepare(make_mlp(), "lora", lr=0.01, options={"r": 4})
    trainable, _ = setup.model.get_nb_trainable_parameters()
    # LoRA on 8->16 and 16->16: r*(in+out) each; the head (16*3+3) trains fully.
    assert trainable == 4 * (8 + 16) + 4 * (16 + 16) + 51 == setup.trainable_parameters()


def test_learning_rates_of_full_discriminative_and_gradual() -> None:
    full = prepare(make_mlp(), "full", lr=0.1, options={"base_lr_factor": 0.2})
    assert [g["lr"] for g in full.param_groups] == pytest.approx([0.02, 0.02, 0.1])
    disc = prepare(make_mlp(), "discriminative", lr=0.1, options={"base_lr_factor": 0.01})
    assert [g["lr"] for g in disc.param_groups] == pytest.approx([0.001, 0.01, 0.1])
    grad = prepare(make_mlp(), "gradual_unfreeze", lr=0.1)
    assert [g["lr"] for g in grad.param_groups] == pytest.approx([0.1, 0.1, 0.1])
    assert grad.trainable_parameters() == 51 < grad.optimized_parameters()
    opt = disc.make_optimizer("sgd", weight_decay=0.1)
    names = [(g["name"], g["weight_decay"], g["lr"]) for g in opt.param_groups]
    assert names[:2] == [
        ("0", 0.1, pytest.approx(0.001)),
        ("0.no_decay", 0.0, pytest.approx(0.001)),
    ]


# ---------------------------------------------------------------- gradual unfreezing


class Recorder(Callback):
    """Which groups changed during each epoch; the scheduler for the end checks."""

    def __init__(self, groups: list[Any]) -> None:
        self.groups = groups
        self.changed: list[list[bool]] = []
        self.trainable: list[list[bool]] = []
        self.scheduler: Any = None

    def on_epoch_start(self, state: FitState) -> None:
        self.before = [[p.detach().clone() for p in g.params] for g in self.groups]
        self.trainable.append([g.params[0].requires_grad for g in self.groups])

    def on_epoch_end(self, state: FitState) -> None:
        self.scheduler = state.scheduler
        self.changed.append(
            [
                any(not torch.equal(p, b) for p, b in zip(g.params, before, strict=True))
                for g, before in zip(self.groups, self.before, strict=True)
            ]
        )


_OPTIONS: dict[str, dict[str, Any]] = {
    "step": {"step_size": 4, "gamma": 0.5},
    "multistep": {"milestones": [5, 9]},
    "exponential": {"gamma": 0.95},
    "cosine": {"warmup_steps": 2, "min_factor": 0.1},
    "cosine_restarts": {"period": 4},
    "one_cycle": {},
    "linear": {"min_factor": 0.1},
    "polynomial": {"power": 2.0, "min_factor": 0.1},
    "plateau": {"plateau_patience": 0},
}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_gradual_unfreezing_with_every_named_schedule(schedule: str) -> None:
    seed_everything(0)
    train, val = make_data()
    setup = prepare(make_mlp(), "gradual_unfreeze", lr=0.02, options={"unfreeze_every": 1})
    opt = setup.make_optimizer("adamw", weight_decay=0.01)
    n_groups = len(opt.param_groups)
    recorder = Recorder(setup.groups)
    fit(
        setup.model,
        train,
        val,
        loss_fn=F.cross_entropy,
        optimizer=opt,
        callbacks=[*setup.callbacks, recorder],
        epochs=4,
        schedule=schedule,
        schedule_options=_OPTIONS.get(schedule, {}),
        device="cpu",
    )
    unfreeze = setup.callbacks[0]
    assert isinstance(unfreeze, GradualUnfreezing)
    expected = [[i >= 3 - unfreeze.n_trainable(e) for i in range(3)] for e in range(4)]
    assert recorder.trainable == expected
    assert recorder.changed == expected  # a frozen group never moves, an unfrozen one does
    assert len(opt.param_groups) == n_groups
    sched = recorder.scheduler
    factor = sched.config.factor(sched.last_epoch, sched.metrics)
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(group["initial_lr"] * factor)
        for p in group["params"]:  # every group trained by the end: Adam state for all
            assert int(opt.state[p]["step"]) > 0


class StopAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: FitState) -> None:
        if state.epoch == self.epoch:
            state.stop, state.stop_reason = True, "interrupted"


def _run(
    folder: Path, stop_at: int, resume: Path | None = None
) -> tuple[nn.Module, list[list[bool]]]:
    seed_everything(0)
    train, val = make_data()
    model = make_mlp(seed=1)
    setup = prepare(model, "gradual_unfreeze", lr=0.02, options={"unfreeze_every": 2})
    recorder = Recorder(setup.groups)
    fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        optimizer=setup.make_optimizer("adamw", weight_decay=0.01),
        callbacks=[*setup.callbacks, ModelCheckpoint(folder), StopAt(stop_at), recorder],
        epochs=6,
        schedule="cosine",
        schedule_options={"warmup_steps": 3},
        resume_from=resume,
        device="cpu",
    )
    return model, recorder.trainable


def test_resume_midway_through_gradual_unfreezing_gives_the_same_weights(tmp_path: Path) -> None:
    full, _ = _run(tmp_path / "full", stop_at=-1)
    _run(tmp_path / "half", stop_at=2)  # stops after epoch 2: 2 of 3 groups trainable
    resumed, trainable = _run(tmp_path / "resumed", -1, resume=tmp_path / "half" / "last.pt")
    assert trainable[0] == [False, True, True]  # epoch 3: the base is still frozen
    assert trainable[-1] == [True, True, True]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("strategy", "options", "name"),
    [
        ("nope", {}, "strategy"),
        ("gradual_unfreeze", {"unfreeze_every": 0}, "unfreeze_every"),
        ("lora", {"r": 0}, "'r'"),
        ("lora", {"target_modules": ["nope"]}, "target_modules"),
        ("lora", {"target_modules": "x.*"}, "target_modules"),
        ("ia3", {"target_modules": ["zzz"]}, "target_modules"),
        ("full", {"base_lr_factor": 2.0}, "base_lr_factor"),
        ("full", {"rank": 2}, "options"),
        ("lora", {"dropout": 1.0}, "dropout"),
        ("prompt", {}, "strategy"),
        ("adapter", {"after": ["zzz"]}, "after"),
    ],
)
def test_bad_input_is_a_one_line_error_naming_the_parameter(
    strategy: str, options: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        prepare(make_mlp(), strategy, lr=0.01, options=options)
    message = str(info.value)
    assert name in message and "\n" not in message


@pytest.mark.parametrize("strategy", ["lora", "ia3", "full"])
@pytest.mark.parametrize(("head", "match"), [("nope", "not a submodule"), ("1", "no parameters")])
def test_a_bad_head_is_refused_by_every_strategy(strategy: str, head: str, match: str) -> None:
    """The PEFT strategies used to take a typo silently and freeze the real head."""
    with pytest.raises(InvalidParameterError, match=f"'head' parameter.*{match}"):
        prepare(make_mlp(), strategy, lr=0.01, head=head)


def test_options_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(TypeError, match="'options' parameter of prepare"):
        prepare(make_mlp(), "full", lr=0.01, options=[("base_lr_factor", 0.5)])  # type: ignore[arg-type]


def test_bad_lr_type_and_too_few_groups() -> None:
    with pytest.raises(InvalidParameterError, match="'lr'"):
        prepare(make_mlp(), "full", lr=0.0)
    with pytest.raises(TypeError, match="use_dora"):
        strategy_options("lora", {"use_dora": 1})
    with pytest.raises(InvalidParameterError, match="two layer groups"):
        prepare(nn.Sequential(nn.Linear(2, 2)), "feature_extraction", lr=0.1)
    assert len(STRATEGIES) == 9


def test_gradual_unfreezing_refuses_an_optimizer_without_the_frozen_groups() -> None:
    """fit(optimizer="adamw") takes only the head (trainable at the start): the groups
    unfrozen later would silently never move."""
    train, _ = make_data()
    setup = prepare(make_mlp(), "gradual_unfreeze", lr=0.05, options={"unfreeze_every": 1})
    before = _snapshot(setup.model)
    with pytest.raises(InvalidParameterError, match=r"\['0', '2'\].*make_optimizer") as info:
        fit(
            setup.model,
            train,
            loss_fn=F.cross_entropy,
            optimizer="adamw",
            callbacks=setup.callbacks,
            epochs=3,
            device="cpu",
        )
    assert "\n" not in str(info.value)
    assert all(torch.equal(p, before[n]) for n, p in setup.model.named_parameters())


def test_a_torch_scheduler_survives_gradual_unfreezing() -> None:
    """The optimizer's groups never change, so torch's own schedulers keep working."""
    train, _ = make_data()
    setup = prepare(make_mlp(), "gradual_unfreeze", lr=0.05, options={"unfreeze_every": 1})
    unfreeze = setup.callbacks[0]
    assert isinstance(unfreeze, GradualUnfreezing)
    opt = setup.make_optimizer("sgd", options={"momentum": 0.9})
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=3 * len(train)
    )
    for epoch in range(3):
        unfreeze.apply(epoch)
        for x, y in train:
            F.cross_entropy(setup.model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
    assert all(p.requires_grad for p in setup.model.parameters())
    assert all("momentum_buffer" in opt.state[p] for g in opt.param_groups for p in g["params"])


def test_gradual_unfreezing_refuses_a_state_it_did_not_write() -> None:
    unfreeze = GradualUnfreezing(layer_groups(make_mlp()), unfreeze_every=2)
    unfreeze.load_state_dict(unfreeze.state_dict())  # its own: fine
    with pytest.raises(InvalidParameterError, match=r"lacks \['initial_groups', 'n_groups'"):
        unfreeze.load_state_dict({"unfreeze_every": 2})  # was a bare KeyError
    with pytest.raises(InvalidParameterError, match="resume with the same groups"):
        unfreeze.load_state_dict({**unfreeze.state_dict(), "unfreeze_every": 3})

"""The fit loop: training, accumulation, clipping, precision, callbacks, trials."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812

import tunecraft as tc  # noqa: E402
from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.schedulers import Decision, Scheduler  # noqa: E402
from tunecraft.train import (  # noqa: E402
    EMA,
    SWA,
    Callback,
    EarlyStopping,
    FitState,
    LRMonitor,
    ProgressBar,
    fit,
    make_optimizer,
    param_groups,
)

from .conftest import make_data, make_model  # noqa: E402


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) == y).float().mean()


def test_fit_trains_and_reports_history() -> None:
    train, val = make_data()
    model = make_model()
    result = fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        lr=0.05,
        epochs=8,
        schedule="cosine",
        schedule_options={"warmup_steps": 5},
        metrics={"accuracy": accuracy},
        device="cpu",
    )
    assert result.epochs == 8 and result.steps == 8 * len(train)
    assert result.stop_reason is None
    first, last = result.history[0], result.last
    assert set(last) >= {"epoch", "step", "train_loss", "val_loss", "val_accuracy", "lr"}
    assert last["val_loss"] < first["val_loss"] and last["val_accuracy"] > 0.7
    assert last["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0


def test_steps_budget_stops_mid_epoch() -> None:
    train, val = make_data()
    result = fit(make_model(), train, val, loss_fn=F.cross_entropy, steps=9, device="cpu")
    assert result.steps == 9 and result.epochs == 2 and result.stop_reason == "steps"


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def test_accumulation_normalizes_over_the_whole_window() -> None:
    """Unequal micro-batches (and ignored targets) give the gradient of one big batch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(13, 8, generator=g)
    y = torch.randint(0, 3, (13,), generator=g)
    y[2] = -100  # an ignored (padding) target
    micro = [(x[:8], y[:8]), (x[8:11], y[8:11]), (x[11:], y[11:])]

    big = make_model()
    F.cross_entropy(big(x), y).backward()
    expected = _grads(big)

    model = make_model()
    captured: list[list[torch.Tensor]] = []
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    original_step = opt.step

    def spy(*args: Any, **kwargs: Any) -> Any:
        captured.append(_grads(model))
        return original_step(*args, **kwargs)

    opt.step = spy  # type: ignore[method-assign]
    fit(model, micro, loss_fn=F.cross_entropy, optimizer=opt, epochs=1, accumulate=3, device="cpu")
    assert len(captured) == 1
    for got, want in zip(captured[0], expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("mode", ["norm", "value"])
def test_gradient_clipping(mode: str) -> None:
    train, _ = make_data()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    norms: list[float] = []
    original_step = opt.step

    def spy(*args: Any, **kwargs: Any) -> Any:
        grads = [p.grad for p in model.parameters()]
        if mode == "norm":
            norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))
        else:
            norms.append(max(float(g.abs().max()) for g in grads))
        return original_step(*args, **kwargs)

    opt.step = spy  # type: ignore[method-assign]
    fit(
        model,
        train,
        loss_fn=F.cross_entropy,
        optimizer=opt,
        epochs=1,
        grad_clip=1e-3,
        grad_clip_mode=mode,
        device="cpu",
    )
    assert max(norms) <= 1e-3 * (1 + 1e-4)


def test_gradient_clipping_covers_a_group_added_mid_run() -> None:
    train, _ = make_data()
    model = make_model()
    params = list(model.parameters())
    opt = torch.optim.SGD(params[:1], lr=0.0)
    late: list[float] = []
    original_step = opt.step

    class AddRest(Callback):
        def on_epoch_start(self, state: FitState) -> None:
            if state.epoch == 1:
                state.optimizer.add_param_group({"params": params[1:]})

    def spy(*args: Any, **kwargs: Any) -> Any:
        if len(opt.param_groups) == 2:
            late.append(max(float(p.grad.abs().max()) for p in params[1:] if p.grad is not None))
        return original_step(*args, **kwargs)

    opt.step = spy  # type: ignore[method-assign]
    fit(
        model,
        train,
        loss_fn=F.cross_entropy,
        optimizer=opt,
        epochs=2,
        grad_clip=1e-3,
        grad_clip_mode="value",
        callbacks=[AddRest()],
        device="cpu",
    )
    assert late and max(late) <= 1e-3 * (1 + 1e-4)


def test_bf16_autocast_on_cpu_trains() -> None:
    train, val = make_data()
    result = fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        lr=0.05,
        epochs=4,
        precision="bf16",
        device="cpu",
    )
    assert result.last["val_loss"] < result.history[0]["val_loss"]


def test_fp16_needs_cuda() -> None:
    train, _ = make_data()
    with pytest.raises(InvalidParameterError, match="use precision='bf16' on CPU"):
        fit(make_model(), train, loss_fn=F.cross_entropy, epochs=1, precision="fp16", device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_with_grad_scaler_on_cuda() -> None:
    train, val = make_data()
    result = fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        lr=0.05,
        epochs=4,
        precision="fp16",
        grad_clip=1.0,
        device="cuda",
    )
    assert result.last["val_loss"] < result.history[0]["val_loss"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_on_cuda() -> None:
    train, val = make_data()
    result = fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        epochs=2,
        precision="bf16",
        device="cuda",
    )
    assert result.epochs == 2


def test_early_stopping_restores_best_weights() -> None:
    train, val = make_data()
    model = make_model()
    stopper = EarlyStopping(patience=1, min_delta=0.0, restore_best=True)
    # A learning rate far too high makes validation worse quickly.
    result = fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        optimizer="sgd",
        lr=50.0,
        epochs=30,
        callbacks=[stopper],
        device="cpu",
    )
    assert result.stop_reason == "early_stopping" and result.epochs < 30
    best = min(h["val_loss"] for h in result.history)
    assert stopper.best == pytest.approx(best)
    from tunecraft.train import evaluate

    assert evaluate(model, val, F.cross_entropy)["val_loss"] == pytest.approx(best, rel=1e-5)


def test_early_stopping_mode_max() -> None:
    stopper = EarlyStopping("val_accuracy", mode="max", patience=0, min_delta=0.01)
    state = FitState(
        make_model(),
        torch.optim.SGD(make_model().parameters(), lr=1),
        None,
        [],
        torch.device("cpu"),
    )
    for value in (0.5, 0.6, 0.605):
        state.metrics = {"val_accuracy": value}
        stopper.on_epoch_end(state)
    assert state.stop and stopper.best == 0.6


class StopAfter(Scheduler):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_report(self, trial: Any, history: Any) -> Decision:
        return Decision.STOP if trial.last_step >= self.step else Decision.CONTINUE


def test_trial_reporting_and_pruning() -> None:
    train, val = make_data()
    study = tc.Study({"lr": tc.loguniform(1e-3, 1e-1)}, scheduler=StopAfter(2), seed=0)

    def objective(trial: tc.Trial) -> float:
        result = fit(
            make_model(),
            train,
            val,
            loss_fn=F.cross_entropy,
            lr=trial.config["lr"],
            epochs=10,
            trial=trial,
            device="cpu",
        )
        assert result.pruned and result.epochs == 3
        return result.last["val_loss"]

    study.optimize(objective, n_trials=1)
    record = study.trials[0]
    assert record.state is tc.TrialState.PRUNED
    assert sorted(record.intermediate) == [0, 1, 2]


def test_a_step_budget_longer_than_the_epochs_leaves_the_schedule_to_the_epochs() -> None:
    train, val = make_data()  # 6 batches an epoch
    result = fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        epochs=2,
        steps=100,
        schedule="cosine",
        device="cpu",
    )
    assert result.steps == 12
    assert result.last["lr"] == pytest.approx(0.0, abs=1e-12)  # it ended at 0.92 of the peak


def test_a_diverged_run_under_a_trial_stops_instead_of_failing() -> None:
    train, val = make_data()
    study = tc.Study({"lr": tc.loguniform(1e-3, 1e-1)}, scheduler="median", seed=0)
    trial = study.ask()
    result = fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        optimizer="sgd",
        lr=1e8,
        epochs=4,
        trial=trial,
        device="cpu",
    )
    # The NaN loss was fit's to report, not the objective's: it stops and says why.
    assert result.stop_reason == "diverged" and not result.pruned
    assert trial.intermediate == {}


def test_a_plateau_schedule_leaves_swa_its_annealing() -> None:
    # The plateau schedule kept observing the metric while SWA set the rate, and cut it
    # mid-anneal (0.627 where SWALR gives 0.55).
    train, val = make_data()

    def rates(schedule: str) -> list[float]:
        monitor = LRMonitor()
        fit(
            make_model(),
            train,
            val,
            loss_fn=F.cross_entropy,
            optimizer="sgd",
            lr=1.0,
            epochs=7,
            schedule=schedule,
            schedule_options={"plateau_patience": 0} if schedule == "plateau" else None,
            callbacks=[monitor, SWA(1, swa_lr=0.1, anneal_epochs=4)],
            device="cpu",
        )
        return [float(h[0]) for h in monitor.history]

    assert rates("plateau") == rates("constant")


def test_lr_monitor_progress_bar_and_custom_callbacks() -> None:
    train, val = make_data()
    calls: list[str] = []

    class Recorder(Callback):
        def on_fit_start(self, state: FitState) -> None:
            calls.append("fit_start")

        def on_epoch_end(self, state: FitState) -> None:
            calls.append("epoch_end")

        def on_checkpoint(self, state: FitState) -> None:
            calls.append("checkpoint")

        def on_fit_end(self, state: FitState) -> None:
            calls.append("fit_end")

    monitor = LRMonitor()
    fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        lr=0.1,
        epochs=2,
        schedule="linear",
        callbacks=[monitor, ProgressBar(), Recorder()],
        device="cpu",
    )
    assert len(monitor.history) == 2 * len(train)
    assert monitor.history[0][0] > monitor.history[-1][0]
    assert calls == ["fit_start", "epoch_end", "checkpoint", "epoch_end", "checkpoint", "fit_end"]


def test_swa_averages_and_updates_batchnorm() -> None:
    train, val = make_data()
    model = make_model(batchnorm=True)
    swa = SWA(start_epoch=2, swa_lr=0.01)
    fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        lr=0.05,
        epochs=5,
        schedule="cosine",
        callbacks=[swa],
        device="cpu",
    )
    assert swa.averaged is not None and int(swa.averaged.n_averaged) == 3
    averaged = swa.averaged.module.state_dict()
    for name, value in model.state_dict().items():
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(value, averaged[name])
    bn = model[1]
    assert isinstance(bn, torch.nn.BatchNorm1d) and bn.running_mean.abs().sum() > 0
    assert swa.swa_scheduler is not None
    assert model is not None


def test_ema_tracks_an_average_of_the_weights() -> None:
    train, val = make_data()
    model = make_model()
    ema = EMA(decay=0.9)
    trained = make_model()
    fit(trained, train, val, loss_fn=F.cross_entropy, lr=0.05, epochs=2, device="cpu")
    fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        lr=0.05,
        epochs=2,
        callbacks=[ema],
        device="cpu",
    )
    assert ema.averaged is not None and int(ema.averaged.n_averaged) == 2 * len(train)
    # The swapped-in EMA weights differ from the raw trained ones.
    assert not torch.equal(model[0].weight, trained[0].weight)


def test_weight_decay_excludes_biases_and_norm_weights() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)
    )
    decayed, plain = param_groups(model, 0.01)
    assert [p.shape for p in decayed["params"]] == [(4, 4), (2, 4)]
    assert len(plain["params"]) == 4 and plain["weight_decay"] == 0.0
    everything = param_groups(model, 0.01, exclude_bias_and_norm=False)
    assert len(everything) == 1 and len(everything[0]["params"]) == 6


@pytest.mark.parametrize(
    ("name", "cls", "extra"),
    [
        ("sgd", "SGD", {"momentum": 0}),
        ("momentum", "SGD", {"momentum": 0.9, "nesterov": False}),
        ("nesterov", "SGD", {"nesterov": True}),
        ("adam", "Adam", {}),
        ("adamw", "AdamW", {}),
        ("rmsprop", "RMSprop", {}),
        ("adagrad", "Adagrad", {}),
    ],
)
def test_optimizers_by_name(name: str, cls: str, extra: dict[str, Any]) -> None:
    opt = make_optimizer(name, make_model(), lr=0.01, weight_decay=0.1)
    assert type(opt).__name__ == cls
    for key, value in extra.items():
        assert opt.param_groups[0][key] == value
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_bad_arguments() -> None:
    train, _ = make_data()
    with pytest.raises(InvalidParameterError, match="'epochs' or 'steps'"):
        fit(make_model(), train, loss_fn=F.cross_entropy)
    with pytest.raises(InvalidParameterError, match="'precision' parameter of fit"):
        fit(make_model(), train, loss_fn=F.cross_entropy, epochs=1, precision="fp8")
    with pytest.raises(InvalidParameterError, match="'name' parameter of make_optimizer"):
        make_optimizer("lamb", make_model(), lr=0.1)
    with pytest.raises(InvalidParameterError, match="'monitor' parameter of fit"):
        fit(make_model(), train, loss_fn=F.cross_entropy, epochs=1, monitor="val_f1", device="cpu")
    with pytest.raises(InvalidParameterError, match=r"\(inputs, targets\) pair"):
        fit(make_model(), [torch.zeros(2, 8)], loss_fn=F.cross_entropy, epochs=1, device="cpu")


@pytest.mark.parametrize("order", ["es_first", "ema_first"])
def test_early_stopping_restore_and_ema_warn_that_one_overrides_the_other(order: str) -> None:
    train, val = make_data()
    es, ema = EarlyStopping(patience=1), EMA(decay=0.9)
    callbacks = [es, ema] if order == "es_first" else [ema, es]
    winner = "EMA" if order == "es_first" else "EarlyStopping"
    with pytest.warns(UserWarning, match=f"{winner}, later in 'callbacks', wins"):
        fit(
            make_model(),
            train,
            val,
            loss_fn=F.cross_entropy,
            epochs=2,
            callbacks=callbacks,
            device="cpu",
        )

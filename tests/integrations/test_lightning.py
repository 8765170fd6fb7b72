"""The Lightning bridge reports to a trial and stops pruned runs."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

import torch.nn.functional as F  # noqa: E402, N812
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import tunecraft as tc  # noqa: E402
from tunecraft.integrations.lightning import TunecraftLightningCallback  # noqa: E402
from tunecraft.schedulers import Decision, Scheduler  # noqa: E402


class StopAfter(Scheduler):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_report(self, trial: Any, history: Any) -> Decision:
        return Decision.STOP if trial.last_step >= self.step else Decision.CONTINUE


class Tiny(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 2)
        self.lr = lr

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)


def _trainer(callback: TunecraftLightningCallback, epochs: int, **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("stop_after", "epochs_run", "state"), [(2, 2, "pruned"), (99, 4, "complete")]
)
def test_reports_each_epoch_and_stops_pruned_trials(
    stop_after: int, epochs_run: int, state: str
) -> None:
    torch.set_num_threads(1)
    study = tc.Study({"lr": tc.loguniform(1e-2, 1e-1)}, scheduler=StopAfter(stop_after), seed=0)

    def objective(trial: tc.Trial) -> float:
        callback = TunecraftLightningCallback(trial, monitor="val_loss")
        trainer = _trainer(callback, epochs=4)
        trainer.fit(Tiny(trial.config["lr"]), _loader(), _loader())
        assert callback.pruned is (state == "pruned")
        assert trainer.current_epoch == epochs_run
        return float(trainer.callback_metrics["val_loss"])

    study.optimize(objective, n_trials=1)
    record = study.trials[0]
    assert record.state.value == state
    assert sorted(record.intermediate) == list(range(1, epochs_run + 1))  # epochs completed


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unknown_metric_names_what_was_logged() -> None:
    study = tc.Study({"lr": tc.loguniform(1e-2, 1e-1)}, seed=0)
    trial = study.ask()
    trainer = _trainer(TunecraftLightningCallback(trial, monitor="val_acc"), epochs=1)
    with pytest.raises(ValueError, match=r"did not log; logged: \['val_loss'\]"):
        trainer.fit(Tiny(0.1), _loader(), _loader())


class StopOnlyAt(Scheduler):
    """Stops (or pauses) at one step and would let the trial go on at any other."""

    def __init__(self, step: int, decision: Decision = Decision.STOP) -> None:
        self.step, self.decision = step, decision

    def on_report(self, trial: Any, history: Any) -> Decision:
        return self.decision if trial.last_step == self.step else Decision.CONTINUE


def _fit_one(scheduler: Scheduler, **trainer_kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Run one trial of ``Tiny``; return its record and what the objective saw."""
    torch.set_num_threads(1)
    study = tc.Study({"lr": tc.loguniform(1e-2, 1e-1)}, scheduler=scheduler, seed=0)
    seen: dict[str, Any] = {}
    options = {
        "max_epochs": 4,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **trainer_kwargs,
    }

    def objective(trial: tc.Trial) -> float:
        callback = TunecraftLightningCallback(trial, monitor="val_loss")
        trainer = pl.Trainer(**{**options, "callbacks": [callback]})
        trainer.fit(Tiny(trial.config["lr"]), _loader(), _loader())
        trainer.validate(trainer.lightning_module, _loader(), verbose=False)
        paused = getattr(callback, "paused", None)
        seen.update(pruned=callback.pruned, paused=paused, epoch=trainer.current_epoch)
        return float(trainer.callback_metrics["val_loss"])

    study.optimize(objective, n_trials=1)
    return study.trials[0], seen


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_pause_is_told_apart_from_a_stop() -> None:
    record, seen = _fit_one(StopOnlyAt(2, Decision.PAUSE))
    assert record.state is tc.TrialState.PAUSED
    assert seen == {"pruned": False, "paused": True, "epoch": 2}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_trainer_validate_after_fit_reports_nothing() -> None:
    record, _ = _fit_one(StopOnlyAt(99))
    assert record.state is tc.TrialState.COMPLETE
    assert sorted(record.intermediate) == [1, 2, 3, 4]  # not a fifth report from validate()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_no_reports_after_the_stop_while_min_epochs_keeps_training() -> None:
    # The scheduler would say "continue" at step 3 and 4: reporting them would un-prune it.
    record, seen = _fit_one(StopOnlyAt(2), min_epochs=4)
    assert seen["epoch"] == 4 and seen["pruned"]
    assert record.state is tc.TrialState.PRUNED
    assert sorted(record.intermediate) == [1, 2]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_validation_within_epochs_reports_each_at_its_global_step() -> None:
    # _loader() gives 2 batches an epoch: val_check_interval=1 validates after every batch.
    record, _ = _fit_one(StopOnlyAt(99), val_check_interval=1, max_epochs=2)
    assert sorted(record.intermediate) == [1, 2, 3, 4]


def test_no_validation_at_all_is_a_warning() -> None:
    study = tc.Study({"lr": tc.loguniform(1e-2, 1e-1)}, seed=0)
    callback = TunecraftLightningCallback(study.ask(), monitor="val_loss")
    trainer = _trainer(callback, 1, limit_val_batches=0)
    with pytest.warns(UserWarning, match="reported nothing to trial 0: validation never ran"):
        trainer.fit(Tiny(0.1), _loader(), _loader())

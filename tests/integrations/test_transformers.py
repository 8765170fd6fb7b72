"""The Hugging Face Trainer bridge, on a 2-layer BERT built locally (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import tunecraft as tc  # noqa: E402
from tunecraft.integrations.transformers import TunecraftTrainerCallback  # noqa: E402
from tunecraft.schedulers import Decision, Scheduler  # noqa: E402


class StopAfter(Scheduler):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_report(self, trial: Any, history: Any) -> Decision:
        return Decision.STOP if trial.last_step >= self.step else Decision.CONTINUE


class _Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 100, (n, 8), generator=g)
        self.labels = (self.ids[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_hf_trainer_reports_and_stops_pruned_trials(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-3)}, scheduler=StopAfter(4), seed=0)

    def objective(trial: tc.Trial) -> float:
        callback = TunecraftTrainerCallback(trial, metric="eval_loss")
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path),
            learning_rate=trial.config["lr"],
            per_device_train_batch_size=8,
            per_device_eval_batch_size=8,
            max_steps=10,
            eval_strategy="steps",
            eval_steps=2,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            logging_strategy="no",
        )
        trainer = transformers.Trainer(
            model=_bert(),
            args=args,
            train_dataset=_Data(),
            eval_dataset=_Data(8),
            callbacks=[callback],
        )
        trainer.train()
        assert callback.pruned
        assert trainer.state.global_step == 4
        return 0.0

    study.optimize(objective, n_trials=1)
    record = study.trials[0]
    assert record.state is tc.TrialState.PRUNED
    assert sorted(record.intermediate) == [2, 4]


def test_missing_metric_is_a_clear_error() -> None:
    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-3)}, seed=0)
    callback = TunecraftTrainerCallback(study.ask(), metric="eval_f1")
    with pytest.raises(ValueError, match="did not return; returned: \\['eval_loss'\\]"):
        callback.on_evaluate(None, None, None, metrics={"eval_loss": 1.0})


def _run_trainer(trial: tc.Trial, callback: Any, tmp_path: Path, **kwargs: Any) -> Any:
    torch.set_num_threads(1)
    options = {
        "output_dir": str(tmp_path),
        "learning_rate": trial.config["lr"],
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "max_steps": 3,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "logging_strategy": "no",
        **kwargs,
    }
    eval_dataset = options.pop("eval_dataset", _Data(8))
    trainer = transformers.Trainer(
        model=_bert(),
        args=transformers.TrainingArguments(**options),
        train_dataset=_Data(),
        eval_dataset=eval_dataset,
        callbacks=[callback],
    )
    trainer.train()
    return trainer


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_evaluate_after_training_reports_nothing(tmp_path: Path) -> None:
    class Count(Scheduler):
        steps: ClassVar[list[int]] = []

        def on_report(self, trial: Any, history: Any) -> Decision:
            Count.steps.append(trial.last_step)
            return Decision.CONTINUE

    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-3)}, scheduler=Count(), seed=0)
    trial = study.ask()
    trainer = _run_trainer(trial, TunecraftTrainerCallback(trial), tmp_path)
    assert Count.steps == [2, 3]  # eval_steps=2, and the end of training (max_steps=3)
    trainer.evaluate()  # after training: no progress for the scheduler to judge again
    assert Count.steps == [2, 3]


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_a_dict_of_eval_datasets_reports_the_named_one(tmp_path: Path) -> None:
    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-3)}, seed=0)
    trial = study.ask()
    callback = TunecraftTrainerCallback(trial, metric="b_loss")  # "eval_b_loss"
    trainer = _run_trainer(
        trial, callback, tmp_path, eval_dataset={"a": _Data(8), "b": _Data(4)}, max_steps=2
    )
    assert trial.intermediate == {2: pytest.approx(trainer.evaluate()["eval_b_loss"])}


def _state(step: int) -> Any:
    return transformers.TrainerState(global_step=step)


def test_metric_without_the_eval_prefix_is_the_prefixed_one() -> None:
    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-3)}, seed=0)
    trial = study.ask()
    callback = TunecraftTrainerCallback(trial, metric="accuracy")
    metrics = {"eval_loss": 0.7, "eval_accuracy": 0.5, "eval_runtime": 0.1, "epoch": 1.0}
    callback.on_evaluate(None, _state(2), transformers.TrainerControl(), metrics=metrics)
    assert trial.intermediate == {2: 0.5}


def test_a_metric_no_eval_dataset_returns_is_an_error_after_the_round() -> None:
    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-3)}, seed=0)
    callback = TunecraftTrainerCallback(study.ask(), metric="eval_c_loss")
    control = transformers.TrainerControl()
    for name in "ab":  # a dict eval_dataset: one evaluation per dataset, each on its own
        metrics = {f"eval_{name}_loss": 0.7, f"eval_{name}_runtime": 0.1, "epoch": 1.0}
        callback.on_evaluate(None, _state(2), control, metrics=metrics)
    with pytest.raises(
        ValueError,
        match=r"'eval_c_loss'.*returned: \['epoch', 'eval_a_loss', 'eval_a_runtime', 'eval_b_",
    ):
        callback.on_step_end(None, _state(3), control)


def test_a_pause_is_told_apart_from_a_stop() -> None:
    class PauseAt2(Scheduler):
        def on_report(self, trial: Any, history: Any) -> Decision:
            return Decision.PAUSE if trial.last_step >= 2 else Decision.CONTINUE

    study = tc.Study({"lr": tc.loguniform(1e-4, 1e-3)}, scheduler=PauseAt2(), seed=0)
    callback = TunecraftTrainerCallback(study.ask())
    control = transformers.TrainerControl()
    callback.on_evaluate(None, _state(2), control, metrics={"eval_loss": 0.7})
    assert control.should_training_stop
    assert (callback.pruned, getattr(callback, "paused", None)) == (False, True)

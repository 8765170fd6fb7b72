"""The Hugging Face Trainer bridge, on a 2-layer BERT built locally (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

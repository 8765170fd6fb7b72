"""Report a Hugging Face ``Trainer`` run to a tunecraft trial; stop it when pruned.

Needs ``transformers`` (the ``peft`` extra installs it).
"""

from __future__ import annotations

import math
from typing import Any

from tunecraft._imports import require

_tf = require("transformers", "peft", purpose="tunecraft.integrations.transformers")

__all__ = ["TunecraftTrainerCallback"]


def _eval_prefix(metrics: dict[str, float]) -> str | None:
    """The ``metric_key_prefix`` of an evaluation (``"eval"``, ``"eval_<name>"``...), if known."""
    for key in metrics:
        if key.endswith("_runtime"):  # Trainer.evaluate adds f"{prefix}_runtime"
            return key[: -len("_runtime")]
    return None


class TunecraftTrainerCallback(_tf.TrainerCallback):  # type: ignore[name-defined]
    """A ``TrainerCallback``: report ``metric`` after each evaluation, stop if pruned.

    Each evaluation during ``trainer.train()`` reports ``metrics[metric]`` with
    ``step=state.global_step`` (a ``trainer.evaluate()`` after training reports nothing); when
    ``trial.should_stop()`` it sets ``control.should_training_stop`` and :attr:`pruned` (the
    scheduler stopped the trial) or :attr:`paused` (it paused it). Return normally from the
    objective: the study then records the trial as pruned or paused.

    Args:
        trial: The :class:`tunecraft.Trial` of the objective.
        metric: The evaluation metric to report (``"eval_loss"``, ``"eval_accuracy"``...). As
            with ``metric_for_best_model``, a name without the ``"eval_"`` prefix
            (``"accuracy"``) means the prefixed one. With several evaluation datasets
            (``eval_dataset={"val": ...}``), name one: ``"eval_val_loss"``.

    Example:
        >>> def objective(trial):  # doctest: +SKIP
        ...     args = TrainingArguments("out", eval_strategy="epoch",
        ...                              learning_rate=trial.config["lr"])
        ...     trainer = Trainer(model=model, args=args, train_dataset=train,
        ...                       eval_dataset=val,
        ...                       callbacks=[TunecraftTrainerCallback(trial)])
        ...     trainer.train()
        ...     return trainer.evaluate()["eval_loss"]
    """

    def __init__(self, trial: Any, metric: str = "eval_loss") -> None:
        if not isinstance(metric, str) or not metric:
            raise ValueError(
                "The 'metric' parameter of TunecraftTrainerCallback must be a non-empty str, "
                f"got {metric!r}."
            )
        self.trial = trial
        self.metric = metric
        self.pruned = False
        self.paused = False
        self._trained = False  # on_train_end came: later evaluations are not training's
        self._found_step: int | None = None  # the last step whose evaluation had the metric
        # Keys of the evaluations of one step, while none of them returned the metric (each
        # dataset of a dict eval_dataset is evaluated on its own).
        self._missing: tuple[int, list[str]] | None = None

    def _key(self, metrics: dict[str, float]) -> str | None:
        if self.metric in metrics:
            return self.metric
        prefixed = f"eval_{self.metric}"
        if not self.metric.startswith("eval_") and prefixed in metrics:
            return prefixed
        return None

    def _missing_error(self, returned: list[str]) -> ValueError:
        return ValueError(
            f"TunecraftTrainerCallback reports {self.metric!r}, which the evaluation did not "
            f"return; returned: {sorted(set(returned))}."
        )

    def _check_missing(self, step: int | None = None) -> None:
        """Raise if the evaluations of an earlier step never returned the metric."""
        if self._missing is not None and self._missing[0] != step:
            returned = self._missing[1]
            self._missing = None
            raise self._missing_error(returned)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Start reporting (again, for a second ``trainer.train()``)."""
        self._trained = False
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Raise if the last evaluations (of every dataset) did not return the metric."""
        self._check_missing(int(state.global_step))
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Stop reporting; raise if the last evaluations did not return the metric."""
        self._trained = True
        self._check_missing()
        return control

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Report the metric; ask the trainer to stop when the trial should stop."""
        if self._trained:
            return control  # trainer.evaluate() after training: no progress to judge
        metrics = metrics or {}
        key = self._key(metrics)
        if key is None:
            prefix = _eval_prefix(metrics)
            names = (self.metric, f"eval_{self.metric}")
            if (
                prefix is None
                or prefix == "eval"
                or any(n.startswith(f"{prefix}_") for n in names)
            ):
                raise self._missing_error(list(metrics))
            # One dataset of a dict eval_dataset: another one may return the metric.
            step = int(state.global_step)
            if self._found_step != step:
                seen = self._missing[1] if self._missing and self._missing[0] == step else []
                self._missing = (step, seen + list(metrics))
            return control
        step = int(state.global_step)
        self._missing, self._found_step = None, step
        value = float(metrics[key])
        if math.isfinite(value):
            self.trial.report(value, step=step)
            if self.trial.should_stop():
                if getattr(self.trial, "decision", "stop") == "pause":
                    self.paused = True
                else:
                    self.pruned = True
                control.should_training_stop = True
        return control

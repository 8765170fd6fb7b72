"""Report a Hugging Face ``Trainer`` run to a tunecraft trial; stop it when pruned.

Needs ``transformers`` (the ``peft`` extra installs it).
"""

from __future__ import annotations

import math
from typing import Any

from tunecraft._imports import require

_tf = require("transformers", "peft", purpose="tunecraft.integrations.transformers")

__all__ = ["TunecraftTrainerCallback"]


class TunecraftTrainerCallback(_tf.TrainerCallback):  # type: ignore[name-defined]
    """A ``TrainerCallback``: report ``metric`` after each evaluation, stop if pruned.

    Each evaluation reports ``metrics[metric]`` with ``step=state.global_step``; when
    ``trial.should_stop()`` it sets ``control.should_training_stop`` and :attr:`pruned`.
    Return normally from the objective: the study then records the trial as pruned.

    Args:
        trial: The :class:`tunecraft.Trial` of the objective.
        metric: The evaluation metric to report (``"eval_loss"``, ``"eval_accuracy"``...).

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

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Report the metric; ask the trainer to stop when the trial should stop."""
        metrics = metrics or {}
        if self.metric not in metrics:
            raise ValueError(
                f"TunecraftTrainerCallback reports {self.metric!r}, which the evaluation did not "
                f"return; returned: {sorted(metrics)}."
            )
        value = float(metrics[self.metric])
        if math.isfinite(value):
            self.trial.report(value, step=int(state.global_step))
            if self.trial.should_stop():
                self.pruned = True
                control.should_training_stop = True
        return control

"""Forgetting measured: accuracy matrices over tasks, backward transfer, average forgetting.

The accuracy matrix ``R`` has one row per training stage and one column per task:
``R[i, j]`` is the accuracy on task ``j`` after training stage ``i`` (task ``i`` learned last).
With ``T`` tasks learned in order:

- backward transfer (Lopez-Paz and Ranzato, 2017):
  ``BWT = 1 / (T - 1) * sum_{j < T-1} (R[T-1, j] - R[j, j])`` (negative when the model forgets);
- average forgetting (Chaudhry et al., 2018):
  ``F = 1 / (T - 1) * sum_{j < T-1} max_{l in [j, T-2]} (R[l, j] - R[T-1, j])``;
- average accuracy: the mean of the last row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tunecraft.exceptions import InvalidParameterError

__all__ = [
    "ForgettingReport",
    "ForgettingTracker",
    "accuracy",
    "average_accuracy",
    "average_forgetting",
    "backward_transfer",
    "measure_forgetting",
]

TaskEvaluator = Callable[[nn.Module, str, Iterable[Any]], float]


@torch.no_grad()
def accuracy(
    model: nn.Module,
    data: Iterable[Any],
    *,
    predict: Callable[[nn.Module, Any], torch.Tensor] | None = None,
) -> float:
    """The fraction of ``(inputs, labels)`` batches' samples whose argmax prediction is right.

    Args:
        model: A classifier returning logits (evaluated in eval mode, its mode restored).
        data: ``(inputs, labels)`` batches.
        predict: ``predict(model, inputs) -> logits``; ``model(inputs)`` by default (pass one
            for multi-head models, e.g. ``lambda m, x: m(x, task="old")``).

    Example:
        >>> import torch
        >>> model = torch.nn.Identity()
        >>> accuracy(model, [(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0]))])
        0.5
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    correct, total = 0, 0
    try:
        for batch in data:
            if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
                raise InvalidParameterError(
                    f"accuracy expects (inputs, labels) batches, got {type(batch).__name__}."
                )
            x, y = batch
            x = x.to(device) if isinstance(x, torch.Tensor) else x
            y = torch.as_tensor(y).to(device)
            out = predict(model, x) if predict is not None else model(x)
            correct += int((out.argmax(-1) == y).sum())
            total += int(y.shape[0])
    finally:
        model.train(was_training)
    if total == 0:
        raise InvalidParameterError("The 'data' parameter of accuracy gave no samples.")
    return correct / total


def _square(matrix: Any, owner: str) -> np.ndarray:
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise InvalidParameterError(
            f"The 'matrix' parameter of {owner} must be a square accuracy matrix (T x T, "
            f"T >= 2; row i after training task i), got shape {r.shape}."
        )
    if np.isnan(r[np.tril_indices(r.shape[0])]).any():
        raise InvalidParameterError(
            f"The 'matrix' parameter of {owner} has NaN on or below the diagonal; those "
            "entries (tasks already learned) are needed."
        )
    return r


def backward_transfer(matrix: Any) -> float:
    """Backward transfer: the mean change of each old task's accuracy from just after it was
    learned to the end (negative: forgetting). See the module docstring.

    Example:
        >>> round(backward_transfer([[0.9, 0.1], [0.6, 0.8]]), 3)
        -0.3
    """
    r = _square(matrix, "backward_transfer")
    t = r.shape[0]
    return float(np.mean([r[t - 1, j] - r[j, j] for j in range(t - 1)]))


def average_forgetting(matrix: Any) -> float:
    """Average forgetting: the mean drop of each old task's accuracy from its best value (at or
    after the stage it was learned, before the last) to the end. See the module docstring.

    Example:
        >>> round(average_forgetting([[0.9, 0.0, 0.0], [0.95, 0.8, 0.0], [0.5, 0.7, 0.9]]), 3)
        0.275
    """
    r = _square(matrix, "average_forgetting")
    t = r.shape[0]
    return float(np.mean([np.max(r[j : t - 1, j]) - r[t - 1, j] for j in range(t - 1)]))


def average_accuracy(matrix: Any) -> float:
    """The mean accuracy over all tasks after the last stage.

    Example:
        >>> round(average_accuracy([[0.9, 0.1], [0.6, 0.8]]), 3)
        0.7
    """
    r = _square(matrix, "average_accuracy")
    return float(np.mean(r[-1]))


class ForgettingTracker:
    """Build the accuracy matrix while training tasks one after another.

    Call :meth:`record` after each stage with the task just learned; every task is evaluated.

    Args:
        tasks: ``{task name: (inputs, labels) batches}``, in the order they are learned.
        evaluate: ``evaluate(model, task_name, data) -> float``; :func:`accuracy` by default
            (pass one that picks the task's head for multi-head models).

    Example:
        >>> import torch
        >>> tracker = ForgettingTracker({"a": [(torch.eye(2), torch.tensor([0, 1]))],
        ...                              "b": [(torch.eye(2), torch.tensor([1, 0]))]})
        >>> model = torch.nn.Identity()
        >>> tracker.record(model, "a")
        {'a': 1.0, 'b': 0.0}
        >>> tracker.record(model, "b")  # this "model" cannot learn b without forgetting a
        {'a': 1.0, 'b': 0.0}
        >>> tracker.backward_transfer(), tracker.average_forgetting()
        (0.0, 0.0)
    """

    def __init__(
        self, tasks: Mapping[str, Iterable[Any]], *, evaluate: TaskEvaluator | None = None
    ) -> None:
        if not isinstance(tasks, Mapping) or len(tasks) == 0:
            raise InvalidParameterError(
                "The 'tasks' parameter of ForgettingTracker must be a non-empty mapping "
                f"{{name: data}}, got {tasks!r}."
            )
        self.tasks = dict(tasks)
        self.names = list(self.tasks)
        self._evaluate: TaskEvaluator = evaluate or (lambda m, _name, data: accuracy(m, data))
        self.rows: list[dict[str, float]] = []
        self.stages: list[str] = []

    def record(self, model: nn.Module, trained: str) -> dict[str, float]:
        """Evaluate every task after the stage that learned task ``trained``; return the row."""
        if trained not in self.tasks:
            raise InvalidParameterError(
                f"The 'trained' parameter of ForgettingTracker.record must be one of "
                f"{self.names}, got {trained!r}."
            )
        row = {name: float(self._evaluate(model, name, data)) for name, data in self.tasks.items()}
        self.rows.append(row)
        self.stages.append(trained)
        return row

    @property
    def matrix(self) -> np.ndarray:
        """``R[stage, task]`` in the order of :meth:`record` calls and of ``tasks``."""
        return np.array([[row[n] for n in self.names] for row in self.rows], dtype=np.float64)

    def _learned(self) -> np.ndarray:
        if self.stages != self.names[: len(self.stages)] or len(self.stages) < 2:
            raise InvalidParameterError(
                "ForgettingTracker metrics need at least two stages that learned the tasks in "
                f"the order given ({self.names}); recorded: {self.stages}."
            )
        k = len(self.stages)
        return self.matrix[:, :k]

    def backward_transfer(self) -> float:
        """:func:`backward_transfer` of the tasks learned so far."""
        return backward_transfer(self._learned())

    def average_forgetting(self) -> float:
        """:func:`average_forgetting` of the tasks learned so far."""
        return average_forgetting(self._learned())

    def average_accuracy(self) -> float:
        """:func:`average_accuracy` of the tasks learned so far."""
        return average_accuracy(self._learned())


@dataclass
class ForgettingReport:
    """What :func:`measure_forgetting` returns.

    Attributes:
        before: ``{task: score}`` before fine-tuning.
        after: ``{task: score}`` after fine-tuning.
        result: What the fine-tuning function returned (a ``FitResult``...).
    """

    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    result: Any = None

    @property
    def forgetting(self) -> dict[str, float]:
        """``before - after`` per task (positive: forgotten)."""
        return {name: self.before[name] - self.after[name] for name in self.before}

    @property
    def mean_forgetting(self) -> float:
        """The mean of :attr:`forgetting`."""
        return float(np.mean(list(self.forgetting.values())))


def measure_forgetting(
    model: nn.Module,
    fine_tune: Callable[[nn.Module], Any],
    old_tasks: Mapping[str, Iterable[Any]],
    *,
    evaluate: TaskEvaluator | None = None,
) -> ForgettingReport:
    """Score the old tasks, run ``fine_tune(model)``, score them again.

    Args:
        model: The model to fine-tune (in place, by ``fine_tune``).
        fine_tune: A function that trains ``model`` on the new task
            (e.g. ``lambda m: fit(m, new_data, loss_fn=..., epochs=5)``).
        old_tasks: ``{task name: (inputs, labels) batches}`` to watch.
        evaluate: ``evaluate(model, task_name, data) -> float``; :func:`accuracy` by default.

    Returns:
        A :class:`ForgettingReport` (``before``, ``after``, ``forgetting``, ``result``).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 2, bias=False)
        >>> _ = torch.nn.init.eye_(model.weight)
        >>> old = {"old": [(torch.eye(2), torch.tensor([0, 1]))]}
        >>> def swap(m):
        ...     with torch.no_grad():
        ...         m.weight.copy_(m.weight.flip(0))
        >>> measure_forgetting(model, swap, old).forgetting
        {'old': 1.0}
    """
    if not callable(fine_tune):
        raise TypeError(
            f"The 'fine_tune' parameter of measure_forgetting must be callable, got {fine_tune!r}."
        )
    if not isinstance(old_tasks, Mapping) or len(old_tasks) == 0:
        raise InvalidParameterError(
            "The 'old_tasks' parameter of measure_forgetting must be a non-empty mapping "
            f"{{name: data}}, got {old_tasks!r}."
        )
    score: TaskEvaluator = evaluate or (lambda m, _name, data: accuracy(m, data))
    before = {name: float(score(model, name, data)) for name, data in old_tasks.items()}
    result = fine_tune(model)
    after = {name: float(score(model, name, data)) for name, data in old_tasks.items()}
    return ForgettingReport(before=before, after=after, result=result)

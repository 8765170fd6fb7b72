"""Forgetting metrics on hand-worked accuracy matrices; the tracker and the before/after helper."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune._forgetting import (  # noqa: E402
    ForgettingTracker,
    accuracy,
    average_accuracy,
    average_forgetting,
    backward_transfer,
    measure_forgetting,
)
from tunecraft.train import fit  # noqa: E402

# Three tasks. Row i: accuracies after learning task i.
R = [
    [0.90, 0.10, 0.20],
    [0.80, 0.95, 0.30],
    [0.60, 0.85, 0.70],
]


def test_backward_transfer_by_hand() -> None:
    # ((0.60 - 0.90) + (0.85 - 0.95)) / 2 = -0.2
    assert backward_transfer(R) == pytest.approx(-0.2)


def test_average_forgetting_by_hand() -> None:
    # task 0: max(0.90, 0.80) - 0.60 = 0.30; task 1: 0.95 - 0.85 = 0.10 -> 0.2
    assert average_forgetting(R) == pytest.approx(0.2)
    # forgetting uses the best earlier value, not the value right after learning
    r = [[0.5, 0.0, 0.0], [0.9, 0.8, 0.0], [0.6, 0.8, 0.9]]
    assert average_forgetting(r) == pytest.approx(((0.9 - 0.6) + 0.0) / 2)
    assert backward_transfer(r) == pytest.approx(((0.6 - 0.5) + 0.0) / 2)


def test_average_accuracy_by_hand() -> None:
    assert average_accuracy(R) == pytest.approx((0.60 + 0.85 + 0.70) / 3)


def test_positive_backward_transfer_and_no_forgetting() -> None:
    r = np.array([[0.7, 0.0], [0.8, 0.9]])
    assert backward_transfer(r) == pytest.approx(0.1)
    assert average_forgetting(r) == pytest.approx(-0.1)


def test_upper_triangle_may_be_missing() -> None:
    r = [[0.9, np.nan], [0.5, 0.8]]
    assert backward_transfer(r) == pytest.approx(-0.4)


@pytest.mark.parametrize(
    "matrix", [[[0.9]], [[0.9, 0.1]], [0.9, 0.8], [[np.nan, 0.1], [0.5, 0.8]]]
)
def test_bad_matrices(matrix: list) -> None:
    with pytest.raises(InvalidParameterError, match="'matrix' parameter of backward_transfer"):
        backward_transfer(matrix)


def test_accuracy_helper() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    model.train()
    data = [(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0]]), torch.tensor([0, 1, 0]))]
    assert accuracy(model, data) == pytest.approx(2 / 3)
    assert model.training  # mode restored
    flipped = accuracy(model, data, predict=lambda m, x: -m(x))
    assert flipped == pytest.approx(1 / 3)
    with pytest.raises(InvalidParameterError, match="gave no samples"):
        accuracy(model, [])


def two_tasks() -> dict[str, DataLoader]:
    g = torch.Generator().manual_seed(0)
    xa, xb = torch.randn(96, 4, generator=g), torch.randn(96, 4, generator=g)
    return {
        "a": DataLoader(TensorDataset(xa, (xa[:, 0] > 0).long()), batch_size=32),
        "b": DataLoader(TensorDataset(xb, (xb[:, 0] < 0).long()), batch_size=32),  # conflicting
    }


def test_tracker_records_the_matrix_of_a_real_sequence() -> None:
    tasks = two_tasks()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    tracker = ForgettingTracker(tasks)
    for name in ("a", "b"):
        fit(model, tasks[name], loss_fn=F.cross_entropy, lr=0.05, epochs=20, device="cpu")
        tracker.record(model, name)
    r = tracker.matrix
    assert r.shape == (2, 2)
    assert r[0, 0] > 0.9 and r[1, 1] > 0.9  # each learned
    assert r[1, 0] < 0.2  # the conflicting task b overwrote a
    assert tracker.backward_transfer() == pytest.approx(r[1, 0] - r[0, 0])
    assert tracker.average_forgetting() == pytest.approx(r[0, 0] - r[1, 0])
    assert tracker.average_accuracy() == pytest.approx(r[1].mean())


def test_tracker_with_a_task_evaluator_and_errors() -> None:
    tasks = two_tasks()
    seen = []

    def evaluate(model: nn.Module, name: str, data: object) -> float:
        seen.append(name)
        return 1.0 if name == "a" else 0.5

    tracker = ForgettingTracker(tasks, evaluate=evaluate)
    assert tracker.record(nn.Identity(), "a") == {"a": 1.0, "b": 0.5}
    assert seen == ["a", "b"]
    with pytest.raises(InvalidParameterError, match="at least two stages"):
        tracker.backward_transfer()
    with pytest.raises(InvalidParameterError, match="'trained' parameter of ForgettingTracker"):
        tracker.record(nn.Identity(), "c")
    with pytest.raises(InvalidParameterError, match="'tasks' parameter of ForgettingTracker"):
        ForgettingTracker({})


def test_measure_forgetting_before_and_after_fine_tuning() -> None:
    tasks = two_tasks()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    fit(model, tasks["a"], loss_fn=F.cross_entropy, lr=0.05, epochs=20, device="cpu")
    report = measure_forgetting(
        model,
        lambda m: fit(m, tasks["b"], loss_fn=F.cross_entropy, lr=0.05, epochs=20, device="cpu"),
        {"a": tasks["a"]},
    )
    assert report.before["a"] > 0.9
    assert report.after["a"] < 0.2
    assert report.forgetting["a"] == pytest.approx(report.before["a"] - report.after["a"])
    assert report.mean_forgetting == pytest.approx(report.forgetting["a"])
    assert report.result.epochs == 20
    with pytest.raises(TypeError, match="'fine_tune' parameter of measure_forgetting"):
        measure_forgetting(model, "train", {"a": tasks["a"]})  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="'old_tasks' parameter"):
        measure_forgetting(model, lambda m: None, {})

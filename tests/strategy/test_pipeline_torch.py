"""The budgeted pipeline's learning-rate range test, with tunecraft.train.lr_find (torch)."""

from __future__ import annotations

import math

import pytest

import tunecraft as tc
from tunecraft.strategy import BudgetedSearch
from tunecraft.trial import Trial


def test_lr_range_test_narrows_the_learning_rate_first() -> None:
    torch = pytest.importorskip("torch")
    from torch.nn import functional as F  # noqa: N812

    torch.manual_seed(0)
    x = torch.randn(256, 8)
    target = (x[:, 0] > 0).long()
    data = torch.utils.data.DataLoader(list(zip(x, target, strict=True)), batch_size=32)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    space = {"lr": tc.loguniform(1e-6, 10.0), "y": tc.uniform(0, 1)}

    def objective(trial: Trial) -> float:
        return (math.log10(trial.config["lr"]) + 2) ** 2 + trial.config["y"]

    lines: list[str] = []
    search = BudgetedSearch(
        objective,
        space,
        budget="12 trials",
        max_fidelity=3,
        seed=0,
        n_seeds=1,
        lr_find={"model": model, "train_data": data, "loss_fn": F.cross_entropy, "num_steps": 40},
        verbose=lines.append,
    )
    assert search.plan().names[0] == "lr_range_test"
    result = search.run()
    test = result.lr_range_test
    assert test is not None and len(test["lrs"]) == len(test["losses"]) > 3
    narrowed = tc.Space.from_dict(test["space"])["lr"]
    assert 1e-6 <= narrowed.low < test["suggestion"] < narrowed.high <= 10.0  # type: ignore[attr-defined]
    assert narrowed.high / narrowed.low < 1e7 / 10  # narrower than the 7 decades given
    explore = search.study("explore")
    assert explore.space["lr"] == narrowed
    assert all(narrowed.contains(t.config["lr"]) for t in explore.trials)
    assert any(line.startswith("lr_range_test: suggestion") for line in lines)

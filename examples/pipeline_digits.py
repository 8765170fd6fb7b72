"""The budgeted pipeline on a real task: a small PyTorch MLP on scikit-learn's digits.

Run it (about two minutes on a laptop CPU)::

    python examples/pipeline_digits.py

What happens, in the order tunecraft does it:

1. The data is split three ways: **train** (the model learns on it), **validation** (the search
   compares configurations on it) and **holdout** (only the final validation looks at it, so
   the score reported at the end is an honest estimate).
2. ``tune`` prints a plan: how the budget of 40 full-length runs (40 x 30 epochs) is spent.
3. Phase 0, transfer: a learning-rate range test on the untrained model narrows the learning
   rate's range; the defaults table (AdamW: lr 1e-3, weight decay 0.01...) is tried first.
4. Phase 1, explore: Sobol points over the whole space with short runs (a few epochs each);
   then the importance of each hyperparameter; unimportant ones are fixed, the rest narrowed.
5. Phase 2, refine: Bayesian optimization with early stopping in the narrowed space.
6. Phase 3, validate: the 3 best configurations retrained for 30 epochs and scored on the
   holdout, raced: one run each, then 2 more seeds for the best of them by that run (what the
   race does not need goes to refine). The winner is the best mean validation error of those
   full-length runs, so the holdout error reported for it is an honest estimate
   (``select="holdout"`` would choose on the holdout itself, and report an optimistic score).

The objective below is all a user writes: it reads ``trial.config`` (the hyperparameters),
``trial.budget`` (epochs to train), ``trial.seed`` and ``trial.split``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F  # noqa: N812

import tunecraft as tc
from tunecraft.strategy import tune

torch.set_num_threads(1)  # small tensors: one thread is fastest and leaves the machine free

# -- data: train / validation / holdout -----------------------------------------------------------
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_rest, X_hold, y_rest, y_hold = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
X_train, X_val, y_train, y_val = train_test_split(
    X_rest, y_rest, test_size=0.25, random_state=0, stratify=y_rest
)
DATA = {
    "train": (torch.from_numpy(X_train), torch.from_numpy(y_train)),
    "validation": (torch.from_numpy(X_val), torch.from_numpy(y_val)),
    "holdout": (torch.from_numpy(X_hold), torch.from_numpy(y_hold)),
}

# -- the search space -----------------------------------------------------------------------------
SPACE = {
    "lr": tc.loguniform(1e-5, 1.0),
    "weight_decay": tc.loguniform(1e-6, 1e-1),
    "hidden": tc.integer(16, 256, log=True),
    "dropout": tc.uniform(0.0, 0.5),
    "batch_size": tc.choice([16, 32, 64, 128]),
}
EPOCHS = 30  # a full run


def build_model(hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
    )


def error_rate(model: nn.Module, split: str) -> float:
    x, target = DATA[split]
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) != target).float().mean())


def objective(trial: tc.Trial) -> float:
    """Train for ``trial.budget`` epochs; report validation error; return error on the split."""
    c = trial.config
    torch.manual_seed(trial.seed or 0)
    model = build_model(c["hidden"], c["dropout"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
    x, target = DATA["train"]
    for epoch in range(1, int(trial.budget) + 1):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), c["batch_size"]):
            batch = order[start : start + c["batch_size"]]
            loss = F.cross_entropy(model(x[batch]), target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        # The validation error drives the search; the training loss is kept for the
        # over/underfitting check of the final validation.
        trial.report(error_rate(model, "validation"), step=epoch, train=total / len(x))
        if trial.should_stop():  # the refine phase's scheduler stops poor runs early
            break
    return error_rate(model, trial.split)  # "validation", or "holdout" in the final phase


def main() -> None:
    start = time.monotonic()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*DATA["train"]), batch_size=32, shuffle=True
    )
    result = tune(
        objective,
        SPACE,
        budget="40 trials",  # 40 full-length runs of 30 epochs
        max_fidelity=EPOCHS,
        direction="minimize",
        storage=None,  # "sqlite:///pipeline-digits.db" to keep it and resume after a crash
        name="mlp-digits",
        seed=0,
        lr_find={  # the learning-rate range test, on the untrained model, before any search
            "model": build_model(64, 0.1),
            "train_data": loader,
            "loss_fn": F.cross_entropy,
            "num_steps": 100,
        },
        verbose=True,  # the plan first, a line per phase, then the summary
    )
    test = result.lr_range_test or {}
    print(
        f"\nLR range test: suggested {test.get('suggestion', float('nan')):.2g} -> lr searched "
        f"in {test.get('space', {}).get('lr')}; chosen lr {result.best_config['lr']:.3g}"
    )
    best = result.best_finalist
    assert best is not None
    print(
        f"Chosen: holdout error {best.mean:.3f} +- {best.std:.3f} over seeds {best.seeds} "
        f"(the search had claimed {best.search_value:.3f}); {time.monotonic() - start:.0f}s"
    )


if __name__ == "__main__":
    main()

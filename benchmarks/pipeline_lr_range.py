"""Does the learning-rate range test's narrowed range keep the rate a full search would pick?

On scikit-learn's digits with a small PyTorch MLP (AdamW, the example's model): for each seed,
run :func:`tunecraft.train.lr_find` on the untrained model, narrow the learning-rate range the
way the budgeted pipeline does (:func:`tunecraft.strategy.narrow_lr`: suggestion / 10 to
suggestion x 10), and run a plain search over the *full* space (the ``auto`` sampler, every
trial at full length). The narrowed range passes when it contains the learning rate of the
full search's best configuration.

Run: ``nice -n 10 .venv/bin/python benchmarks/pipeline_lr_range.py --seeds 3 --trials 25``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F  # noqa: N812

import tunecraft as tc
from tunecraft.strategy import narrow_lr
from tunecraft.train import lr_find

torch.set_num_threads(1)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
TRAIN = (torch.from_numpy(X_train), torch.from_numpy(y_train))
VAL = (torch.from_numpy(X_val), torch.from_numpy(y_val))
SPACE = {
    "lr": tc.loguniform(1e-5, 1.0),
    "weight_decay": tc.loguniform(1e-6, 1e-1),
    "hidden": tc.integer(16, 256, log=True),
    "dropout": tc.uniform(0.0, 0.5),
}


def model_of(hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
    )


def train(config: dict, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = model_of(config["hidden"], config["dropout"])
    opt = torch.optim.AdamW(
        model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"]
    )
    x, t = TRAIN
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 32):
            b = order[start : start + 32]
            loss = F.cross_entropy(model(x[b]), t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(VAL[0]).argmax(1) != VAL[1]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        start = time.monotonic()
        torch.manual_seed(seed)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(*TRAIN), batch_size=32, shuffle=True
        )
        found = lr_find(model_of(64, 0.1), loader, loss_fn=F.cross_entropy, num_steps=100)
        narrowed = narrow_lr(tc.Space(SPACE), "lr", found.suggested_lr)["lr"]
        study = tc.Study(SPACE, sampler="auto", seed=seed)
        study.optimize(
            lambda t, s=seed: train(t.config, args.epochs, s),  # type: ignore[misc]
            n_trials=args.trials,
        )
        best = study.best_config
        rows.append(
            (
                seed,
                found.suggested_lr,
                narrowed.notation(),
                best["lr"],
                narrowed.contains(best["lr"]),
                study.best_value,
                time.monotonic() - start,
            )
        )
        print(rows[-1], flush=True)
    print(
        "\n| seed | suggestion | narrowed lr range | best lr (full search) | inside "
        "| best val error | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for seed, sug, rng, lr, inside, err, secs in rows:
        mark = "yes" if inside else "no"
        print(f"| {seed} | {sug:.3g} | `{rng}` | {lr:.3g} | {mark} | {err:.3f} | {secs:.0f} |")
    print(f"\ninside in {sum(r[4] for r in rows)} of {len(rows)} seeds")


if __name__ == "__main__":
    main()

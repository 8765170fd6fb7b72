"""Adapt a digits classifier from digits 0-4 to digits 5-9 without forgetting 0-4.

A small MLP learns 0-4, then gets a new head and is fine-tuned on 5-9, once plainly and once
with elastic weight consolidation (EWC): a penalty that keeps the weights important for 0-4
(by their Fisher information on the 0-4 data) near their old values. The old head scores 0-4
on the adapted network before and after, so the drop is what fine-tuning forgot.

Run: ``python examples/finetune_digits_ewc.py`` (under 30 seconds on a CPU).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tunecraft.finetune import EWC, accuracy, measure_forgetting
from tunecraft.train import fit, seed_everything


def task(classes: range, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Train and test loaders of the digits in ``classes``, labels shifted to 0-4."""
    digits = load_digits()
    keep = [i for i, label in enumerate(digits.target) if label in classes]
    x = torch.tensor(digits.data[keep] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[keep] - classes.start)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True, generator=g)
    return train, DataLoader(TensorDataset(x_te, y_te), batch_size=256)


def main() -> None:
    torch.set_num_threads(1)
    seed_everything(0)
    old_train, old_test = task(range(0, 5))
    new_train, new_test = task(range(5, 10))

    # One backbone, two heads: each task's model is an nn.Sequential sharing the backbone.
    backbone = [nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU()]
    old_model = nn.Sequential(*backbone, nn.Linear(128, 5))
    fit(old_model, old_train, loss_fn=F.cross_entropy, lr=1e-3, epochs=30, device="cpu")

    for use_ewc in (False, True):
        adapt(copy.deepcopy(old_model), old_train, old_test, new_train, new_test, use_ewc)


def adapt(
    old: nn.Sequential,
    old_train: DataLoader,
    old_test: DataLoader,
    new_train: DataLoader,
    new_test: DataLoader,
    use_ewc: bool,
) -> None:
    """Fine-tune a fresh head and the shared backbone on 5-9; print what 0-4 lost."""
    new = nn.Sequential(*old[:4], nn.Linear(128, 5))  # the same backbone, a fresh head
    loss_fn = F.cross_entropy
    if use_ewc:
        # Fisher information on the old task, for the backbone ("0" and "2" in `old`)
        ewc = EWC(old, strength=1e4, parameters=["0", "2"])
        ewc.consolidate(old_train)
        loss_fn = ewc.wrap(F.cross_entropy)  # task loss + penalty, for fit

    report = measure_forgetting(
        old,  # the old head on the shared backbone scores 0-4
        lambda _: fit(new, new_train, loss_fn=loss_fn, lr=1e-2, epochs=30, device="cpu"),
        {"digits 0-4": old_test},
    )
    name = "EWC (strength 1e4)" if use_ewc else "plain fine-tuning"
    print(
        f"{name:>20}: 5-9 accuracy {accuracy(new, new_test):.3f} | "
        f"0-4 accuracy {report.before['digits 0-4']:.3f} -> {report.after['digits 0-4']:.3f}"
    )


if __name__ == "__main__":
    main()

"""Run by test_checkpoint.py in fresh processes: train, stop halfway, or resume.

Usage: python _resume_run.py MODE DIR, MODE one of "full", "half", "resume".
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import DataLoader, TensorDataset

from tunecraft.train import (
    Callback,
    EarlyStopping,
    FitState,
    ModelCheckpoint,
    fit,
    seed_everything,
)

EPOCHS = 6


class StopAt(Callback):
    """Simulates an interrupted run: stop after ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: FitState) -> None:
        if state.epoch == self.epoch:
            state.stop, state.stop_reason = True, "interrupted"


def main(mode: str, out: Path) -> None:
    torch.set_num_threads(1)
    seed_everything(0)
    x = torch.randn(80, 8)
    y = (x[:, 0] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=32)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2)
    )
    callbacks = [
        EarlyStopping(patience=100),
        ModelCheckpoint(out / "ckpt"),
        StopAt(EPOCHS // 2 - 1 if mode == "half" else -1),
    ]
    fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        optimizer="adamw",
        lr=0.01,
        weight_decay=0.01,
        epochs=EPOCHS,
        schedule="cosine",
        schedule_options={"warmup_steps": 3},
        grad_clip=1.0,
        callbacks=callbacks,
        device="cpu",
        resume_from=out / "ckpt" / "last.pt" if mode == "resume" else None,
    )
    if mode != "half":
        torch.save(model.state_dict(), out / f"{mode}.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))

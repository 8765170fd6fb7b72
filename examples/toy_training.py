"""A toy "training run" for ``toy_training.yaml``: no data, instant, with a known optimum.

The loss mimics a network's validation loss: best near lr=3e-3 with adam, or lr=3e-2 with
sgd and momentum near 0.9; more layers help a little, then overfit.
"""

from __future__ import annotations

import math
from typing import Any


def objective(trial: Any) -> float:
    """Report a loss per "epoch" and return the last one."""
    config = trial.config
    if config["optimizer"] == "adam":
        best_lr, extra = 3e-3, 0.0
    else:
        best_lr, extra = 3e-2, 2.0 * (config["momentum"] - 0.9) ** 2
    distance = (math.log10(config["lr"]) - math.log10(best_lr)) ** 2
    depth = 0.02 * (config["layers"] - 4) ** 2
    loss = 1.0
    for epoch in range(5):
        loss = 0.1 + distance + extra + depth + 1.0 / (epoch + 2)
        trial.report(loss, step=epoch)
        if trial.should_stop():
            break
    return loss

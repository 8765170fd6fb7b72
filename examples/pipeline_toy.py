"""A toy "training run" for ``pipeline_toy.yaml``: instant, noisy across seeds, with a holdout.

It shows what an objective of the budgeted pipeline reads from the trial:

* ``trial.budget``: how many epochs to train (short in explore, full in validation);
* ``trial.seed``: the seed to train with (the final validation trains each finalist with
  several);
* ``trial.split``: ``"validation"`` during the search, ``"holdout"`` in the final validation,
  where the returned value must be the metric on data the search never saw.

The loss mimics a network's: best near lr=3e-3 and dropout=0.1; the width hardly matters;
a too-high learning rate overfits after a few epochs.
"""

from __future__ import annotations

import math
import random
from typing import Any


def objective(trial: Any) -> float:
    """Report the validation loss after each epoch; return the loss on ``trial.split``."""
    config = trial.config
    rng = random.Random(trial.seed)
    distance = (math.log10(config["lr"]) - math.log10(3e-3)) ** 2
    floor = 0.1 + distance + 0.5 * (config["dropout"] - 0.1) ** 2 + 1e-4 * config["width"] / 64
    speed = min(1.0, config["lr"] / 3e-3)  # a small learning rate learns slowly
    loss = train_loss = 1.0
    for epoch in range(1, int(trial.budget) + 1):
        train_loss = floor / 2 + math.exp(-speed * epoch / 3)
        overfit = 0.02 * max(0, epoch - 10) * max(0.0, math.log10(config["lr"] / 1e-2))
        loss = floor + math.exp(-speed * epoch / 3) + overfit + rng.gauss(0, 0.005)
        trial.report(loss, step=epoch, train=train_loss)
        if trial.should_stop():
            break
    if trial.split == "holdout":
        return loss + 0.01 + rng.gauss(0, 0.005)  # the holdout is a little harder
    return loss

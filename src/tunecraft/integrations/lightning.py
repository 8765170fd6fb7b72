"""Report a Lightning run to a tunecraft trial, and stop it when the trial is pruned.

Needs ``lightning`` (``pip install lightning``; the ``torch`` extra for torch itself).
"""

from __future__ import annotations

import math
from typing import Any

from tunecraft._imports import require

_pl = require("lightning.pytorch", "torch", purpose="tunecraft.integrations.lightning")

__all__ = ["TunecraftLightningCallback"]


class TunecraftLightningCallback(_pl.Callback):  # type: ignore[name-defined]
    """A Lightning callback: report ``monitor`` after each validation epoch, stop if pruned.

    The value is reported with ``trial.report(value, step=trainer.current_epoch)``; when
    ``trial.should_stop()`` the trainer is told to stop (``trainer.should_stop = True``), and
    :attr:`pruned` is set. Return normally from the objective: the study then records the
    trial as pruned.

    Args:
        trial: The :class:`tunecraft.Trial` of the objective.
        monitor: A key of ``trainer.callback_metrics`` (what ``self.log`` recorded).

    Example:
        >>> def objective(trial):  # doctest: +SKIP
        ...     callback = TunecraftLightningCallback(trial, monitor="val_loss")
        ...     trainer = lightning.pytorch.Trainer(max_epochs=20, callbacks=[callback])
        ...     trainer.fit(model, datamodule)
        ...     return trainer.callback_metrics["val_loss"].item()
    """

    def __init__(self, trial: Any, monitor: str = "val_loss") -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                "The 'monitor' parameter of TunecraftLightningCallback must be a non-empty str, "
                f"got {monitor!r}."
            )
        self.trial = trial
        self.monitor = monitor
        self.pruned = False

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Report the monitored value; ask the trainer to stop when the trial should stop."""
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            available = sorted(trainer.callback_metrics)
            raise ValueError(
                f"TunecraftLightningCallback monitors {self.monitor!r}, which the LightningModule "
                f"did not log; logged: {available}."
            )
        value = float(value)
        if not math.isfinite(value):
            return  # a NaN epoch; the objective's return decides the trial's fate
        self.trial.report(value, step=int(trainer.current_epoch))
        if self.trial.should_stop():
            self.pruned = True
            trainer.should_stop = True

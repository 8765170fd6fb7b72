"""Report a Lightning run to a tunecraft trial, and stop it when the trial is pruned.

Needs ``lightning`` (``pip install lightning``; the ``torch`` extra for torch itself).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from tunecraft._imports import require

_pl = require("lightning.pytorch", "torch", purpose="tunecraft.integrations.lightning")

__all__ = ["TunecraftLightningCallback"]


def _validates_per_epoch(trainer: Any) -> bool:
    """Whether ``trainer.fit`` validates at most once per epoch, at the epoch's end."""
    if trainer.check_val_every_n_epoch is None:  # every N batches, across epochs
        return False
    if getattr(trainer, "_val_check_time_interval", None) is not None:  # by wall time
        return False
    every = trainer.val_check_batch
    return every is not None and every >= trainer.num_training_batches


class TunecraftLightningCallback(_pl.Callback):  # type: ignore[name-defined]
    """A Lightning callback: report ``monitor`` after each validation, stop if pruned.

    Each validation of ``trainer.fit`` (not the sanity check, nor ``trainer.validate``)
    reports ``trainer.callback_metrics[monitor]`` with ``trial.report(value, step=...)``, the
    step being the epochs completed (``trainer.current_epoch + 1``: 1 after the first) when
    validation runs once per epoch (the default), and ``trainer.global_step`` (the optimizer
    steps taken) when it runs within epochs (``val_check_interval`` below one epoch, or
    ``check_val_every_n_epoch=None``), so that every report has its own step and a step counts
    the work done, as the other integrations' steps do and the schedulers' resources assume. When
    ``trial.should_stop()`` the trainer is told to stop (``trainer.should_stop = True``),
    :attr:`pruned` (the scheduler stopped the trial) or :attr:`paused` (it paused it) is set,
    and later validations of the run are no longer reported (``min_epochs`` may keep it
    going). Return normally from the objective: the study then records the trial as pruned
    or paused.

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
        self.paused = False
        self._validated = False  # whether trainer.fit validated at least once

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Report the monitored value; ask the trainer to stop when the trial should stop."""
        if trainer.sanity_checking or trainer.state.fn != _pl.trainer.states.TrainerFn.FITTING:
            return  # the sanity check, or trainer.validate(): no training progress to judge
        if self.pruned or self.paused:
            return  # stopped already; min_epochs / min_steps keep the trainer going
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            available = sorted(trainer.callback_metrics)
            raise ValueError(
                f"TunecraftLightningCallback monitors {self.monitor!r}, which the LightningModule "
                f"did not log; logged: {available}."
            )
        self._validated = True
        value = float(value)
        if not math.isfinite(value):
            return  # a NaN epoch; the objective's return decides the trial's fate
        per_epoch = _validates_per_epoch(trainer)
        step = trainer.current_epoch + 1 if per_epoch else trainer.global_step
        self.trial.report(value, step=int(step))
        if self.trial.should_stop():
            if getattr(self.trial, "decision", "stop") == "pause":
                self.paused = True
            else:
                self.pruned = True
            trainer.should_stop = True

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Warn when the run trained but never reported (validation never ran)."""
        if not self._validated and trainer.global_step:
            warnings.warn(
                f"TunecraftLightningCallback reported nothing to trial "
                f"{getattr(self.trial, 'number', '?')}: validation never ran during "
                "trainer.fit (no val_dataloaders, or limit_val_batches=0), so no scheduler "
                "could judge it.",
                UserWarning,
                stacklevel=2,
            )

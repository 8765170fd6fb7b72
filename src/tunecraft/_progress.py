"""The progress display of Study.optimize (rich, imported only when shown)."""

from __future__ import annotations

import math
from typing import Any

from tunecraft.trial import FrozenTrial, TrialState


class ProgressBar:
    """A terminal progress bar showing trials done, the best value and the time left."""

    def __init__(self, *, total: int | None, timeout: float | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
            transient=False,
        )
        self._task = self._progress.add_task("trials", total=total, best="")
        self._best = math.inf
        self._sign = 1.0
        self._progress.start()

    def update(self, study: Any, record: FrozenTrial) -> None:
        """Advance by one finished trial."""
        self._sign = 1.0 if study.direction == "minimize" else -1.0
        self.advance(record)

    def advance(self, record: FrozenTrial | None, n: int = 1) -> None:
        """Advance by ``n`` trials, taking ``record`` into account for the best value."""
        if (
            record is not None
            and record.state is TrialState.COMPLETE
            and record.value is not None
            and self._sign * record.value < self._best
        ):
            self._best = self._sign * record.value
        best = "" if math.isinf(self._best) else f"best {self._sign * self._best:.6g}"
        self._progress.update(self._task, advance=n, best=best)

    def close(self) -> None:
        """Stop drawing."""
        self._progress.stop()

"""The sampler interface: propose a config from the space and the trials so far."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tunecraft.space import Space
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["History", "Sampler"]


class History:
    """The trials of a study as a sampler or scheduler sees them, fetched once on first use.

    Args:
        fetch: Returns every trial of the study, ordered by number.
        direction: ``"minimize"`` or ``"maximize"``.
    """

    def __init__(
        self, fetch: Callable[[], Sequence[FrozenTrial]] | Sequence[FrozenTrial], direction: str
    ) -> None:
        self._fetch = fetch
        self._trials: list[FrozenTrial] | None = None
        self.direction = direction
        #: What samplers and schedulers derive from these trials, kept for the life of this
        #: history (one decision may read it several times: AutoScheduler's rung checks
        #: serve ``on_ask`` and ``sampler_trials`` of one ask). Keys name their owner.
        self.memo: dict[Any, Any] = {}

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, ordered by number."""
        if self._trials is None:
            fetched = self._fetch() if callable(self._fetch) else self._fetch
            self._trials = list(fetched)
        return self._trials

    def with_state(self, *states: TrialState) -> list[FrozenTrial]:
        """The trials in any of ``states``."""
        return [t for t in self.trials if t.state in states]

    @property
    def complete(self) -> list[FrozenTrial]:
        """Trials that finished with a value."""
        return self.with_state(TrialState.COMPLETE)

    @property
    def pending(self) -> list[FrozenTrial]:
        """Trials running, paused or waiting: configs already in the study without a final
        value, which a sampler should not propose again."""
        return self.with_state(TrialState.RUNNING, TrialState.PAUSED, TrialState.WAITING)

    @property
    def running(self) -> list[FrozenTrial]:
        """Trials running or waiting to start: work in flight whose outcome is unknown.

        Unlike :attr:`pending` it leaves out paused trials: a scheduler paused those after
        seeing their intermediate values (often to resume the promising ones), so a sampler
        should not repeat them but has no reason to count them as bad.
        """
        return self.with_state(TrialState.RUNNING, TrialState.WAITING)

    def sign(self) -> float:
        """``+1`` to minimize, ``-1`` to maximize: multiply values by it to always minimize."""
        return 1.0 if self.direction == "minimize" else -1.0


class Sampler(ABC):
    """Proposes configurations.

    A sampler owns its randomness: it is built with ``seed=`` and, for a fixed seed and history,
    proposes the same config for the same trial number, in this process or a fresh one. It sees
    running trials as well as finished ones (:attr:`History.pending`), so parallel workers can
    avoid duplicating work in flight. Samplers know nothing of schedulers.

    Subclasses implement :meth:`suggest`; :meth:`is_exhausted` is optional.

    Two workers that read the history at the same moment see neither's new trial. A sampler
    whose proposals for such a pair can coincide (a deterministic optimum, the next grid
    point) sets :attr:`avoids_twins`: the study then looks, as it stores a proposal, for a
    trial started meanwhile with the same config, and asks again with that trial in the
    history (see ``Study._untwin`` for the limits).
    """

    #: Ask again when a trial started concurrently holds the same config (see above).
    avoids_twins: bool = False

    def __init__(self, *, seed: int | None = None) -> None:
        from tunecraft._validation import check_int

        check_int(seed, "seed", type(self).__name__, low=0, allow_none=True)
        self.seed = seed
        # Without a seed, draw one now: the sampler stays self-consistent (and identical in the
        # worker processes it is copied to) while differing between runs.
        self._entropy = (
            seed if seed is not None else int(np.random.SeedSequence().entropy % (2**63))  # type: ignore[operator]
        )

    def rng(self, number: int, *salt: int) -> np.random.Generator:
        """The generator for trial ``number``: a function of the seed and the number only, so
        suggestions do not depend on which worker asks or in what order."""
        return np.random.default_rng([self._entropy, number, *salt])

    @abstractmethod
    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        """Return a config of ``space`` for trial ``number``; inactive parameters left out."""

    def is_exhausted(self, space: Space, history: History) -> bool:
        """Whether the sampler has nothing left to propose (a finished grid)."""
        return False

    def warm_up(self, space: Space, history: History) -> None:
        """Load what :meth:`suggest` is about to need (a module, an engine) before the study
        starts the trial's clock, so that a one-time cost is not charged to one trial's
        duration. The default does nothing."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed!r})"

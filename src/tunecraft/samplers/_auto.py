"""The default sampler: picks an algorithm from the space and the study's progress."""

from __future__ import annotations

from typing import Any

from tunecraft._validation import check_int
from tunecraft.samplers._base import History, Sampler
from tunecraft.samplers._gp import GPSampler
from tunecraft.samplers._sobol import SobolSampler
from tunecraft.samplers._tpe import TPESampler, _required
from tunecraft.space import Categorical, Space

__all__ = ["AutoSampler"]


class AutoSampler(Sampler):
    """The sampler a study uses when none is named.

    The rule, evaluated afresh for every trial (so a study may switch mid-way), with ``d`` the
    number of parameters and ``n`` the number of finished trials:

    1. ``n < clip(2 * d, 5, 10)``: **Sobol** (quasi-random start; covers the space evenly).
    2. ``d > max_gp_dims`` (16), or ``n >= max_gp_trials`` (300): **TPE**. A GP's fit grows as
       ``n^3`` and its model degrades in many dimensions; TPE stays cheap and robust there.
    3. More than ``max_cat_share`` (60%) of the parameters are categorical and the space has
       at least 4 of them: **TPE**, whose per-option kernels suit large discrete spaces better
       than a GP's overlap kernel.
    4. Otherwise: **GP** (Matérn-5/2 with log-EI), which is the most sample-efficient model for
       the small, mostly numeric spaces typical of hyperparameter tuning, conditional
       parameters included (the GP models them, see :class:`GPSampler`).

    All three share one seed, so the Sobol start is the same sequence the GP or TPE would have
    drawn, and the same seed and history give the same suggestion.

    Args:
        seed: Seeds the samplers.
        max_gp_dims: Largest number of parameters the GP takes.
        max_gp_trials: Finished trials from which TPE takes over from the GP.
        max_cat_share: Largest share of categorical parameters the GP takes (in percent).
    """

    avoids_twins = True  # the GP's optimum is deterministic

    def __init__(
        self,
        *,
        seed: int | None = None,
        max_gp_dims: int = 16,
        max_gp_trials: int = 300,
        max_cat_share: int = 60,
    ) -> None:
        super().__init__(seed=seed)
        owner = "AutoSampler"
        self.max_gp_dims = _required(check_int(max_gp_dims, "max_gp_dims", owner, low=1))
        self.max_gp_trials = _required(check_int(max_gp_trials, "max_gp_trials", owner, low=1))
        self.max_cat_share = _required(
            check_int(max_cat_share, "max_cat_share", owner, low=0, high=100)
        )
        self._sobol = SobolSampler(seed=self._entropy)
        self._gp = GPSampler(seed=self._entropy)
        self._tpe = TPESampler(seed=self._entropy, n_startup_trials=1)

    def choose(self, space: Space, history: History) -> Sampler:
        """The sampler that proposes the next config (see the class docstring for the rule)."""
        d = len(space)
        n = sum(t.value is not None for t in history.complete)
        if n < min(10, max(5, 2 * d)):
            return self._sobol
        if d > self.max_gp_dims or n >= self.max_gp_trials:
            return self._tpe
        n_cat = sum(isinstance(space[name], Categorical) for name in space.names)
        if n_cat >= 4 and 100 * n_cat > self.max_cat_share * d:
            return self._tpe
        return self._gp

    def warm_up(self, space: Space, history: History) -> None:
        self.choose(space, history).warm_up(space, history)

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        return self.choose(space, history).suggest(space, history, number)

"""Statistics the benchmarks share: paired comparisons over repetitions or seeds."""

from __future__ import annotations

import numpy as np


def paired(
    ours: list[float], peer: list[float], n_boot: int = 10_000
) -> tuple[int, int, float, tuple[float, float], float, tuple[float, float]]:
    """Ours against a peer on the same repetitions (lower is better).

    Returns wins, losses, the difference of medians and of means (ours - peer), each with a
    90 % bootstrap interval (fixed resampling seed). The bootstrap resamples repetitions (or
    seeds) and keeps both methods' results of one together: they share its split and seed.
    """
    a, b = np.asarray(ours, dtype=float), np.asarray(peer, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired results needed, got {a.size} and {b.size}")
    idx = np.random.default_rng(0).integers(0, a.size, (n_boot, a.size))
    d_med = np.median(a[idx], axis=1) - np.median(b[idx], axis=1)
    d_mean = (a[idx] - b[idx]).mean(axis=1)

    def interval(x: np.ndarray) -> tuple[float, float]:
        return float(np.quantile(x, 0.05)), float(np.quantile(x, 0.95))

    return (
        int((a < b).sum()),
        int((a > b).sum()),
        float(np.median(a) - np.median(b)),
        interval(d_med),
        float((a - b).mean()),
        interval(d_mean),
    )

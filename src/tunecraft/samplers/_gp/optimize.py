"""Maximizing the acquisition over the mixed, conditional unit cube.

1. Score many candidates at once: a scrambled Sobol set over the whole cube plus Gaussian
   perturbations of the best observed points (where improvement usually is).
2. Refine the best few with L-BFGS-B on their numeric features (jointly, one call, analytic
   gradients); integers are relaxed to continuous values and rounded afterwards.
3. Local moves: from the best points, try every other option of each categorical and the
   neighbouring value of each integer, and climb while the acquisition improves.

Points equal to an observed or running trial are never returned.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from tunecraft.samplers._encoding import Encoder, Features
from tunecraft.samplers._gp.acquisition import Acquisition

__all__ = ["maximize_acquisition"]


def _key(f: Features, i: int) -> bytes:
    return np.round(f.cont[i], 9).tobytes() + f.cat[i].tobytes()


def _sobol(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.stats import qmc

    engine = qmc.Sobol(d, scramble=True, seed=int(rng.integers(2**31)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(engine.random(n))


def _local_candidates(
    enc: Encoder, anchors: np.ndarray, rng: np.random.Generator, n_each: int, scale: float
) -> np.ndarray:
    """Perturbations of anchor points: numeric coordinates jittered, categoricals resampled
    with a small probability; nan (inactive) coordinates filled at random."""
    if len(anchors) == 0:
        return np.empty((0, enc.d))
    base = np.repeat(anchors, n_each, axis=0)
    base = np.where(np.isnan(base), rng.random(base.shape), base)
    noise = scale * rng.standard_normal(base.shape)
    out = np.clip(base + noise * (~enc.is_cat), 0.0, 1.0)
    flip = (rng.random(base.shape) < 0.15) & enc.is_cat
    return np.where(flip, rng.random(base.shape), out)


def _neighbours(enc: Encoder, u: np.ndarray) -> np.ndarray:
    """One-step moves from point ``u``: each other option of a categorical, the next and the
    previous value of an int."""
    moves = []
    for i in enc.cat_idx:
        k = enc.n_options[i]
        cur = min(k - 1, int(u[i] * k))
        for o in range(k):
            if o != cur:
                v = u.copy()
                v[i] = (o + 0.5) / k
                moves.append(v)
    for j, p in enc._ints:
        value = int(enc._int_values(p, np.array([u[j]]))[0])
        for nxt in (value - p.step, value + p.step):
            if p.low <= nxt <= p.high:
                v = u.copy()
                v[j] = p.to_unit(nxt)
                moves.append(v)
    return np.array(moves) if moves else np.empty((0, enc.d))


def maximize_acquisition(
    acq: Acquisition,
    enc: Encoder,
    rng: np.random.Generator,
    *,
    anchors: np.ndarray,
    taken: set[bytes],
    n_candidates: int = 1024,
    n_local: int = 256,
    n_refine: int = 5,
    local_rounds: int = 3,
    sampler: Callable[[np.random.Generator], np.ndarray] | None = None,
) -> np.ndarray:
    """The unit-cube point (``(d,)``, no nan) with the highest acquisition found.

    Args:
        acq: The acquisition.
        enc: The space's encoder.
        rng: The trial's generator.
        anchors: ``(k, d)`` unit points to search around (best observed first; nan inactive).
        taken: Feature keys of observed and running trials, never returned.
        n_candidates: Quasi-random candidates.
        n_local: Perturbation candidates around the anchors, in all.
        n_refine: Candidates refined by L-BFGS-B.
        local_rounds: Rounds of categorical / integer local moves.
        sampler: Draws a fallback point when every candidate is taken.
    """
    d = enc.d
    parts = [_sobol(n_candidates, d, rng)]
    if len(anchors):
        each = max(1, n_local // len(anchors))
        parts.append(_local_candidates(enc, anchors, rng, each, 0.05))
        parts.append(_local_candidates(enc, anchors[:1], rng, max(1, n_local // 4), 0.01))
    u = enc.snap(np.vstack(parts))
    f = enc.features(u)
    values = acq(f.cont, f.cat)
    pool_u, pool_v = [u], [values]

    # -- gradient refinement of the best distinct candidates ---------------------------------
    order = np.argsort(-values, kind="stable")
    starts: list[int] = []
    seen: set[bytes] = set()
    for i in order:
        key = _key(f, int(i))
        if key not in seen:
            seen.add(key)
            starts.append(int(i))
        if len(starts) >= n_refine:
            break
    if enc.n_cont and starts:
        refined = _refine(acq, enc, u[starts], f.cont[starts], f.cat[starts], f.active[starts])
        ru = enc.snap(refined)
        rf = enc.features(ru)
        pool_u.append(ru)
        pool_v.append(acq(rf.cont, rf.cat))

    # -- local moves for categoricals and integers -------------------------------------------
    all_u, all_v = np.vstack(pool_u), np.concatenate(pool_v)
    if len(enc.cat_idx) or enc._ints:
        best = np.argsort(-all_v, kind="stable")[:3]
        for i in best:
            cur_u, cur_v = all_u[i], all_v[i]
            for _ in range(local_rounds):
                nb = _neighbours(enc, cur_u)
                if not len(nb):
                    break
                nb = enc.snap(nb)
                nf = enc.features(nb)
                nv = acq(nf.cont, nf.cat)
                pool_u.append(nb)
                pool_v.append(nv)
                j = int(np.argmax(nv))
                if nv[j] <= cur_v:
                    break
                cur_u, cur_v = nb[j], nv[j]
        all_u, all_v = np.vstack(pool_u), np.concatenate(pool_v)

    # -- the best point no trial holds -------------------------------------------------------
    all_f = enc.features(all_u)
    for i in np.argsort(-all_v, kind="stable"):
        if np.isfinite(all_v[i]) and _key(all_f, int(i)) not in taken:
            return np.asarray(all_u[i])
    return sampler(rng) if sampler is not None else rng.random(d)


def _refine(
    acq: Acquisition,
    enc: Encoder,
    u: np.ndarray,
    cont: np.ndarray,
    cat: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """L-BFGS-B on the numeric features of ``k`` points at once (the sum of their
    acquisitions; the points do not interact). Inactive coordinates stay fixed."""
    from scipy.optimize import minimize

    k, nc = cont.shape
    free = active[:, enc.num_idx]
    lo = np.where(free, 0.0, cont).ravel()
    hi = np.where(free, 1.0, cont).ravel()

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        c = x.reshape(k, nc)
        v, g = acq.value_and_grad(c, cat)
        v = np.where(np.isfinite(v), v, -1e10)
        g = np.where(np.isfinite(g), g, 0.0) * free
        return -float(v.sum()), -g.ravel()

    res = minimize(
        fun,
        cont.ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={"maxiter": 100},
    )
    out = u.copy()
    out[:, enc.num_idx] = np.where(free, res.x.reshape(k, nc), u[:, enc.num_idx])
    return out

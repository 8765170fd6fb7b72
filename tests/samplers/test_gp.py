"""The Gaussian-process sampler: model, acquisition, optimizer and sampler behaviour."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.stats import norm

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers import GPSampler, History
from tunecraft.samplers._encoding import Encoder
from tunecraft.samplers._gp.acquisition import Acquisition, log_ei, log_h
from tunecraft.samplers._gp.fit import GPModel, fit_gp, neg_log_posterior, warp_outputs
from tunecraft.samplers._gp.sampler import refit_point


def branin(c: dict) -> float:
    x, y = c["x"], c["y"]
    b, cc = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (y - b * x**2 + cc * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


BRANIN_SPACE = {"x": tc.uniform(-5, 10), "y": tc.uniform(0, 15)}
BRANIN_MIN = 0.397887


def _mixed_data(n: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cont = rng.random((n, 3))
    cat = np.stack([rng.integers(0, 3, n), rng.integers(-1, 2, n)], axis=1)
    y = np.sin(4 * cont[:, 0]) + cont[:, 1] ** 2 + 0.5 * (cat[:, 0] == 1)
    return cont, cat, warp_outputs(y)


# -- the model ----------------------------------------------------------------------------------
def test_gp_interpolates_its_data_at_low_noise() -> None:
    cont, cat, y = _mixed_data()
    theta = fit_gp(cont, cat, y, np.random.default_rng(0), noise=1e-6)
    model = GPModel(cont, cat, y, theta)
    mu, var = model.predict(cont, cat)
    np.testing.assert_allclose(mu, y, atol=1e-3)
    assert np.all(var < 1e-3 * model.hyper.signal)
    # away from the data the model is uncertain again
    _, far = model.predict(np.full((1, 3), 0.5) + 0.49, np.array([[2, 1]]))
    assert far[0] > var.max()


def test_marginal_likelihood_gradient_matches_finite_differences() -> None:
    cont, cat, y = _mixed_data(20, seed=1)
    rng = np.random.default_rng(2)
    for _ in range(3):
        theta = np.concatenate([rng.normal(-0.5, 0.5, 3), rng.normal(0, 0.5, 2), [0.1, -3.0]])
        err = check_grad(
            lambda t: neg_log_posterior(t, cont, cat, y)[0],
            lambda t: neg_log_posterior(t, cont, cat, y)[1],
            theta,
            epsilon=1e-6,
        )
        scale = np.linalg.norm(neg_log_posterior(theta, cont, cat, y)[1])
        assert err < 1e-4 * max(1.0, scale)


def test_fitted_noise_is_larger_for_noisy_data() -> None:
    rng = np.random.default_rng(0)
    cont = rng.random((40, 1))
    empty = np.empty((40, 0), dtype=np.int64)
    clean = warp_outputs(np.sin(6 * cont[:, 0]))
    noisy = warp_outputs(np.sin(6 * cont[:, 0]) + 0.5 * rng.standard_normal(40))
    noise_clean = math.exp(fit_gp(cont, empty, clean, rng)[-1])
    noise_noisy = math.exp(fit_gp(cont, empty, noisy, rng)[-1])
    assert noise_noisy > 100 * noise_clean


def test_fantasies_extend_the_cholesky_factor_exactly() -> None:
    cont, cat, y = _mixed_data(15)
    theta = fit_gp(cont, cat, y, np.random.default_rng(0))
    model = GPModel(cont, cat, y, theta)
    new_cont, new_cat = cont[:3] * 0.5 + 0.2, cat[:3]
    extended = model.with_fantasies(new_cont, new_cat)
    mu_new, _ = model.predict(new_cont, new_cat)
    refit = GPModel(
        np.vstack([cont, new_cont]), np.vstack([cat, new_cat]), np.concatenate([y, mu_new]), theta
    )
    np.testing.assert_allclose(extended.chol, refit.chol, atol=1e-8)
    probe_c, probe_k = cont[5:9] * 0.9, cat[5:9]
    np.testing.assert_allclose(
        extended.predict(probe_c, probe_k)[1], refit.predict(probe_c, probe_k)[1], atol=1e-8
    )
    # believing the mean leaves the mean alone and shrinks the variance at the new points
    np.testing.assert_allclose(
        extended.predict(probe_c, probe_k)[0], model.predict(probe_c, probe_k)[0], atol=1e-6
    )
    assert np.all(extended.predict(new_cont, new_cat)[1] < model.predict(new_cont, new_cat)[1])


def test_warping_keeps_the_order_and_tames_outliers() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1000.0])
    w = warp_outputs(y)
    assert list(np.argsort(w)) == list(np.argsort(y))
    plain = (y - y.mean()) / y.std()
    assert w[4] - w[0] > 1.5 * (plain[4] - plain[0])  # the ordinary values are told apart
    assert np.all(warp_outputs(np.ones(4)) == 0)


# -- acquisition --------------------------------------------------------------------------------
def test_log_ei_is_finite_where_ei_underflows() -> None:
    z = np.array([-40.0, -100.0, -1e3, -1e5, -1e10])
    direct = z * norm.cdf(z) + norm.pdf(z)
    assert np.all(direct == 0.0)  # EI itself underflows
    lh = log_h(z)
    assert np.all(np.isfinite(lh))
    assert np.all(np.diff(lh) < 0)  # and stays monotone
    # h(z) = phi(z) / z^2 * (1 - 3 / z^2 + O(z^-4))
    asymptotic = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - 2 * np.log(-z) + np.log1p(-3 / z**2)
    np.testing.assert_allclose(lh, asymptotic, rtol=1e-12, atol=1e-4)
    assert np.isfinite(log_ei(np.array([50.0]), np.array([1e-3]), 0.0)).all()


def test_log_ei_matches_log_of_ei_where_ei_is_representable() -> None:
    z = np.linspace(-8, 8, 161)
    ei = z * norm.cdf(z) + norm.pdf(z)
    np.testing.assert_allclose(log_h(z), np.log(ei), rtol=1e-9, atol=1e-12)
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    for zz in (-12.0, -20.0, -35.0, -37.5, -1.0 - 1e-9, -1.0 + 1e-9):
        zm = mpmath.mpf(zz)
        exact = mpmath.log(zm * mpmath.ncdf(zm) + mpmath.npdf(zm))
        assert abs(float(log_h(np.array([zz]))[0]) - float(exact)) < 1e-9 * abs(float(exact))
    mu, sigma, best = np.array([0.3, -0.2]), np.array([0.5, 2.0]), 0.1
    zs = (best - mu) / sigma
    expected = np.log(sigma * (zs * norm.cdf(zs) + norm.pdf(zs)))
    np.testing.assert_allclose(log_ei(mu, sigma, best), expected, rtol=1e-10)


@pytest.mark.parametrize("kind", ["log_ei", "ucb", "pi"])
def test_acquisition_gradient_matches_finite_differences(kind: str) -> None:
    cont, cat, y = _mixed_data(20, seed=3)
    model = GPModel(cont, cat, y, fit_gp(cont, cat, y, np.random.default_rng(0)))
    acq = Acquisition(model, model.incumbent(), kind)
    x0 = np.array([0.3, 0.6, 0.2])
    k = cat[:1]

    def f(x: np.ndarray) -> float:
        return float(acq(x[None, :], k)[0])

    def g(x: np.ndarray) -> np.ndarray:
        return acq.value_and_grad(x[None, :], k)[1][0]

    assert abs(f(x0) - float(acq.value_and_grad(x0[None, :], k)[0][0])) < 1e-10
    assert check_grad(f, g, x0, epsilon=1e-7) < 1e-4 * max(1.0, np.linalg.norm(g(x0)))


# -- the sampler --------------------------------------------------------------------------------
def _regret(sampler: str, seed: int, n: int) -> float:
    study = tc.Study(BRANIN_SPACE, sampler=tc.make_sampler(sampler, seed=seed))
    study.optimize(lambda t: branin(t.config), n_trials=n)
    return study.best_value - BRANIN_MIN


def test_gp_beats_random_search_on_branin() -> None:
    seeds = range(4)
    gp = [_regret("gp", s, 30) for s in seeds]
    rnd = [_regret("random", s, 30) for s in seeds]
    assert statistics.median(gp) < 0.05
    assert statistics.median(gp) < statistics.median(rnd) / 5


def test_batch_of_asks_gives_distinct_spread_out_points() -> None:
    study = tc.Study(BRANIN_SPACE, sampler=tc.make_sampler("gp", seed=0))
    study.optimize(lambda t: branin(t.config), n_trials=12)
    batch = [study.ask() for _ in range(5)]  # what study.ask(5) does: each seen as running
    space = tc.Space(BRANIN_SPACE)
    pts = np.array([space.to_unit(t.config) for t in batch])
    dists = np.linalg.norm(pts[:, None] - pts[None, :], axis=-1)[np.triu_indices(5, 1)]
    assert dists.min() > 0.02
    # without the running trials the sampler would propose the same point every time
    sampler = study.sampler
    history = History([t for t in study.trials if t.state.value == "complete"], "minimize")
    alone = [sampler.suggest(space, history, 17) for _ in range(2)]
    assert alone[0] == alone[1]


def test_pruned_trials_are_not_proposed_again() -> None:
    # Under multi-fidelity scheduling the model sees only trials that reached its budget;
    # those paused or stopped below it are pruned in its view. Left out, they let the
    # unchanged model propose the same point again and again (seen on digits: one config
    # run ten times).
    study = tc.Study(BRANIN_SPACE, sampler=tc.make_sampler("gp", seed=0))
    study.optimize(lambda t: branin(t.config), n_trials=12)
    space = tc.Space(BRANIN_SPACE)
    pts = []
    for _ in range(5):
        trial = study.ask()
        pts.append(space.to_unit(trial.config))
        study.tell(trial, state="pruned")
    pts_a = np.array(pts)
    dists = np.linalg.norm(pts_a[:, None] - pts_a[None, :], axis=-1)[np.triu_indices(5, 1)]
    assert dists.min() > 0.02


def test_only_recent_pruned_trials_are_fantasized(monkeypatch: pytest.MonkeyPatch) -> None:
    # each fantasy adds a row to every posterior solve; a long multi-fidelity study prunes
    # hundreds of trials, so only the most recent ones (proposed since the model last
    # changed) are fantasized, and the others still count as taken
    import tunecraft.samplers._gp.sampler as gp_module

    monkeypatch.setattr(gp_module, "_MAX_PRUNED_FANTASIES", 7)
    study = tc.Study(BRANIN_SPACE, sampler=tc.make_sampler("random", seed=0))
    study.optimize(lambda t: branin(t.config), n_trials=12)
    for _ in range(20):
        study.tell(study.ask(), state="pruned")
    running = study.ask()
    fantasized: list[np.ndarray] = []
    original = GPModel.with_fantasies

    def spy(self: GPModel, cont: np.ndarray, cat: np.ndarray) -> GPModel:
        fantasized.append(cont)
        return original(self, cont, cat)

    monkeypatch.setattr(GPModel, "with_fantasies", spy)
    space = tc.Space(BRANIN_SPACE)
    history = History(study.trials, "minimize")
    GPSampler(seed=0).suggest(space, history, len(study.trials))
    assert len(fantasized) == 1 and len(fantasized[0]) == 1 + 7
    # the running trial and the seven latest pruned ones, not the thirteen before them
    pruned = [t for t in study.trials if t.state == tc.TrialState.PRUNED]
    expected = [running.config] + [t.config for t in pruned[-7:]]
    got = sorted(map(tuple, np.round(fantasized[0], 9)))
    want = sorted(map(tuple, np.round(np.array([space.to_unit(c) for c in expected]), 9)))
    assert got == want


def test_conditional_space_is_modelled() -> None:
    space = {
        "booster": tc.choice(["linear", "tree"]),
        "alpha": tc.loguniform(1e-4, 1.0).when(booster="linear"),
        "depth": tc.integer(1, 10).when(booster="tree"),
        "eta": tc.uniform(0.0, 1.0).when(booster="tree"),
    }

    def objective(t: tc.Trial) -> float:
        c = t.config
        if c["booster"] == "linear":
            return 1.0 + abs(math.log10(c["alpha"]) + 2)
        return (c["depth"] - 6) ** 2 / 10 + (c["eta"] - 0.3) ** 2

    for seed in range(2):
        study = tc.Study(space, sampler=tc.make_sampler("gp", seed=seed))
        study.optimize(objective, n_trials=25)
        later = [t.config["booster"] for t in study.trials[10:]]
        assert later.count("tree") >= 0.7 * len(later)
        assert study.best_value < 0.2
        assert all(tc.Space(space).contains(t.config) for t in study.trials)


def test_categorical_and_integer_space() -> None:
    space = {
        "k": tc.choice(["a", "b", "c", "d", "e"]),
        "n": tc.integer(1, 30),
        "x": tc.uniform(0, 1),
    }
    score = {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.7, "e": 0.9}

    def objective(t: tc.Trial) -> float:
        c = t.config
        return score[c["k"]] + ((c["n"] - 17) / 10) ** 2 + (c["x"] - 0.5) ** 2

    study = tc.Study(space, sampler=tc.make_sampler("gp", seed=0))
    study.optimize(objective, n_trials=30)
    assert study.best_config["k"] == "c"
    assert abs(study.best_config["n"] - 17) <= 2


@pytest.mark.parametrize("acquisition", ["ucb", "pi"])
def test_other_acquisitions_optimize(acquisition: str) -> None:
    sampler = GPSampler(
        seed=0,
        acquisition=acquisition,
        acquisition_kwargs={"beta": 1.0} if acquisition == "ucb" else None,
    )
    study = tc.Study(BRANIN_SPACE, sampler=sampler)
    study.optimize(lambda t: branin(t.config), n_trials=25)
    assert study.best_value - BRANIN_MIN < 0.5


def test_options_are_validated_and_not_mutated() -> None:
    options = {
        "acquisition": "ucb",
        "acquisition_kwargs": {"beta": 3.0},
        "optimizer_kwargs": {"n_candidates": 128},
    }
    sampler = tc.make_sampler("gp", seed=0, options=options)
    assert isinstance(sampler, GPSampler)
    assert options == {
        "acquisition": "ucb",
        "acquisition_kwargs": {"beta": 3.0},
        "optimizer_kwargs": {"n_candidates": 128},
    }
    with pytest.raises(InvalidParameterError, match="'acquisition' parameter of GPSampler"):
        GPSampler(acquisition="ei")
    with pytest.raises(InvalidParameterError, match="'optimizer_kwargs'"):
        GPSampler(optimizer_kwargs={"bogus": 1})
    with pytest.raises(InvalidParameterError, match="'n_startup_trials'"):
        GPSampler(n_startup_trials=0)
    with pytest.raises(InvalidParameterError, match="'acquisition_kwargs'"):
        Acquisition(GPModel(*_mixed_data(5), np.zeros(7)), 0.0, "ucb", {"xi": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"optimizer_kwargs": {"n_candidates": "many"}}, TypeError, r"n_candidates'\].*an int"),
        ({"optimizer_kwargs": {"n_candidates": 0}}, ValueError, r"n_candidates'\].*>= 1, got 0"),
        ({"optimizer_kwargs": {"n_refine": -1}}, ValueError, r"n_refine'\].*>= 0, got -1"),
        ({"fit_kwargs": {"n_restarts": "x"}}, TypeError, r"n_restarts'\].*an int"),
        ({"fit_kwargs": {"max_iter": 0}}, ValueError, r"max_iter'\].*>= 1, got 0"),
        ({"fit_kwargs": {"noise": -1.0}}, ValueError, r"noise'\].*>= 0.0, got -1.0"),
    ],
)
def test_option_values_are_checked_at_construction(
    kwargs: dict, error: type[Exception], pattern: str
) -> None:
    """A bad value failed only at the first model-based suggestion, deep inside the optimizer
    (``'str' object cannot be interpreted as an integer``), or was silently replaced."""
    with pytest.raises(error, match=r"The '(optimizer|fit)_kwargs\['.*" + pattern):
        GPSampler(**kwargs)
    assert GPSampler(fit_kwargs={"n_restarts": None, "noise": None}).fit_kwargs["noise"] is None


def test_encoder_matches_the_space_transform() -> None:
    from tunecraft.testing.samplers import conformance_space

    space = conformance_space()
    enc = Encoder(space)
    rng = np.random.default_rng(0)
    u = rng.random((200, len(space)))
    active = enc.active(u)
    snapped = enc.snap(u)
    for i in range(len(u)):
        config = space.from_unit(u[i])
        assert list(active[i]) == list(space.active_mask(config))
        exact = space.to_unit(config)
        np.testing.assert_allclose(snapped[i][active[i]], exact[active[i]], atol=1e-12)
    f = enc.features(snapped)
    assert f.cont.shape == (200, len(enc.num_idx))
    assert ((f.cat[:, : len(enc.cat_idx)] == -1) == ~active[:, enc.cat_idx]).all()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"acquisition_kwargs": {"zzz": 1}}, InvalidParameterError, r"takes \['xi'\]"),
        (
            {"acquisition": "ucb", "acquisition_kwargs": {"beta": -1}},
            InvalidParameterError,
            "beta",
        ),
        ({"acquisition_kwargs": {"xi": "big"}}, InvalidParameterError, "xi"),
        ({"acquisition_kwargs": [("xi", 0.1)]}, TypeError, "must be a dict"),
        ({"acquisition": "ei"}, InvalidParameterError, "'acquisition' parameter"),
    ],
)
def test_bad_acquisition_options_fail_at_construction(
    options: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tc.make_sampler("gp", seed=0, options=options)


# -- hyperparameter reuse ------------------------------------------------------------------------
def test_refit_points_depend_on_n_only_and_grow_geometrically() -> None:
    points = [refit_point(n, 0.1) for n in range(1, 400)]
    assert points[:29] == list(range(1, 30))  # refitted at every trial below 30
    assert all(p <= n for n, p in zip(range(1, 400), points, strict=True))
    assert points == sorted(points)
    later = sorted(set(points[29:]))
    ratios = [b / a for a, b in itertools.pairwise(later)]
    assert min(ratios) > 1.05 and max(ratios) < 1.15
    assert all(refit_point(n, 0.0) == n for n in (5, 30, 77, 301))


_FRESH_CHILD = """
import json, sys
import tunecraft as tc
from tunecraft.samplers import GPSampler, History
configs, values, seed, number = json.loads(sys.argv[1])
space = tc.Space({"x": tc.uniform(-5, 10), "y": tc.uniform(0, 15)})
study = tc.Study(space, sampler=tc.make_sampler("random", seed=0))
for c, v in zip(configs, values):
    study.enqueue(c)
    study.tell(study.ask(), v)
history = History(study.trials, "minimize")
print(json.dumps(GPSampler(seed=seed).suggest(space, history, number)))
"""


def test_reused_hyperparameters_match_a_fresh_process() -> None:
    """From 30 trials on, a suggestion reuses hyperparameters fitted to a prefix of the
    history; a process that never saw the earlier suggestions must propose the same point."""
    import json
    import subprocess
    import sys

    study = tc.Study(BRANIN_SPACE, sampler=tc.make_sampler("gp", seed=3))
    study.optimize(lambda t: branin(t.config), n_trials=35)  # fills the cache at 30 and 33
    trials = [t for t in study.trials if t.state.value == "complete"]
    space = tc.Space(BRANIN_SPACE)
    here = study.sampler.suggest(space, History(trials, "minimize"), 35)
    payload = json.dumps([[t.config for t in trials], [t.value for t in trials], 3, 35])
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_CHILD, payload],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout) == json.loads(json.dumps(here))


def test_refit_growth_is_validated() -> None:
    with pytest.raises(InvalidParameterError, match="refit_growth"):
        GPSampler(fit_kwargs={"refit_growth": 2.0})
    with pytest.raises(InvalidParameterError, match="refit_growth"):
        GPSampler(fit_kwargs={"refit_growth": "often"})
    assert GPSampler(fit_kwargs={"refit_growth": 0}).fit_kwargs == {"refit_growth": 0}


def test_fast_yeo_johnson_matches_scipy() -> None:
    from scipy import stats

    from tunecraft.samplers._gp.fit import _yeojohnson, _yeojohnson_lambda

    rng = np.random.default_rng(0)
    for y in (rng.standard_normal(40), rng.lognormal(0, 1.0, 60), -rng.gamma(2.0, 1.0, 30)):
        z = (y - y.mean()) / y.std()
        for lam in (-1.5, 0.0, 0.7, 2.0):
            np.testing.assert_allclose(_yeojohnson(z, lam), stats.yeojohnson(z, lmbda=lam))
        lam = _yeojohnson_lambda(z)
        best = float(np.clip(stats.yeojohnson_normmax(z, brack=(-2, 2)), -2, 2))
        # as likely as scipy's optimum, within the grid's resolution
        assert stats.yeojohnson_llf(lam, z) >= stats.yeojohnson_llf(best, z) - 1e-2


def test_a_proposed_point_that_is_never_observed_is_not_proposed_again() -> None:
    # Under multi-fidelity scheduling a trial stopped below the model's level is never
    # observed there. When the model's best mean lies between the observed points, the
    # fantasy at that mean must also lower the incumbent; else the point keeps its expected
    # improvement and comes back, a hair apart, run after run.
    space = {"x": tc.uniform(0.0, 1.0)}
    study = tc.Study(space, sampler=tc.make_sampler("random", seed=0))
    for x in (0.05, 0.15, 0.25, 0.75, 0.85, 0.95, 0.1, 0.9):
        study.enqueue({"x": x})
    study.optimize(lambda t: (t.config["x"] - 0.5) ** 2, n_trials=8)
    sampler = GPSampler(seed=0)
    proposed = []
    for _ in range(6):
        config = sampler.suggest(
            tc.Space(space), History(study.trials, "minimize"), len(study.trials)
        )
        proposed.append(config["x"])
        study.enqueue(config)
        trial = study.ask()
        study.tell(trial, state="pruned")
    assert abs(proposed[0] - 0.5) < 0.1  # the model's best guess first
    gaps = [abs(a - b) for i, a in enumerate(proposed) for b in proposed[:i]]
    assert min(gaps) > 1e-3, proposed


_BLAS_CHILD = """
import json, sys
import tunecraft as tc  # noqa: F401  (scipy.linalg not imported yet)
from tunecraft.samplers._gp.sampler import _BLAS, _one_blas_thread
from threadpoolctl import ThreadpoolController
assert "scipy.linalg" not in sys.modules
with _one_blas_thread():
    import scipy.linalg  # noqa: F401  (what the GP's solves use)
    limited = sorted(lib.filepath for lib in _BLAS[0].select(user_api="blas").lib_controllers)
blas = ThreadpoolController().select(user_api="blas")
loaded = sorted(lib.filepath for lib in blas.lib_controllers)
print(json.dumps([limited, loaded]))
"""


def test_blas_limit_covers_the_blas_that_scipy_linalg_loads() -> None:
    """The single-thread limit must reach scipy's own OpenBLAS even when scipy.linalg is first
    imported by the GP (threaded, a suggestion was 10x slower on a busy machine)."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _BLAS_CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    limited, loaded = json.loads(out.stdout)
    assert set(loaded) <= set(limited)


@pytest.mark.parametrize("scale", [1e200, 1e-300, -1e307])
def test_warp_outputs_stays_finite_at_extreme_scales(scale: float) -> None:
    """Values whose squares overflow (a diverged loss of 1e200) or underflow must not turn the
    warped outputs into nan (the GP then proposed random points, with RuntimeWarnings)."""
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) * scale
    with np.errstate(all="raise"):
        w = warp_outputs(y)
    assert np.all(np.isfinite(w))
    order = np.argsort(y, kind="stable")
    assert np.all(np.diff(w[order]) > 0)  # the map keeps the order
    base = warp_outputs(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) * math.copysign(1, scale))
    np.testing.assert_allclose(w, base, atol=1e-9)


def test_one_diverged_trial_does_not_blind_the_gp() -> None:
    space = tc.Space({"x": tc.uniform(-2, 2)})
    rng = np.random.default_rng(0)
    xs = [*rng.uniform(-2, 2, 8), -1.9]
    trials = [
        tc.FrozenTrial(
            number=i,
            state=tc.TrialState.COMPLETE,
            config={"x": float(x)},
            value=1e200 if i == 8 else (x - 1) ** 2,
            trial_id=i,
        )
        for i, x in enumerate(xs)
    ]
    sampler = GPSampler(seed=0, n_startup_trials=2)
    with np.errstate(all="raise"):
        model, _ = sampler.fit(space, History(trials, "minimize"), 9)
    assert np.all(np.isfinite(model.y)) and np.all(np.isfinite(model.alpha))

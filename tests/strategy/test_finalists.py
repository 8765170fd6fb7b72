"""Final-validation statistics: intervals over seeds, learning-curve flags, proxy checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tunecraft.strategy import ProxyWarning, check_curve, summarize
from tunecraft.strategy._validate import proxy_check


def test_summarize_mean_std_and_t_interval() -> None:
    values = [0.10, 0.12, 0.11, 0.13]
    mean, std, (lo, hi) = summarize(values)
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
    from scipy import stats

    half = stats.t.ppf(0.975, 3) * std / 2
    assert (lo, hi) == pytest.approx((mean - half, mean + half))
    wider = summarize(values, confidence=0.99)[2]
    assert wider[0] < lo and wider[1] > hi


def test_summarize_one_seed_has_no_interval() -> None:
    mean, std, ci = summarize([0.3])
    assert mean == 0.3 and math.isnan(std) and all(math.isnan(c) for c in ci)
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match="confidence"):
        summarize([1.0, 2.0], confidence=1.5)


def test_check_curve_overfitting_needs_training_to_improve() -> None:
    val = {e: (e - 4) ** 2 / 10 + 0.2 for e in range(1, 11)}  # best at epoch 4, then worse
    improving = {e: 1.0 / e for e in range(1, 11)}
    assert check_curve(val, improving) == (True, False)
    flat_train = {e: 0.5 + 0.01 * e for e in range(1, 11)}  # training got worse too
    assert check_curve(val, flat_train) == (False, False)
    assert check_curve(val) == (True, False)  # without a training curve: the validation alone


def test_check_curve_undertrained_and_converged() -> None:
    falling = {e: 1.0 - 0.08 * e for e in range(1, 11)}
    assert check_curve(falling) == (False, True)
    converged = {e: 1.0 / e for e in range(1, 21)}  # flat over its last quarter
    assert check_curve(converged) == (False, False)
    assert check_curve({1: 1.0, 2: 0.5, 3: 0.4}) == (False, False)  # too short to tell


def test_check_curve_maximize() -> None:
    accuracy = {e: 1.0 - (e - 4) ** 2 / 50 for e in range(1, 11)}  # peaks at 4
    assert check_curve(accuracy, direction="maximize") == (True, False)
    rising = {e: 0.5 + 0.04 * e for e in range(1, 11)}
    assert check_curve(rising, direction="maximize") == (False, True)


def test_proxy_check_trusts_agreeing_ranks_and_warns_otherwise() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = proxy_check("3 epochs", [(1, 10), (2, 20), (3, 25), (4, 40)])
    assert good.correlation == pytest.approx(1.0) and good.trusted and good.n == 4
    with pytest.warns(ProxyWarning, match="'1 epochs'"):
        bad = proxy_check("1 epochs", [(1, 40), (2, 30), (3, 20), (4, 10)])
    assert bad.correlation == pytest.approx(-1.0) and not bad.trusted
    few = proxy_check("1 epochs", [(1, 2), (2, 1)])
    assert math.isnan(few.correlation) and few.trusted and few.n == 2

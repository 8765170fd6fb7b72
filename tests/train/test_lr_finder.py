"""The learning-rate finder: suggestions on real data, restoring state, the plot."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from sklearn.datasets import load_digits  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tunecraft.exceptions import InvalidParameterError, MissingDependencyError  # noqa: E402
from tunecraft.train import LRFinderResult, fit, lr_find, suggest_lrs  # noqa: E402

from .conftest import make_data, make_model  # noqa: E402


def _digits() -> tuple[DataLoader, DataLoader]:
    x, y = load_digits(return_X_y=True)
    xt = torch.tensor(x / 16.0, dtype=torch.float32)
    yt = torch.tensor(y)
    perm = torch.randperm(len(xt), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    train = DataLoader(
        TensorDataset(xt[tr], yt[tr]),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
    )
    return train, DataLoader(TensorDataset(xt[va], yt[va]), batch_size=256)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_suggested_lr_beats_ten_times_and_a_tenth_on_digits() -> None:
    train, _ = _digits()
    result = lr_find(
        _mlp(), train, loss_fn=F.cross_entropy, optimizer="adam", start_lr=1e-5, end_lr=10.0
    )
    lr = result.suggested_lr
    assert 1e-4 < lr < 1.0

    def val_loss(rate: float) -> float:
        train, val = _digits()
        out = fit(
            _mlp(),
            train,
            val,
            loss_fn=F.cross_entropy,
            optimizer="adam",
            lr=rate,
            epochs=3,
            device="cpu",
        )
        return out.last["val_loss"]

    at = val_loss(lr)
    assert at < val_loss(10 * lr)
    assert at < val_loss(lr / 10)


def test_model_optimizer_and_rng_are_restored() -> None:
    train, _ = make_data()
    model = make_model(dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, train, loss_fn=F.cross_entropy, optimizer=opt, epochs=1, device="cpu")
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    steps_before = [s["step"].clone() for s in opt_state["state"].values()]
    rng = torch.get_rng_state()
    result = lr_find(model, train, loss_fn=F.cross_entropy, optimizer=opt, num_steps=30)
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses) <= 30
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key])
    assert not all(torch.equal(before[k], trained[k]) for k in before)
    after = opt.state_dict()
    assert [s["step"] for s in after["state"].values()] == steps_before
    assert after["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert torch.equal(torch.get_rng_state(), rng)


def test_divergence_stops_the_test_early() -> None:
    train, _ = make_data()
    result = lr_find(
        make_model(),
        train,
        loss_fn=F.cross_entropy,
        optimizer="sgd",
        start_lr=1e-3,
        end_lr=1e6,
        num_steps=100,
    )
    assert result.diverged and len(result.lrs) < 100


def test_suggestions_use_the_slope_against_log_lr() -> None:
    """A clean curve: the loss falls fastest around 1e-3 (per decade) and diverges near 1."""
    lrs = np.logspace(-6, 0, 121)
    log_lr = np.log10(lrs)
    losses = 2.0 / (1.0 + np.exp(2.5 * (log_lr + 3.0))) + 0.1 + np.exp(4.0 * (log_lr + 0.5))
    s = suggest_lrs(lrs, losses, skip_start=10)
    assert 10**-3.2 < s["steepest"] < 10**-2.8  # a linear-lr gradient would pick ~1e-6
    i_min = int(np.argmin(losses))
    assert lrs[10] < s["valley"] < lrs[i_min]
    assert s["divergence"] == pytest.approx(lrs[i_min] / 10)


def test_plot_needs_matplotlib_or_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    result = LRFinderResult(
        lrs=[1e-3, 1e-2, 1e-1],
        losses=[1.0, 0.5, 2.0],
        raw_losses=[1.0, 0.5, 2.0],
        suggestions={"steepest": 1e-2, "valley": 1e-2, "divergence": 1e-3},
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"tunecraft\[plot\]"):
            result.plot()
        return
    ax = result.plot()
    assert ax.get_xscale() == "log" and len(ax.lines) == 4


def test_bad_arguments() -> None:
    train, _ = make_data()
    with pytest.raises(InvalidParameterError, match="'end_lr' parameter of lr_find"):
        lr_find(make_model(), train, loss_fn=F.cross_entropy, start_lr=1.0, end_lr=0.1)
    with pytest.raises(InvalidParameterError, match="'smoothing' parameter of lr_find"):
        lr_find(make_model(), train, loss_fn=F.cross_entropy, smoothing=2.0)
    with pytest.raises(InvalidParameterError, match="'rule' parameter"):
        LRFinderResult([1.0], [1.0], [1.0], {"valley": 1.0}).suggest("best")

"""Checkpoint averaging (with BatchNorm recomputed), the CheckpointAverage callback, ensembles."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import tunecraft.train  # noqa: E402
from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune._averaging import (  # noqa: E402
    EMA,
    SWA,
    CheckpointAverage,
    Ensemble,
    average_checkpoints,
    average_weights,
)
from tunecraft.train import ModelCheckpoint, fit, save_checkpoint  # noqa: E402


def bn_model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_swa_and_ema_are_the_train_callbacks() -> None:
    assert SWA is tunecraft.train.SWA
    assert EMA.__module__ == "tunecraft.train._callbacks"


def test_average_weights_is_the_elementwise_mean_and_keeps_integer_buffers() -> None:
    models = [bn_model(s) for s in range(3)]
    for i, m in enumerate(models):
        m[1].num_batches_tracked.fill_(10 * (i + 1))
    avg = average_weights(models)
    for name, _ in models[0].named_parameters():
        expected = sum(dict(m.named_parameters())[name] for m in models) / 3
        torch.testing.assert_close(avg[name], expected.detach())
    assert int(avg["1.num_batches_tracked"]) == 30
    weighted = average_weights(models[:2], weights=[3.0, 1.0])
    torch.testing.assert_close(
        weighted["0.weight"], (0.75 * models[0][0].weight + 0.25 * models[1][0].weight).detach()
    )


def test_average_checkpoints_from_files_takes_the_last_k(tmp_path: Path) -> None:
    models = [nn.Linear(2, 2) for _ in range(4)]
    paths = []
    for i, m in enumerate(models):
        # a ModelCheckpoint-style file (weights under "model") and a plain state dict
        path = tmp_path / f"c{i}.pt"
        if i % 2:
            save_checkpoint(path, {"model": m.state_dict(), "epoch": i})
        else:
            torch.save(m.state_dict(), path)
        paths.append(path)
    target = average_checkpoints(nn.Linear(2, 2), paths, last_k=2)
    torch.testing.assert_close(target.weight, (models[2].weight + models[3].weight).detach() / 2)


def test_batchnorm_statistics_are_recomputed_on_the_data() -> None:
    g = torch.Generator().manual_seed(0)
    x = 3.0 + 2.0 * torch.randn(256, 4, generator=g)
    data = DataLoader(TensorDataset(x, torch.zeros(256, dtype=torch.long)), batch_size=64)
    models = [bn_model(s) for s in range(3)]
    target = average_checkpoints(bn_model(9), models, bn_data=data)
    # running statistics: update_bn's cumulative mean of the four batches' statistics of the
    # averaged network's first layer
    with torch.no_grad():
        hidden = target[0](x).reshape(4, 64, 8)
    torch.testing.assert_close(target[1].running_mean, hidden.mean(1).mean(0))
    torch.testing.assert_close(target[1].running_var, hidden.var(1, unbiased=True).mean(0))
    assert not torch.allclose(target[1].running_mean, average_weights(models)["1.running_mean"])


def test_batchnorm_without_data_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="tunecraft"):
        average_checkpoints(bn_model(0), [bn_model(1), bn_model(2)])
    assert "no 'bn_data'" in caplog.text


def test_checkpoint_average_callback_averages_the_last_epochs() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)
    snapshots = []

    class Keep(CheckpointAverage):
        def on_epoch_end(self, state):  # type: ignore[no-untyped-def]
            super().on_epoch_end(state)
            snapshots.append(copy.deepcopy(state.model.state_dict()))

    model = bn_model(0)
    fit(model, data, loss_fn=F.cross_entropy, lr=0.05, epochs=5, callbacks=[Keep(3)],
        device="cpu")  # fmt: skip
    expected = average_weights(snapshots[-3:])
    torch.testing.assert_close(model[0].weight.detach(), expected["0.weight"])
    torch.testing.assert_close(model[3].bias.detach(), expected["3.bias"])


def test_checkpoint_average_survives_a_resume(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)

    def run(epochs: int, resume: bool) -> nn.Module:
        model = bn_model(0)
        fit(
            model, data, data, loss_fn=F.cross_entropy, lr=0.05, epochs=epochs,
            callbacks=[CheckpointAverage(3), ModelCheckpoint(tmp_path)], device="cpu",
            resume_from=tmp_path / "last.pt" if resume else None,
        )  # fmt: skip
        return model

    torch.manual_seed(0)
    whole = run(5, False)
    torch.manual_seed(0)
    run(3, False)
    resumed = run(5, True)
    torch.testing.assert_close(resumed.state_dict(), whole.state_dict())


def test_average_weights_matches_entries_by_name_not_order() -> None:
    """A state dict rebuilt in another order holds the same entries: it averages."""
    a, b = bn_model(0), bn_model(1)
    reordered = dict(reversed(list(b.state_dict().items())))
    avg = average_weights([a.state_dict(), reordered])
    assert list(avg) == list(a.state_dict())
    torch.testing.assert_close(avg["0.weight"], ((a[0].weight + b[0].weight) / 2).detach())


def test_bad_averaging_inputs() -> None:
    with pytest.raises(InvalidParameterError, match="'sources' parameter of average_weights"):
        average_weights([])
    with pytest.raises(InvalidParameterError, match="other entries"):
        average_weights([nn.Linear(2, 2), nn.Linear(2, 2, bias=False)])
    with pytest.raises(InvalidParameterError, match="different shapes"):
        average_weights([nn.Linear(2, 2), nn.Linear(2, 3)])
    with pytest.raises(InvalidParameterError, match="'weights' parameter of average_weights"):
        average_weights([nn.Linear(2, 2)], weights=[-1.0])
    with pytest.raises(TypeError, match="Each source of average_weights"):
        average_weights([3])  # type: ignore[list-item]
    with pytest.raises(InvalidParameterError, match="'last_k' parameter of CheckpointAverage"):
        CheckpointAverage(0)


@pytest.mark.parametrize("combine", ["probs", "logits"])
def test_vectorized_ensemble_equals_the_loop(combine: str) -> None:
    members = [bn_model(s) for s in range(4)]
    for m in members:  # give BatchNorm non-trivial running statistics
        m.train()
        m(torch.randn(32, 4) * 2 + 1)
    fast = Ensemble(members, combine=combine).eval()
    slow = Ensemble(members, combine=combine, vectorize=False).eval()
    assert fast.vectorized and not slow.vectorized
    x = torch.randn(10, 4)
    torch.testing.assert_close(fast(x), slow(x))
    stacked = torch.stack([m(x) for m in members])
    if combine == "logits":
        torch.testing.assert_close(fast(x), stacked.mean(0))
    else:
        torch.testing.assert_close(fast(x).exp(), stacked.softmax(-1).mean(0))


def test_vectorized_ensemble_sees_updated_weights_and_passes_gradients() -> None:
    members = [nn.Linear(3, 2) for _ in range(3)]
    ensemble = Ensemble(members, combine="logits")
    x = torch.randn(4, 3)
    with torch.no_grad():
        members[0].weight.add_(1.0)
    torch.testing.assert_close(ensemble(x), torch.stack([m(x) for m in members]).mean(0))
    ensemble(x).sum().backward()
    assert all(m.weight.grad is not None for m in members)
    assert not any(k.startswith("_base") for k in ensemble.state_dict())


def test_mixed_architectures_use_the_loop() -> None:
    members = [nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))]
    ensemble = Ensemble(members)
    assert not ensemble.vectorized
    assert ensemble(torch.randn(5, 3)).shape == (5, 2)
    with pytest.raises(InvalidParameterError, match="'vectorize' parameter of Ensemble is True"):
        Ensemble(members, vectorize=True)
    with pytest.raises(InvalidParameterError, match="'combine' parameter of Ensemble"):
        Ensemble(members, combine="vote")
    with pytest.raises(InvalidParameterError, match="'models' parameter of Ensemble"):
        Ensemble([])

"""Checkpoints: exact resume in a new process, weights_only loading, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812

from tunecraft.train import (  # noqa: E402
    CheckpointError,
    EarlyStopping,
    ModelCheckpoint,
    fit,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)

from .conftest import make_data, make_model  # noqa: E402

SCRIPT = Path(__file__).with_name("_resume_run.py")


def _run(mode: str, out: Path) -> None:
    subprocess.run([sys.executable, str(SCRIPT), mode, str(out)], check=True, timeout=120)


@pytest.mark.slow
def test_resume_in_a_new_process_gives_the_same_weights(tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    _run("full", full)
    _run("half", part)
    assert load_checkpoint(part / "ckpt" / "last.pt")["epoch"] == 2
    _run("resume", part)
    a = torch.load(full / "full.pt", weights_only=True)
    b = torch.load(part / "resume.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _train_with_checkpoint(tmp_path: Path, epochs: int = 2) -> Path:
    train, val = make_data()
    fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        epochs=epochs,
        schedule="linear",
        callbacks=[EarlyStopping(), ModelCheckpoint(tmp_path)],
        device="cpu",
    )
    return tmp_path / "last.pt"


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path: Path) -> None:
    path = _train_with_checkpoint(tmp_path)
    ckpt = load_checkpoint(path)  # torch.load(weights_only=True) inside
    assert set(ckpt) >= {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "rng",
        "epoch",
        "step",
        "callbacks",
    }
    assert ckpt["epoch"] == 1 and ckpt["step"] == 12
    assert set(ckpt["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert (tmp_path / "best.pt").is_file()
    torch.load(path, weights_only=True)


def test_resume_continues_from_the_saved_epoch(tmp_path: Path) -> None:
    path = _train_with_checkpoint(tmp_path)
    train, val = make_data()
    result = fit(
        make_model(),
        train,
        val,
        loss_fn=F.cross_entropy,
        epochs=3,
        schedule="linear",
        callbacks=[EarlyStopping(), ModelCheckpoint(tmp_path)],
        device="cpu",
        resume_from=path,
    )
    assert result.epochs == 3 and [h["epoch"] for h in result.history] == [0, 1, 2]


def test_corrupted_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = _train_with_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(1)}, other)
    with pytest.raises(CheckpointError, match="not a tunecraft training checkpoint"):
        load_checkpoint(other)


def test_garbage_bytes_read_as_corrupted_not_as_refused_objects(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"corrupted or truncated.*does not unpickle"):
        load_checkpoint(path)


def test_resume_with_another_optimizer_is_a_clear_error(tmp_path: Path) -> None:
    path = _train_with_checkpoint(tmp_path)  # AdamW, the default
    train, val = make_data()
    for name in ("sgd", "adam"):  # SGD failed mid-epoch (KeyError 'momentum'); Adam ran on
        with pytest.raises(CheckpointError, match="written with optimizer AdamW"):
            fit(
                make_model(),
                train,
                val,
                loss_fn=F.cross_entropy,
                epochs=3,
                optimizer=name,
                schedule="linear",
                callbacks=[EarlyStopping(), ModelCheckpoint(tmp_path)],
                device="cpu",
                resume_from=path,
            )


def test_resume_restores_the_loaders_own_generator(tmp_path: Path) -> None:
    # DataLoader(generator=g) shuffles with g, which the global generators do not drive: a
    # resumed run replayed the first epoch's order and ended 7e-3 away from the straight run.
    def run(epochs: int, resume: Path | None = None) -> torch.nn.Module:
        train, val = make_data()  # a fresh loader, its generator at its seed
        model = make_model()
        fit(
            model,
            train,
            val,
            loss_fn=F.cross_entropy,
            epochs=epochs,
            schedule="linear",
            schedule_options={"total_steps": 18},
            callbacks=[ModelCheckpoint(tmp_path)],
            device="cpu",
            resume_from=resume,
        )
        return model

    straight = run(3)
    run(1)
    resumed = run(3, tmp_path / "last.pt")
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "tunecraft.train/1", "obj": make_data}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)


def test_mismatched_model_or_callbacks_give_clear_errors(tmp_path: Path) -> None:
    path = _train_with_checkpoint(tmp_path)
    train, val = make_data()
    bigger = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    with pytest.raises(CheckpointError, match=r"does not fit this model:.*shape mismatches"):
        fit(
            bigger,
            train,
            val,
            loss_fn=F.cross_entropy,
            epochs=3,
            schedule="linear",
            callbacks=[EarlyStopping(), ModelCheckpoint(tmp_path)],
            device="cpu",
            resume_from=path,
        )
    with pytest.raises(CheckpointError, match="same callbacks"):
        fit(
            make_model(),
            train,
            val,
            loss_fn=F.cross_entropy,
            epochs=3,
            schedule="linear",
            callbacks=[ModelCheckpoint(tmp_path)],
            device="cpu",
            resume_from=path,
        )
    with pytest.raises(CheckpointError, match="same schedule"):
        fit(
            make_model(),
            train,
            val,
            loss_fn=F.cross_entropy,
            epochs=3,
            callbacks=[EarlyStopping(), ModelCheckpoint(tmp_path)],
            device="cpu",
            resume_from=path,
        )


def test_rng_state_round_trips_through_weights_only(tmp_path: Path) -> None:
    import random

    import numpy as np

    seed_everything(3)
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": get_rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(load_checkpoint(path)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(1))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_seed_everything_validates_and_is_deterministic() -> None:
    seed_everything(5, deterministic=True)
    try:
        assert torch.are_deterministic_algorithms_enabled()
        a = torch.randn(3)
        seed_everything(5)
        assert torch.equal(a, torch.randn(3))
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    with pytest.raises(ValueError, match="'seed' parameter of seed_everything"):
        seed_everything(-1)

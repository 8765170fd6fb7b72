"""Transfer: prior mapping across spaces that differ, defaults, LR scaling and range, proxies."""

from __future__ import annotations

import math
import warnings

import pytest

import tunecraft as tc
from tunecraft.strategy._transfer import (
    PriorConfig,
    ProxyWarning,
    apply_lr_scaling,
    canonical_name,
    check_proxy,
    default_config,
    defaults_table,
    load_prior,
    map_config,
    narrow_lr,
    rank_correlation,
)
from tunecraft.trial import FrozenTrial, TrialState

NEW = tc.Space(
    {
        "optimizer": tc.choice(["sgd", "adamw"]),
        "lr": tc.loguniform(1e-4, 1e-1),
        "momentum": tc.uniform(0.5, 0.99).when(optimizer="sgd"),
        "batch_size": tc.choice([32, 64, 128]),
        "layers": tc.integer(1, 4),
        "dropout": tc.uniform(0.0, 0.5),
    }
)


# -- map_config ---------------------------------------------------------------------------------
def test_map_config_across_spaces_that_differ():
    old = {
        "optimizer": "SGD",  # other case
        "learning_rate": 0.5,  # alias, above the range
        "momentum": 0.9,
        "batch_size": 100,  # not a choice: nearest on a log scale
        "layers": 7,  # clipped
        "activation": "relu",  # unknown key
    }
    cfg, notes = map_config(old, NEW)
    assert cfg == {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "batch_size": 128,
        "layers": 4,
        "dropout": 0.25,
    }
    assert NEW.contains(cfg)
    text = "\n".join(notes)
    assert "renamed 'learning_rate' to 'lr'" in text
    assert "'lr': clipped 0.5 to 0.1, the upper bound" in text
    assert "'layers': clipped 7 to 4, the upper bound" in text
    assert "'batch_size': replaced 100 by the nearest choice 128" in text
    assert "filled missing 'dropout' with 0.25 (the centre of its range)" in text
    assert "dropped 'activation': not in the space" in text
    assert "'optimizer': matched 'SGD' to 'sgd'" in text


def test_map_config_conditions_defaults_and_unknown_choices():
    old = {"optimizer": "rmsprop", "lr": 1e-3, "momentum": 0.95, "batch_size": 64}
    cfg, notes = map_config(old, NEW, defaults={"optimizer": "adamw", "dropout": 0.1})
    # the unknown optimizer becomes the default; momentum is then inactive and dropped
    assert cfg["optimizer"] == "adamw" and "momentum" not in cfg
    assert cfg["dropout"] == 0.1 and cfg["layers"] in (2, 3)
    assert NEW.contains(cfg)
    assert any(
        "'rmsprop' is not one of" in n and "replaced by 'adamw' (default)" in n for n in notes
    )
    assert "dropped 'momentum': inactive in the space for this config" in notes
    # the centre of a log range is the geometric mean
    cfg2, _ = map_config({}, tc.Space({"lr": tc.loguniform(1e-4, 1e-2)}))
    assert math.isclose(cfg2["lr"], 1e-3)


def test_map_config_rounds_ints_to_their_step():
    space = tc.Space({"units": tc.integer(16, 256, step=16)})
    cfg, notes = map_config({"units": 50.0}, space)
    assert cfg == {"units": 48} and notes == ["'units': rounded 50.0 to 48"]
    with pytest.raises(TypeError, match="'config' parameter of map_config"):
        map_config([("units", 3)], space)


# -- load_prior ---------------------------------------------------------------------------------
def _old_study(storage, name="old", direction="minimize"):
    """A study over another space: 'learning_rate' instead of 'lr', and a 'width'."""
    old_space = {"learning_rate": tc.loguniform(1e-5, 1.0), "width": tc.integer(8, 64)}
    study = tc.Study(old_space, storage=storage, name=name, direction=direction, sampler="random")
    for i, (lr, w) in enumerate([(1e-3, 16), (0.3, 32), (1e-2, 8), (5e-5, 64), (2e-3, 40)]):
        study.enqueue({"learning_rate": lr, "width": w})
        trial = study.ask()
        if i == 4:
            study.tell(trial, state="failed")
        else:
            study.tell(trial, abs(math.log10(lr) + 2.7))
    return study


def test_load_prior_from_a_named_study_in_storage(tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    study = _old_study(storage)
    done = [t for t in study.trials if t.state is TrialState.COMPLETE]
    best_first = sorted(done, key=lambda t: t.value)
    got = load_prior("old", NEW, storage=storage, k=2)
    assert len(got) == 2 and all(isinstance(p, PriorConfig) for p in got)
    assert [p.value for p in got] == [t.value for t in best_first[:2]]
    assert got[0].source == f"study 'old' trial {best_first[0].number}"
    for p, t in zip(got, best_first, strict=False):
        assert NEW.contains(p.config)
        expected_lr = min(0.1, max(1e-4, t.config["learning_rate"]))
        assert math.isclose(p.config["lr"], expected_lr)
        assert "renamed 'learning_rate' to 'lr'" in p.notes
        assert "dropped 'width': not in the space" in p.notes
    assert got[0].to_dict()["source"] == got[0].source


def test_load_prior_from_studies_trials_pairs_and_configs():
    storage = tc.storage.MemoryStorage()
    a = _old_study(storage, "a")
    b = _old_study(storage, "b", direction="maximize")
    both = load_prior([a, "b"], NEW, storage=storage, k=3, select="best")
    # best of a, best of b, second best of a
    assert [p.source.split(" trial")[0] for p in both] == ["study 'a'", "study 'b'", "study 'a'"]
    assert both[1].value == max(t.value for t in b.trials if t.value is not None)

    trials = [
        FrozenTrial(0, TrialState.COMPLETE, {"lr": 0.01}, value=2.0),
        FrozenTrial(1, TrialState.COMPLETE, {"lr": 0.001}, value=1.0),
        FrozenTrial(2, TrialState.PRUNED, {"lr": 0.05}, value=0.1),
        FrozenTrial(3, TrialState.COMPLETE, {"lr": 0.02}, value=math.nan),
    ]
    got = load_prior(trials, NEW, k=5)
    assert [p.config["lr"] for p in got] == [0.001, 0.01]
    got = load_prior(trials, NEW, k=5, direction="maximize")
    assert [p.config["lr"] for p in got] == [0.01, 0.001]
    pairs = load_prior([({"lr": 0.01}, 3.0), ({"lr": 0.002}, 1.0)], NEW)
    assert [p.value for p in pairs] == [1.0, 3.0]
    configs = load_prior([{"lr": 0.05}, {"lr": 0.05}, {"lr": 0.003}], NEW)
    assert [p.source for p in configs] == ["configs[0]", "configs[2]"]  # duplicate kept once
    assert configs[0].value is None
    assert load_prior([], NEW) == []


def test_load_prior_errors():
    with pytest.raises(ValueError, match="pass the 'storage'"):
        load_prior("old", NEW)
    with pytest.raises(LookupError, match="nope"):
        load_prior("nope", NEW, storage=tc.storage.MemoryStorage())
    with pytest.raises(TypeError, match="'prior' parameter of load_prior"):
        load_prior(3, NEW)
    with pytest.raises(TypeError, match="only FrozenTrial"):
        load_prior([{"lr": 0.1}, "old"], NEW)
    with pytest.raises(ValueError, match="'k' parameter of load_prior"):
        load_prior([{"lr": 0.1}], NEW, k=0)


def test_portfolio_prefers_a_compromise_to_each_study_s_own_best():
    space = tc.Space({"x": tc.uniform(0.0, 1.0)})
    # a is best on study 1 only, b on study 2 only, c second best on both
    a, b, c, d, e = ({"x": v} for v in (0.1, 0.9, 0.5, 0.3, 0.7))
    one = [(a, 0.0), (c, 1.0), (d, 5.0), (e, 8.0), (b, 9.0)]
    two = [(b, 0.0), (c, 1.0), (e, 5.0), (d, 8.0), (a, 9.0)]
    best = load_prior([one, two], space, k=2, select="best")
    assert [p.config for p in best] == [a, b]
    assert [p.source for p in best] == ["prior[0] pairs trial 0", "prior[1] pairs trial 0"]
    got = load_prior([one, two], space, k=3)  # select="portfolio", the default
    assert got[0].config == c  # the best single choice across both studies
    assert {tuple(p.config.items()) for p in got[1:]} == {(("x", 0.1),), (("x", 0.9),)}
    # normalized per study: a study's scale does not decide
    scaled = [[(cfg, 1000.0 * v) for cfg, v in one], two]
    assert [p.config for p in load_prior(scaled, space, k=3, select="portfolio")] == [
        p.config for p in got
    ]
    # with one study a portfolio is its best k
    assert [p.config for p in load_prior([one], space, k=2, select="portfolio")] == [a, c]
    # no values to score (configs only): the best-of-each order; an empty study is skipped
    assert [p.config for p in load_prior([[a, c], [], [b]], space, k=2)] == [a, b]


def test_portfolio_reads_a_study_s_direction_and_predicts_configs_it_did_not_run():
    space = tc.Space({"x": tc.uniform(0.0, 1.0), "y": tc.uniform(0.0, 1.0)})
    storage = tc.storage.MemoryStorage()
    studies = []
    for i, (centre, direction) in enumerate(
        ((0.2, "minimize"), (0.5, "maximize"), (0.8, "minimize"))
    ):
        study = tc.Study(
            space, sampler="random", seed=i, storage=storage, name=f"s{i}", direction=direction
        )
        sign = 1.0 if direction == "minimize" else -1.0
        study.optimize(lambda t, c=centre, s=sign: s * (t.config["x"] - c) ** 2, n_trials=60)
        studies.append(study)
    first = load_prior(studies, space, k=1, select="best")
    assert abs(first[0].config["x"] - 0.2) < 0.1  # study s0's own best
    # the three studies ran different configs: each one's value elsewhere is predicted
    got = load_prior(["s0", "s1", "s2"], space, storage=storage, k=1, select="portfolio")
    assert 0.35 < got[0].config["x"] < 0.65
    again = load_prior(["s0", "s1", "s2"], space, storage=storage, k=3, select="portfolio")
    assert again[0] == got[0]
    rest = sorted(p.config["x"] for p in again[1:])
    assert rest[0] < 0.35 and rest[1] > 0.65  # then one near each other study's optimum


def test_portfolio_errors():
    with pytest.raises(ValueError, match="'select' parameter of load_prior"):
        load_prior([{"lr": 0.1}], NEW, select="greedy")
    with pytest.raises(TypeError, match=r"prior\[1\] does not"):
        load_prior([[{"lr": 0.1}], ["old"]], NEW)


# -- defaults -----------------------------------------------------------------------------------
def test_default_config_known_names_only():
    cfg = default_config(NEW)
    assert cfg == {"optimizer": "adamw", "lr": 0.001, "batch_size": 32, "dropout": 0.1}
    sgd = tc.Space(
        {
            "lr": tc.loguniform(1e-4, 1.0),
            "optim": tc.choice(["SGD", "Adam"]),  # the optimizer is looked up first
            "wd": tc.loguniform(1e-6, 1e-1),
            "momentum": tc.uniform(0.0, 0.99).when(optim="SGD"),
            "clf__C": tc.loguniform(1e-3, 1e3),
            "batch_size": tc.integer(10, 500),
            "warmup_ratio": tc.uniform(0.0, 0.05),
        }
    )
    got = default_config(sgd, {"optim": "SGD"})
    assert got == {
        "lr": 0.1,
        "optim": "SGD",
        "wd": 0.0005,
        "momentum": 0.9,
        "clf__C": 1.0,
        "batch_size": 32,
        "warmup_ratio": 0.05,  # 0.1 clipped into the range
    }
    # the Adam branch: momentum inactive, Adam's weight decay clipped into the log range
    adam = default_config(sgd, {"optimizer": "Adam"})
    assert adam["optim"] == "Adam" and adam["lr"] == 0.001 and "momentum" not in adam
    assert adam["wd"] == 1e-6
    assert default_config(tc.Space({"foo": tc.uniform(0, 1)})) == {}


def test_defaults_table_and_names():
    table = defaults_table()
    assert table["params"]["weight_decay"]["by_optimizer"]["adamw"] == 0.01
    assert table["params"]["momentum"]["value"] == 0.9
    assert table["params"]["label_smoothing"]["value"] == 0.1
    table["params"]["momentum"]["value"] = 0.0  # a copy
    assert defaults_table()["params"]["momentum"]["value"] == 0.9
    for alias in ("lr", "learning-rate", "Learning_Rate", "optimizer.lr", "model__lr"):
        assert canonical_name(alias) == "learning_rate"
    assert canonical_name("per_device_train_batch_size") == "batch_size"
    assert canonical_name("hidden_units") is None
    batch = tc.Space({"batch_size": tc.integer(16, 1000)})
    assert default_config(batch, {"batch_size": {"value": 100, "round": "pow2"}}) == {
        "batch_size": 128
    }
    with pytest.raises(TypeError, match="'table' parameter of default_config"):
        default_config(batch, [1])


# -- learning rate ------------------------------------------------------------------------------
def test_apply_lr_scaling():
    cfg = {"lr": 0.1, "batch_size": 1024, "x": 1}
    out = apply_lr_scaling(cfg, reference_batch_size=256)
    assert out == {"lr": 0.4, "batch_size": 1024, "x": 1} and cfg["lr"] == 0.1  # not mutated
    out = apply_lr_scaling(
        {"eta": 1e-3, "bs": 16},
        rule="sqrt",
        lr_param="eta",
        batch_param="bs",
        reference_batch_size=64,
    )
    assert math.isclose(out["eta"], 5e-4)
    # the identity at the reference batch size
    assert apply_lr_scaling({"lr": 0.3, "batch_size": 64}, reference_batch_size=64)["lr"] == 0.3
    with pytest.raises(ValueError, match="'rule' parameter of apply_lr_scaling"):
        apply_lr_scaling(cfg, rule="cubic", reference_batch_size=256)
    with pytest.raises(ValueError, match="'batch_param' parameter"):
        apply_lr_scaling({"lr": 0.1}, reference_batch_size=256)
    with pytest.raises(ValueError, match="'reference_batch_size' parameter"):
        apply_lr_scaling(cfg, reference_batch_size=0)


def test_narrow_lr():
    space = tc.Space(
        {"lr": tc.loguniform(1e-5, 1.0), "opt": tc.choice(["a", "b"]), "x": tc.uniform(0, 1)}
    )
    out = narrow_lr(space, "lr", 3e-3)
    assert out["lr"] == tc.loguniform(3e-4, 3e-2) and out["x"] == space["x"]
    assert list(out.names) == list(space.names)
    assert narrow_lr(space, "lr", 0.5)["lr"] == tc.loguniform(0.05, 1.0)
    assert narrow_lr(space, "lr", 50.0)["lr"] == tc.loguniform(0.1, 1.0)  # clipped in first
    assert narrow_lr(space, "lr", 1e-3, factor=3.0)["lr"].high == pytest.approx(3e-3)
    cond = tc.Space({"opt": tc.choice(["a", "b"]), "lr": tc.loguniform(1e-5, 1.0).when(opt="a")})
    assert narrow_lr(cond, "lr", 1e-2)["lr"].condition == {"opt": ("a",)}
    with pytest.raises(ValueError, match="'lr_param' parameter of narrow_lr"):
        narrow_lr(space, "learning_rate", 1e-3)
    with pytest.raises(TypeError, match="must name a float parameter"):
        narrow_lr(space, "opt", 1e-3)
    with pytest.raises(ValueError, match="'factor' parameter of narrow_lr"):
        narrow_lr(space, "lr", 1e-3, factor=1.0)


# -- proxies ------------------------------------------------------------------------------------
def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))
    # mappings pair by key, non-finite pairs are left out
    rho = rank_correlation({"a": 1, "b": 2, "c": 3, "d": 9}, {"c": 3.0, "a": 1.0, "b": 2.0})
    assert rho == 1.0
    assert rank_correlation([1, 2, 3, math.nan], [1, 2, 3, 0]) == 1.0
    with pytest.raises(ValueError, match="at least 3"):
        rank_correlation([1, 2], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        rank_correlation([1, 2, 3], [1, 2])


def test_check_proxy_warns_naming_the_proxy():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_proxy("epochs=5", [1, 2, 3, 4, 5], [1, 2, 3, 5, 4]) == pytest.approx(0.9)
    with pytest.warns(ProxyWarning, match="'subset=10%'.*-1.000 < 0.5"):
        assert check_proxy("subset=10%", [1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    with pytest.warns(UserWarning, match="'tiny-model' cannot be judged"):
        check_proxy("tiny-model", [1, 1, 1], [1, 2, 3])
    with pytest.warns(ProxyWarning):
        check_proxy("epochs=1", [1, 2, 3, 4], [1, 2, 4, 3], threshold=0.9)

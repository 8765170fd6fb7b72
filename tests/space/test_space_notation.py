"""Round trips of a space through dict, JSON and YAML in the notation people write."""

from __future__ import annotations

import json

import pytest
import yaml

import tunecraft as tc
from tunecraft.space import parse

FORMATS = ["dict", "json", "yaml"]


def _round_trip(space: tc.Space, fmt: str) -> tc.Space:
    if fmt == "dict":
        return tc.Space.from_dict(json.loads(json.dumps(space.to_dict())))
    if fmt == "json":
        return tc.Space.from_json(space.to_json())
    return tc.Space.from_yaml(space.to_yaml())


def test_to_dict_writes_the_notation_of_the_issue() -> None:
    space = tc.Space(
        {
            "lr": tc.loguniform(1e-5, 1e-2),
            "batch_size": tc.choice([32, 64, 128, 256]),
            "warmup_ratio": tc.uniform(0.0, 0.1),
            "layers": tc.integer(1, 8),
            "heads": tc.integer(2, 16, step=2),
            "units": tc.integer(16, 1024, log=True),
            "opt": tc.choice(["sgd", "adam"]),
            "momentum": tc.uniform(0.5, 0.99).when(opt="sgd"),
        }
    )
    assert space.to_dict() == {
        "lr": "log-uniform(1e-05, 0.01)",
        "batch_size": "choice(32, 64, 128, 256)",
        "warmup_ratio": "uniform(0, 0.1)",
        "layers": "int(1, 8)",
        "heads": "int(2, 16, step=2)",
        "units": "log-int(16, 1024)",
        "opt": "choice(sgd, adam)",
        "momentum": {"distribution": "uniform(0.5, 0.99)", "when": {"opt": ["sgd"]}},
    }
    for fmt in FORMATS:
        assert _round_trip(space, fmt) == space


def test_yaml_as_people_write_it() -> None:
    text = """
lr: log-uniform(1e-5, 1e-2)
batch_size: choice(32, 64, 128, 256)
warmup_ratio: uniform(0, 0.1)
layers: int(1, 8)
units: int(16, 1024, log=true)
activation: choice(relu, 'gelu', "silu")
optimizer: choice(sgd, adam)
momentum:
  distribution: uniform(0.5, 0.99)
  when: {optimizer: sgd}
"""
    space = tc.Space.from_yaml(text)
    assert space["lr"] == tc.loguniform(1e-5, 1e-2)
    assert space["batch_size"] == tc.choice([32, 64, 128, 256])
    assert space["warmup_ratio"] == tc.uniform(0, 0.1)
    assert space["layers"] == tc.integer(1, 8)
    assert space["units"] == tc.integer(16, 1024, log=True)
    assert space["activation"] == tc.choice(["relu", "gelu", "silu"])
    assert space["momentum"] == tc.uniform(0.5, 0.99).when(optimizer="sgd")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("uniform(-1, 1)", tc.uniform(-1, 1)),
        ("loguniform(1e-5, 1e-2)", tc.loguniform(1e-5, 1e-2)),
        ("LOG-UNIFORM( .5 , 2.5E1 )", tc.loguniform(0.5, 25)),
        ("log_uniform(1, 2)", tc.loguniform(1, 2)),
        ("uniform(1, 2, log=true)", tc.loguniform(1, 2)),
        ("int(-3, 3)", tc.integer(-3, 3)),
        ("integer(0, 1e2, step=10)", tc.integer(0, 100, step=10)),
        ("log-int(1, 1024)", tc.integer(1, 1024, log=True)),
        ("int(1, 1024, log=True)", tc.integer(1, 1024, log=True)),
        ("choice(1, 1.0, true, null, '1', x y)", tc.choice([1, 1.0, True, None, "1", "x y"])),
    ],
)
def test_parse_accepts_the_notation(text: str, expected: tc.space.Param) -> None:
    assert parse(text) == expected


TRICKY_OPTIONS = [
    "32",
    "1e-3",
    "-7",
    "+inf",
    "nan",
    "",
    " padded ",
    "true",
    "False",
    "null",
    "None",
    "a,b",
    "it's",
    'say "hi"',
    "both ' and \"",
    "back\\slash",
    "(paren)",
    "k=v",
    "line\nbreak",
    "\ttab",
    "#comment",
    "- dash",
    "yes",
    "ünïcödé",
    None,
    True,
    False,
    0,
    1,
    -2,
    0.5,
    1.0,
    1e-300,
    10**20,
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_tricky_choice_options_survive_every_format(fmt: str) -> None:
    space = tc.Space({"c": tc.choice(TRICKY_OPTIONS)})
    back = _round_trip(space, fmt)
    assert back == space
    for got, want in zip(back["c"].options, TRICKY_OPTIONS, strict=True):
        assert type(got) is type(want) and got == want


@pytest.mark.parametrize("fmt", FORMATS)
def test_conditions_on_tricky_values_survive_every_format(fmt: str) -> None:
    space = tc.Space(
        {
            "parent": tc.choice(["1", 1, True, None, "a,b"]),
            "child": tc.uniform(0, 1).when(parent=["1", True, None, "a,b"]),
            "n": tc.integer(1, 4),
            "grandchild": tc.choice(["x", "y"]).when(n=[2, 3]),
        }
    )
    back = _round_trip(space, fmt)
    assert back == space
    assert back["child"].condition == {"parent": ("1", True, None, "a,b")}
    assert back.is_active("child", {"parent": True})
    assert not back.is_active("child", {"parent": 1})


@pytest.mark.parametrize(
    "param",
    [
        tc.uniform(-1e-300, 3.3),
        tc.uniform(0.1, 0.30000000000000004),
        tc.loguniform(1 / 3, 2 / 3),
        tc.uniform(-1e20, 1e20),
        tc.integer(-(10**12), 10**12, step=2),
    ],
)
def test_bounds_round_trip_exactly(param: tc.space.Param) -> None:
    space = tc.Space({"p": param})
    for fmt in FORMATS:
        assert _round_trip(space, fmt)["p"] == param


def test_yaml_output_is_plain_notation() -> None:
    space = tc.Space({"lr": tc.loguniform(1e-5, 1e-2), "n": tc.integer(1, 8)})
    assert yaml.safe_load(space.to_yaml()) == {"lr": "log-uniform(1e-05, 0.01)", "n": "int(1, 8)"}
    assert list(yaml.safe_load(space.to_yaml())) == ["lr", "n"]

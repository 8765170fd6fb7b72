"""Every bad search-space input: the exception type and a message naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError, TunecraftError


def test_invalid_parameter_error_is_a_value_error() -> None:
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TunecraftError)


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        # low >= high
        (lambda: tc.uniform(1, 1), r"uniform\(low=1, high=1\): low must be < high"),
        (lambda: tc.uniform(2, 1), r"uniform\(low=2, high=1\): low must be < high"),
        (lambda: tc.loguniform(1e-2, 1e-5), r"loguniform\(low=0.01.*low must be < high"),
        (lambda: tc.integer(8, 1), r"integer\(low=8, high=1\): low must be < high"),
        (lambda: tc.integer(3, 3), r"integer\(low=3, high=3\): low must be < high"),
        # log scale with low <= 0
        (lambda: tc.loguniform(0, 1), r"loguniform\(low=0, high=1\): low must be > 0 for a log"),
        (lambda: tc.loguniform(-1, 1), r"loguniform\(low=-1, high=1\): low must be > 0"),
        (
            lambda: tc.integer(0, 8, log=True),
            r"integer\(low=0, high=8, log=True\): low must be > 0",
        ),
        # empty or duplicated choices
        (lambda: tc.choice([]), r"choice\(options=\[\]\): options must not be empty"),
        (lambda: tc.choice(["a", "b", "a"]), r"options must be distinct, 'a' repeats"),
        (lambda: tc.choice([None, None]), r"options must be distinct, None repeats"),
        (lambda: tc.choice([float("nan")]), r"options must be finite"),
        # step
        (lambda: tc.integer(0, 10, step=3), r"step=3\): step must divide high - low = 10"),
        (lambda: tc.integer(0, 10, step=0), r"step=0\): step must be >= 1"),
        (lambda: tc.integer(1, 9, step=2, log=True), r"a log scale needs step=1"),
        # non-finite bounds
        (lambda: tc.uniform(0, math.inf), r"uniform\(low=0, high=inf\): high must be finite"),
        (lambda: tc.uniform(-math.inf, 0), r"low must be finite"),
        (lambda: tc.uniform(math.nan, 1), r"uniform\(low=nan, high=1\): low must be finite"),
        (lambda: tc.loguniform(1e-5, math.inf), r"high must be finite"),
        (lambda: tc.uniform(-1e308, 1e308), r"high - low must be a finite number"),
        (lambda: tc.loguniform(1e6, 1e6 + 1e-10), r"high must be further above low"),
        # conditions
        (lambda: tc.uniform(0, 1).when(), r"when\(\): give at least one parent=value"),
        (lambda: tc.uniform(0, 1).when(opt=[]), r"when\(opt=...\): give at least one value"),
    ],
)
def test_bad_domains_raise_value_errors_naming_the_argument(
    make: Callable[[], Any], pattern: str
) -> None:
    with pytest.raises(InvalidParameterError, match=pattern):
        make()


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: tc.uniform("0", 1), r"low must be a real number, got '0'"),
        (lambda: tc.uniform(0, None), r"high must be a real number, got None"),
        (lambda: tc.uniform(True, 2), r"low must be a real number, got True"),
        (lambda: tc.integer(1.0, 8), r"low must be an int, got 1.0"),
        (lambda: tc.integer(1, 8, step=2.0), r"step must be an int, got 2.0"),
        (lambda: tc.choice("abc"), r"options must be a list of values"),
        (lambda: tc.choice(5), r"options must be a list of values"),
        (lambda: tc.choice([[1, 2]]), r"options must be str, int, float, bool or None, got list"),
        (lambda: tc.Space([("x", tc.uniform(0, 1))]), r"must be a dict of name -> domain"),
        (lambda: tc.Space({1: tc.uniform(0, 1)}), r"parameter names must be non-empty str"),
        (lambda: tc.Space({"x": 3}), r"parameter 'x' must be a domain"),
        (lambda: tc.Space({"x": (0, 1)}), r"parameter 'x' must be a domain"),
    ],
)
def test_wrong_types_raise_type_errors_naming_the_argument(
    make: Callable[[], Any], pattern: str
) -> None:
    with pytest.raises(TypeError, match=pattern):
        make()


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({}, r"at least one parameter"),
        (
            {"lr": "log-uniform(0, 1)"},
            r"parameter 'lr':.*low must be > 0 for a log scale",
        ),
        ({"lr": "normal(0, 1)"}, r"parameter 'lr':.*unknown domain 'normal'"),
        ({"lr": "uniform(0)"}, r"parameter 'lr':.*exactly two bounds"),
        ({"lr": "uniform(a, 1)"}, r"parameter 'lr':.*low must be a number, got 'a'"),
        ({"lr": "uniform(0, 1, scale=2)"}, r"parameter 'lr':.*unknown option 'scale'"),
        ({"n": "int(1, 8.5)"}, r"parameter 'n':.*high must be an int"),
        ({"n": "int(1, 8, log=maybe)"}, r"parameter 'n':.*log must be true or false"),
        ({"c": "choice()"}, r"parameter 'c':.*options must not be empty"),
        ({"c": "choice(a, b, a)"}, r"parameter 'c':.*'a' repeats"),
        ({"c": "choice('a, b)"}, r"parameter 'c':.*unterminated quote"),
        ({"c": "choice(a, , b)"}, r"parameter 'c':.*empty argument"),
        ({"c": "choice"}, r"parameter 'c':.*is not a domain"),
        ({"n": "int(0, 10, step=3)"}, r"parameter 'n':.*step must divide"),
        ({"n": "int(0, 10, step=2, step=5)"}, r"parameter 'n':.*option 'step' is given twice"),
        ({"x": "uniform(0, inf)"}, r"parameter 'x':.*high must be finite"),
        # conditions on missing parents, on themselves, on floats, on values never taken
        (
            {"m": tc.uniform(0, 1).when(opt="sgd")},
            r"parameter 'm' is conditioned on 'opt', which is not in the space",
        ),
        ({"m": tc.choice([1, 2]).when(m=1)}, r"parameter 'm' is conditioned on itself"),
        (
            {"x": tc.uniform(0, 1), "m": tc.uniform(0, 1).when(x=0.5)},
            r"parameter 'm' is conditioned on 'x', which must be a choice or an int",
        ),
        (
            {"opt": tc.choice(["sgd"]), "m": tc.uniform(0, 1).when(opt="adam")},
            r"parameter 'm' is conditioned on opt='adam', which choice\(sgd\) never takes",
        ),
        (
            {"a": tc.choice([1, 2]).when(b=1), "b": tc.choice([1, 2]).when(a=1)},
            r"conditions form a cycle: a -> b -> a",
        ),
        (
            {
                "a": tc.choice([1, 2]).when(c=1),
                "b": tc.choice([1, 2]).when(a=1),
                "c": tc.choice([1, 2]).when(b=1),
            },
            r"cycle: a -> c -> b -> a",
        ),
    ],
)
def test_bad_spaces_raise_value_errors_naming_the_parameter(
    params: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(InvalidParameterError, match=pattern):
        tc.Space(params)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("lr: normal(0, 1)\n", r"parameter 'lr':.*unknown domain 'normal'"),
        ("lr: gaussian\n", r"parameter 'lr':.*'gaussian' is not a domain"),
        (
            "m:\n  distribution: uniform(0, 1)\n  whenn: {opt: sgd}\n",
            r"parameter 'm' has unknown key 'whenn'; allowed keys are 'distribution' and 'when'",
        ),
        ("m:\n  when: {opt: sgd}\n", r"parameter 'm' needs a 'distribution'"),
        (
            "m:\n  distribution: uniform(0, 1)\n  when: sgd\n",
            r"parameter 'm': 'when' must map a parent to its values",
        ),
        (
            "m:\n  distribution: uniform(0, 1)\n  when: {opt: sgd}\n",
            r"parameter 'm' is conditioned on 'opt', which is not in the space",
        ),
        ("- lr\n- n\n", r"must be a mapping of name -> domain, got list"),
        ("lr: [unclosed\n", r"invalid YAML"),
    ],
)
def test_bad_yaml_spaces_name_what_is_wrong(text: str, pattern: str) -> None:
    with pytest.raises(InvalidParameterError, match=pattern) as info:
        tc.Space.from_yaml(text)
    assert "\n" not in str(info.value)  # one line


def test_bad_json_space_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"parameter 'n':.*low must be < high"):
        tc.Space.from_json('{"n": "int(8, 1)"}')


def test_yaml_space_with_a_number_instead_of_a_domain_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"parameter 'lr' must be a domain"):
        tc.Space.from_yaml("lr: 0.1\n")


def test_yaml_flow_mapping_split_at_a_comma_gets_a_quoting_hint() -> None:
    head = "opt: choice(sgd, adam)\n"
    with pytest.raises(InvalidParameterError, match=r"'mom'.*quote the domain"):
        tc.Space.from_yaml(head + "mom: {distribution: uniform(0.5, 0.99), when: {opt: sgd}}")
    quoted = head + "mom: {distribution: 'uniform(0.5, 0.99)', when: {opt: sgd}}"
    assert tc.Space.from_yaml(quoted)["mom"].condition == {"opt": ("sgd",)}

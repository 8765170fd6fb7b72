"""A conformance suite every sampler must pass, reusable by projects that write their own.

Each ``check_*`` function takes a *factory*, ``factory(seed) -> Sampler``, drives the sampler
through a real :class:`~tunecraft.Study` (in memory, ask/tell) and raises ``AssertionError``
saying what is wrong. :class:`SamplerConformance` runs them all as pytest tests.

Example (in a test module of your project)::

    from tunecraft.testing.samplers import SamplerConformance

    class TestMySampler(SamplerConformance):
        spec = "my_package.samplers:MySampler"   # or a name registered with make_sampler

Samplers that stop early, such as a grid, are drawn until exhausted; the checks that need many
draws take what the sampler gives.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tunecraft.exceptions import SamplerExhaustedError
from tunecraft.samplers import Sampler, make_sampler
from tunecraft.space import Categorical, Float, Int, Space, choice, integer, loguniform, uniform
from tunecraft.storage import MemoryStorage
from tunecraft.study import Study

__all__ = [
    "SamplerConformance",
    "SamplerFactory",
    "check_conditional_params",
    "check_fresh_process",
    "check_log_scale",
    "check_other_seed_differs",
    "check_same_seed_same_sequence",
    "check_types",
    "check_within_bounds",
    "conformance_space",
    "draw_configs",
    "factory_from_spec",
]

SamplerFactory = Callable[[int | None], Sampler]


def conformance_space() -> Space:
    """A space with every parameter kind, log scales, a step and nested conditions."""
    return Space(
        {
            "lr": loguniform(1e-5, 1e-1),
            "dropout": uniform(0.0, 0.5),
            "layers": integer(1, 4),
            "width": integer(8, 512, log=True),
            "batch": integer(16, 128, step=16),
            "optimizer": choice(["sgd", "adam", None]),
            "momentum": uniform(0.5, 0.99).when(optimizer="sgd"),
            "nesterov": choice([True, False]).when(optimizer="sgd"),
            "beta2": loguniform(0.9, 0.9999).when(optimizer="adam"),
            "head": choice(["linear", "mlp"]).when(layers=[3, 4]),
            "head_width": integer(4, 64, log=True).when(head="mlp"),
        }
    )


def factory_from_spec(spec: str, options: Mapping[str, Any] | None = None) -> SamplerFactory:
    """A factory from a registered sampler name (``"sobol"``) or an import path
    (``"package.module:SamplerClass"``) called as ``obj(seed=seed, **options)``."""
    opts = dict(options or {})
    if ":" in spec:
        module, _, attr = spec.partition(":")
        obj = getattr(importlib.import_module(module), attr)

        def from_path(seed: int | None) -> Sampler:
            return obj(seed=seed, **opts)

        return from_path

    def from_name(seed: int | None) -> Sampler:
        return make_sampler(spec, seed=seed, options=opts)

    return from_name


def draw_configs(
    factory: SamplerFactory,
    seed: int | None,
    n: int,
    space: Space | None = None,
    objective: Callable[[int, dict[str, Any]], float] | None = None,
) -> list[dict[str, Any]]:
    """Up to ``n`` configs proposed by ``factory(seed)`` in a fresh study, each trial told a
    value before the next is asked (fewer when the sampler is exhausted first).

    Args:
        objective: ``objective(i, config)`` gives the value told for the ``i``-th trial
            (default ``i % 7``, a value unrelated to the config).
    """
    space = space if space is not None else conformance_space()
    study = Study(space, sampler=factory(seed), storage=MemoryStorage())
    configs = []
    for i in range(n):
        try:
            trial = study.ask()
        except SamplerExhaustedError:
            break
        configs.append(trial.config)
        study.tell(trial, float(i % 7) if objective is None else objective(i, trial.config))
    return configs


def _fail(message: str) -> None:
    raise AssertionError(message)


def _min_draws(configs: Sequence[Any], n: int, what: str) -> None:
    if len(configs) < n:
        _fail(f"{what}: the sampler gave only {len(configs)} configs, {n} are needed.")


def check_within_bounds(factory: SamplerFactory, *, n: int = 64, seed: int = 0) -> None:
    """Every config lies in the space: bounds, steps, options, exactly the active params."""
    space = conformance_space()
    configs = draw_configs(factory, seed, n, space)
    _min_draws(configs, 2, "check_within_bounds")
    for c in configs:
        if not space.contains(c):
            _fail(f"config {c!r} is not in the space: {space._problem(c)}")


def check_types(factory: SamplerFactory, *, n: int = 64, seed: int = 0) -> None:
    """Float params give python ``float``, int params python ``int`` (not bool or numpy), and
    choices give the option object itself (same type as written)."""
    space = conformance_space()
    for c in draw_configs(factory, seed, n, space):
        for name, value in c.items():
            p = space[name]
            if isinstance(p, Float):
                ok = type(value) is float
            elif isinstance(p, Int):
                ok = type(value) is int
            else:
                assert isinstance(p, Categorical)
                ok = any(type(o) is type(value) and o == value for o in p.options)
            if not ok:
                _fail(f"'{name}' has {type(value).__name__} {value!r}, wrong type for {p!r}")


def check_log_scale(factory: SamplerFactory, *, n: int = 200, seed: int = 0) -> None:
    """``loguniform(1e-5, 1)`` is sampled on a log scale: the median of the draws is near
    ``10**-2.5`` (a linear scale would put it near 0.5), and ``log-int(1, 1024)`` has its
    median near 32.

    The value told is the distance to the middle of the log axes, ``(log10 x + 2.5) ** 2 +
    (log2 k - 5) ** 2 / 4``, so that a model-based sampler, which concentrates where values are
    low, concentrates around the same medians as a random one (on a linear scale it would not).
    """
    space = Space({"x": loguniform(1e-5, 1.0), "k": integer(1, 1024, log=True)})

    def centred(i: int, c: dict[str, Any]) -> float:
        return (math.log10(c["x"]) + 2.5) ** 2 + (math.log2(c["k"]) - 5.0) ** 2 / 4

    configs = draw_configs(factory, seed, n, space, centred)
    _min_draws(configs, 3, "check_log_scale")
    median_x = statistics.median(math.log10(c["x"]) for c in configs)
    if abs(median_x + 2.5) > 0.5:
        _fail(f"median log10 of loguniform(1e-5, 1) draws is {median_x:.2f}, expected -2.5")
    median_k = statistics.median(math.log2(c["k"]) for c in configs)
    if abs(median_k - 5.0) > 1.0:
        _fail(f"median log2 of log-int(1, 1024) draws is {median_k:.2f}, expected about 5")


def check_conditional_params(factory: SamplerFactory, *, n: int = 64, seed: int = 0) -> None:
    """Conditional params are present exactly when their condition holds, and every branch
    of each condition is explored."""
    space = conformance_space()
    configs = draw_configs(factory, seed, n, space)
    _min_draws(configs, 8, "check_conditional_params")
    for c in configs:
        for name in space.names:
            if space.is_active(name, c) != (name in c):
                state = "missing although active" if name not in c else "present but inactive"
                _fail(f"'{name}' is {state} in {c!r}")
    for name in ("momentum", "beta2", "head", "head_width"):
        present = sum(name in c for c in configs)
        if present in (0, len(configs)):
            _fail(f"conditional '{name}' is present in {present} of {len(configs)} configs")


def check_same_seed_same_sequence(factory: SamplerFactory, *, n: int = 24, seed: int = 7) -> None:
    """Two samplers with the same seed propose the same sequence of configs."""
    first = draw_configs(factory, seed, n)
    second = draw_configs(factory, seed, n)
    if first != second:
        _fail("two samplers built with the same seed proposed different configs")


def check_other_seed_differs(
    factory: SamplerFactory, *, n: int = 24, seeds: tuple[int, int] = (0, 1)
) -> None:
    """Samplers with different seeds propose different sequences."""
    a = draw_configs(factory, seeds[0], n)
    b = draw_configs(factory, seeds[1], n)
    if a == b:
        _fail(f"seeds {seeds[0]} and {seeds[1]} gave the same {len(a)} configs")


_CHILD = """
import json, sys
from tunecraft.testing.samplers import draw_configs, factory_from_spec
spec, options, seed, n = json.loads(sys.argv[1])
print(json.dumps(draw_configs(factory_from_spec(spec, options), seed, n)))
"""


def check_fresh_process(
    spec: str,
    options: Mapping[str, Any] | None = None,
    *,
    n: int = 16,
    seed: int = 3,
    timeout: float = 120.0,
) -> None:
    """A fresh Python process with the same seed proposes the same configs as this one.

    Args:
        spec: A sampler name registered with ``make_sampler`` or ``"module:Class"``.
        options: Keyword arguments of the sampler (JSON-serializable).
    """
    here = draw_configs(factory_from_spec(spec, options), seed, n)
    env = dict(os.environ, PYTHONHASHSEED="random")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps([spec, dict(options or {}), seed, n])],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        _fail(f"the child process failed: {out.stderr.strip().splitlines()[-1:]}")
    there = json.loads(out.stdout)
    if json.loads(json.dumps(here)) != there:
        _fail(f"a fresh process with seed {seed} proposed other configs for {spec!r}")


class SamplerConformance:
    """Every check above as a pytest test. Subclass it as ``TestSomething`` and set
    :attr:`spec` (and :attr:`options`), or override :meth:`make_sampler`."""

    #: A registered sampler name or ``"module:Class"``.
    spec: str = "random"
    #: Keyword arguments of the sampler.
    options: Mapping[str, Any] | None = None

    def make_sampler(self, seed: int | None) -> Sampler:
        """Build the sampler under test."""
        return factory_from_spec(self.spec, self.options)(seed)

    def test_within_bounds(self) -> None:
        check_within_bounds(self.make_sampler)

    def test_types(self) -> None:
        check_types(self.make_sampler)

    def test_log_scale(self) -> None:
        check_log_scale(self.make_sampler)

    def test_conditional_params(self) -> None:
        check_conditional_params(self.make_sampler)

    def test_same_seed_same_sequence(self) -> None:
        check_same_seed_same_sequence(self.make_sampler)

    def test_other_seed_differs(self) -> None:
        check_other_seed_differs(self.make_sampler)

    def test_fresh_process(self) -> None:
        check_fresh_process(self.spec, self.options)

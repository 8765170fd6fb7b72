"""Every built-in sampler through the public conformance suite."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from tunecraft.testing.samplers import SamplerConformance, check_other_seed_differs


class TestRandomSampler(SamplerConformance):
    spec = "random"


class TestSobolSampler(SamplerConformance):
    spec = "sobol"


class TestAutoSampler(SamplerConformance):
    spec = "auto"


class TestGridSampler(SamplerConformance):
    # Unshuffled, a grid visits its points in the same order whatever the seed; shuffled, the
    # seed picks the order.
    spec = "grid"
    options: ClassVar[dict[str, Any]] = {"n_points": 3, "shuffle": True}


def test_unshuffled_grid_ignores_the_seed() -> None:
    from tunecraft.testing.samplers import factory_from_spec

    with pytest.raises(AssertionError, match="gave the same"):
        check_other_seed_differs(factory_from_spec("grid", {"n_points": 3}))


class TestGPSampler(SamplerConformance):
    spec = "gp"


class TestTPESampler(SamplerConformance):
    spec = "tpe"

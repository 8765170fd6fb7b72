"""Gaussian-process Bayesian optimization: kernel, fit, acquisition, optimizer, sampler."""

from __future__ import annotations

from tunecraft.samplers._gp.sampler import GPSampler

__all__ = ["GPSampler"]

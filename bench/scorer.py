"""The scorer on Kafka: throughput, memory, latency and model call (run by `fraudops_scorer.bench`, which starts
its own Kafka and MLflow; `fraudops bench scorer` prints the same run as JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from bench.harness import Figure
from fraudops_scorer.bench import run_scorer_benchmark

_FIELDS = [f.name for f in fields(Figure)]


def figures_of(result: Mapping[str, Any]) -> list[Figure]:
    """The figures of a `fraudops bench ...` result (its extra keys, ratio and met, are recomputed or dropped)."""
    return [Figure(**{name: figure[name] for name in _FIELDS}) for figure in result["figures"]]


def run() -> list[Figure]:
    return figures_of(run_scorer_benchmark())

"""The scorer's POST /v1/score against GET /healthz of the same server (run by `fraudops_scorer.bench`;
`fraudops bench rest` prints the same run as JSON)."""

from __future__ import annotations

from bench.harness import Figure
from bench.scorer import figures_of
from fraudops_scorer.bench import run_rest_benchmark


def run() -> list[Figure]:
    return figures_of(run_rest_benchmark())

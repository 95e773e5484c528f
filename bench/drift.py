"""The monitor's drift detection: delays of the simulator's scenarios and the cost of one evaluation (run by
`fraudops_monitor.bench`, which starts its own Kafka and MLflow; `fraudops bench drift` prints the same run)."""

from __future__ import annotations

from bench.harness import Figure
from bench.scorer import figures_of
from fraudops_monitor.bench import run_drift_benchmark


def run() -> list[Figure]:
    return figures_of(run_drift_benchmark(quick=True))

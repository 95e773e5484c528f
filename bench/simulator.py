"""The Handbook's default dataset: generation time against numpy/pandas primitives, statistics against the book."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bench.harness import Figure
from fraudops.simulator import PUBLISHED_STATISTICS, SimulationResult, SimulatorConfig, simulate

PUBLISHED = "published in the Fraud Detection Handbook (ch. 3)"
# Seed-to-seed spread of each figure (relative standard deviation over seeds 0-7, measured once): the
# Handbook's rows come from another random stream, so a ratio within about 3 of these is a match.
SPREAD = {"transactions": 0.007, "frauds": 0.008, "scenario_1": 0.06, "scenario_2": 0.008, "scenario_3": 0.024}


def _target(key: str) -> str:
    return f"ratio 1 ± {3 * SPREAD[key]:.2f} (3x the seed-to-seed spread)"


def _baseline(rows: int) -> None:
    """The floor of any generator of `rows` rows: draw that many normals and sort a frame of that many rows."""
    rng = np.random.default_rng(0)
    draws = rng.normal(size=rows)
    pd.DataFrame({"t": draws, "i": np.arange(rows)}).sort_values("t", kind="stable")


def _timed_simulation() -> tuple[float, SimulationResult]:
    start = time.perf_counter()
    result = simulate(SimulatorConfig())
    return time.perf_counter() - start, result


def run() -> list[Figure]:
    runs = [_timed_simulation() for _ in range(3)]
    seconds = sorted(s for s, _ in runs)[1]
    result = runs[0][1]
    tx = result.transactions
    rows = len(tx)
    baseline_times = []
    for _ in range(3):
        start = time.perf_counter()
        _baseline(rows)
        baseline_times.append(time.perf_counter() - start)
    baseline = sorted(baseline_times)[1]

    counts = result.scenario_counts()
    measured = {
        "transactions": rows,
        "frauds": int(tx["is_fraud"].sum()),
        "scenario_1": counts.get(1, 0),
        "scenario_2": counts.get(2, 0),
        "scenario_3": counts.get(3, 0),
    }
    labels = {
        "transactions": "transactions",
        "frauds": "frauds",
        "scenario_1": "frauds of scenario 1 (amount > 220)",
        "scenario_2": "frauds of scenario 2 (compromised terminals)",
        "scenario_3": "frauds of scenario 3 (compromised customers)",
    }
    figures = [
        Figure(
            benchmark="simulator",
            metric="Handbook default dataset (5,000 customers, 10,000 terminals, 183 days), seed 0",
            unit="s",
            value=round(seconds, 2),
            baseline_name=f"numpy {rows:,} normal draws + pandas sort of {rows:,} rows",
            baseline=round(baseline, 3),
            target="< 60 s",
        )
    ]
    for key, label in labels.items():
        figures.append(
            Figure(
                benchmark="simulator",
                metric=label,
                unit="rows",
                value=measured[key],
                baseline_name=PUBLISHED,
                baseline=PUBLISHED_STATISTICS[key],
                lower_is_better=False,
                target=_target(key),
            )
        )
    rate = measured["frauds"] / rows * 100
    published_rate = PUBLISHED_STATISTICS["frauds"] / PUBLISHED_STATISTICS["transactions"] * 100
    figures.append(
        Figure(
            benchmark="simulator",
            metric="fraud rate",
            unit="%",
            value=round(rate, 3),
            baseline_name=PUBLISHED,
            baseline=round(published_rate, 3),
            lower_is_better=False,
            target=_target("frauds"),
        )
    )
    return figures

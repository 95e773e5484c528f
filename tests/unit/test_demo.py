"""The demo's arithmetic and world, without a stack: latency quantiles from a histogram, the scorer's deltas,
the world's periods and ids, and live average precision by period."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudops.demo.report import live_average_precision, write_report
from fraudops.demo.services import histogram_quantile, parse_metrics
from fraudops.demo.story import Outcome, scorer_delta
from fraudops.demo.world import DemoSize, simulate_world

TINY = DemoSize("tiny", customers=60, history_days=20, stream_days=6, drift_day=2, rate=100)


def _scrape(counts: dict[str, float], decisions: dict[str, float]) -> str:
    lines = ["# TYPE fraud_scorer_kafka_to_publish_latency_seconds histogram"]
    for bound, count in counts.items():
        lines.append(f'fraud_scorer_kafka_to_publish_latency_seconds_bucket{{le="{bound}"}} {count}')
    lines.append(f"fraud_scorer_kafka_to_publish_latency_seconds_count {counts['+Inf']}")
    lines.append(f"fraud_scorer_kafka_to_publish_latency_seconds_sum {counts['+Inf'] * 0.01}")
    lines.append("# TYPE fraud_scorer_decisions_total counter")
    lines.extend(f'fraud_scorer_decisions_total{{decision="{d}"}} {v}' for d, v in decisions.items())
    return "\n".join(lines) + "\n"


def test_histogram_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    buckets = {0.01: 50.0, 0.1: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.01)
    # Rank 70 falls in (0.01, 0.1], 20 of its 40: halfway.
    assert histogram_quantile(buckets, 0.7) == pytest.approx(0.055)
    assert histogram_quantile(buckets, 0.99) == pytest.approx(0.1 + 0.9 * 0.9)
    assert math.isnan(histogram_quantile({0.1: 0.0, math.inf: 0.0}, 0.5))
    # Everything beyond the last finite bound: the bound is all Prometheus can say.
    assert histogram_quantile({0.1: 0.0, math.inf: 10.0}, 0.5) == pytest.approx(0.1)


def test_scorer_delta_counts_only_what_happened_between_two_scrapes() -> None:
    before = parse_metrics(_scrape({"0.01": 10, "0.1": 10, "+Inf": 10}, {"APPROVE": 100, "REVIEW": 5, "DECLINE": 1}))
    after = parse_metrics(_scrape({"0.01": 10, "0.1": 110, "+Inf": 110}, {"APPROVE": 190, "REVIEW": 13, "DECLINE": 3}))
    p50, p99, decisions = scorer_delta(before, after)
    # The 100 new scores all took between 10 and 100 ms.
    assert 10 < p50 < p99 <= 100
    assert decisions == {"APPROVE": 90, "REVIEW": 8, "DECLINE": 2}


def test_the_world_has_a_history_a_stream_with_a_drift_and_ids_of_its_own() -> None:
    world = simulate_world(TINY, "dtest1", date(2026, 3, 1))
    times = world.transactions["event_time"]
    # The stream ends before the day the world was made for: ingest accepts no rows from the future.
    assert times.max() < pd.Timestamp("2026-03-01", tz="UTC")
    assert world.history()["event_time"].max() < world.stream_start <= world.drift_start < world.stream_end
    assert world.transactions["transaction_id"].str.startswith("dtest1-").all()
    assert world.transactions["terminal_id"].str.startswith("dtest1-").all()
    # Frauds are confirmed within four days, none before their payment.
    frauds = world.labels[world.labels["is_fraud"]].merge(world.transactions, on="transaction_id")
    delays = (frauds["known_at"] - frauds["event_time"]).dt.total_seconds() / 86_400
    assert delays.between(0, 4).all()
    assert len(world.between(world.drift_start, world.stream_end)) > 0


def test_live_average_precision_splits_the_stream_at_the_drift_and_the_new_champion() -> None:
    rng = np.random.default_rng(1)
    n = 400
    scores = pd.DataFrame(
        {
            "event_time": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "is_fraud": rng.integers(0, 2, n),
            "model_version": ["1"] * 300 + ["2"] * 100,
        }
    )
    scores["score"] = np.where(scores["is_fraud"] == 1, 0.9, 0.1)  # perfect ranking
    scores.loc[150:299, "score"] = 0.5  # the first champion blind after the drift
    drift_start = scores["event_time"][150].isoformat()
    figures = live_average_precision(scores, drift_start, "2")
    assert figures["before drift"] == pytest.approx(1.0)
    assert figures["retrained champion"] == pytest.approx(1.0)
    assert figures["drift, first champion"] == pytest.approx(scores.loc[150:299, "is_fraud"].mean())


def test_the_report_folder_holds_the_summary_the_plots_and_an_index(tmp_path: Path) -> None:
    outcome = Outcome(run_tag="dtest2", world_date="2026-03-01", stream_start="2026-01-01T00:00:00+00:00")
    outcome.drift_start = "2026-01-10T00:00:00+00:00"
    outcome.actions = [{"id": "a1", "kind": "report", "status": "succeeded", "alertname": "X", "detail": "<b>"}]
    outcome.evaluations = [
        {"window_end": f"2026-01-{day:02d}T00:00:00+00:00", "drift": {"drift_share": day / 30},
         "performance": {"average_precision": 1 - day / 30}}
        for day in range(1, 20)
    ]  # fmt: skip
    rng = np.random.default_rng(2)
    scores = pd.DataFrame(
        {
            "event_time": pd.date_range("2026-01-01", periods=200, freq="2h", tz="UTC"),
            "is_fraud": rng.integers(0, 2, 200),
            "score": rng.random(200),
            "model_version": ["1"] * 120 + ["2"] * 80,
        }
    )
    index = write_report(tmp_path, outcome, scores, {"first": {"roc_auc": 0.8}}, {"before drift": 0.5},
                         {"MLflow": "http://127.0.0.1:5000"}, {})  # fmt: skip
    for name in ("pr_curve.png", "score_distribution.png", "drift_timeline.png", "live_ap.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 500, name
    page = index.read_text()
    assert "&lt;b&gt;" in page  # what the services said is escaped
    assert json.loads((tmp_path / "summary.json").read_text())["run_tag"] == "dtest2"

"""The scorer's metrics as a fresh instance exposes them."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from fraudops_scorer.metrics import ScorerMetrics


def test_a_starting_scorer_does_not_look_cut_off_from_kafka() -> None:
    """FraudScorerCutOffFromKafka reads time() minus this gauge: 0 would fire it before the first fetch."""
    before = time.time()
    registry = CollectorRegistry()
    ScorerMetrics(registry)
    measured = registry.get_sample_value("fraud_scorer_lag_measured_timestamp_seconds")
    assert measured is not None
    assert before <= measured <= time.time()

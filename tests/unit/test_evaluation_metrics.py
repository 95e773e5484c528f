"""The shared quality metrics: hand-checked cases, agreement with scikit-learn, Card Precision@k, budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudops.evaluation.metrics import (
    average_precision,
    card_precision_at_k,
    quality_report,
    roc_auc,
    threshold_for_daily_budget,
)


def test_average_precision_by_hand() -> None:
    # Ranked: 1 (P=1/1), 0, 1 (P=2/3), 0: AP = (1 + 2/3) / 2.
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie is one threshold


def test_roc_auc_by_hand() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        labels = rng.integers(0, 2, 200)
        scores = np.round(rng.random(200), 2)  # rounding makes ties
        assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores))
        assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_undefined_cases_are_nan() -> None:
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))


def test_card_precision_counts_cards_per_day_and_divides_by_k() -> None:
    day1 = datetime(2026, 1, 1, 10, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    frame = pd.DataFrame(
        {
            "event_time": [day1, day1, day1, day1, day2, day2],
            # Card a pays twice on day 1: one card, its highest score, compromised by its fraud.
            "customer_id": ["a", "a", "b", "c", "a", "b"],
            "is_fraud": [0, 1, 0, 1, 0, 0],
            "score": [0.9, 0.2, 0.8, 0.1, 0.7, 0.6],
        }
    )
    # Day 1 top 2: a (0.9, fraud), b (0.8) -> 1/2; day 2 top 2: a, b, no fraud -> 0. Mean 0.25.
    assert card_precision_at_k(frame, k=2) == pytest.approx(0.25)
    # Fewer cards than k still divide by k.
    assert card_precision_at_k(frame, k=4) == pytest.approx((2 / 4 + 0) / 2)


def test_card_precision_leaves_cards_caught_on_earlier_days_out() -> None:
    day1 = datetime(2026, 1, 1, 10, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    frame = pd.DataFrame(
        {
            "event_time": [day1, day1, day2, day2, day2],
            "customer_id": ["a", "b", "a", "b", "c"],
            "is_fraud": [1, 0, 1, 0, 1],
            "score": [0.9, 0.1, 0.9, 0.8, 0.5],
        }
    )
    # Day 1: a is caught (1/1). Day 2: a is blocked already, so the top 1 is b, not a fraud (0/1).
    assert card_precision_at_k(frame, k=1) == pytest.approx(0.5)
    # With room for two on day 2, the check after b goes to c, a fraud not yet caught.
    assert card_precision_at_k(frame, k=2) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_daily_budget_threshold_and_operating_point() -> None:
    scores = np.linspace(0, 1, 1000)
    threshold = threshold_for_daily_budget(scores, days=10, alerts_per_day=5)
    assert int((scores >= threshold).sum()) == 50
    frame = pd.DataFrame(
        {
            "event_time": [datetime(2026, 1, 1 + i % 10, tzinfo=UTC) for i in range(1000)],
            "customer_id": [f"c{i}" for i in range(1000)],
            "is_fraud": (scores > 0.97).astype(int),
            "amount": np.full(1000, 10.0),
        }
    )
    report = quality_report(frame, scores, threshold, 0.99, review_cost_per_alert=1.0)
    assert report.recall_at_review == pytest.approx(1.0)
    assert report.precision_at_review == pytest.approx(30 / 50)
    assert report.alerts_per_day == pytest.approx(5)
    assert report.net_savings == pytest.approx(30 * 10 - 50)

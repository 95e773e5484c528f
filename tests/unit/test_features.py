"""The one feature definition: offline and online agree, windows have the documented bounds, no label leaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraudops.features import FEATURE_NAMES, FeatureConfig
from fraudops.features.offline import compute_features
from fraudops.features.online import OnlineFeatureState
from fraudops.simulator import SimulatorConfig, derive_labels, simulate

T0 = datetime(2024, 1, 1, 12, tzinfo=UTC)  # a Monday


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame]:
    transactions = simulate(SimulatorConfig(n_customers=150, n_terminals=300, n_days=45, seed=11)).transactions
    return transactions, derive_labels(transactions)


def replay_online(transactions: pd.DataFrame, labels: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """Feed transactions and labels in time order, as the scorer receives them, and collect its features."""
    events = [(t, 1, i) for i, t in enumerate(transactions["event_time"])]
    events += [(k, 0, j) for j, k in enumerate(labels["known_at"])]
    events.sort(key=lambda e: (e[0], e[1]))  # a label known at the very moment of a payment is already known
    state = OnlineFeatureState(config)
    rows = np.empty((len(transactions), len(FEATURE_NAMES)))
    ids = transactions["transaction_id"].astype(str).tolist()
    times = [moment.to_pydatetime() for moment in pd.to_datetime(transactions["event_time"], utc=True)]
    customers = transactions["customer_id"].astype(str).tolist()
    terminals = transactions["terminal_id"].astype(str).tolist()
    amounts = transactions["amount"].astype(float).tolist()
    label_ids = labels["transaction_id"].astype(str).tolist()
    verdicts = labels["is_fraud"].astype(bool).tolist()
    known = [moment.to_pydatetime() for moment in pd.to_datetime(labels["known_at"], utc=True)]
    for _, kind, i in events:
        if kind == 0:
            state.observe_label(label_ids[i], verdicts[i], known[i])
        else:
            rows[i] = state.features(ids[i], times[i], customers[i], terminals[i], amounts[i])
    return pd.DataFrame(rows, columns=list(FEATURE_NAMES), index=transactions.index)


@pytest.mark.parametrize("delay_days", [7, 3])
def test_online_equals_offline(simulated: tuple[pd.DataFrame, pd.DataFrame], delay_days: int) -> None:
    transactions, labels = simulated
    config = FeatureConfig(label_delay_days=delay_days)
    offline = compute_features(transactions, labels, config)
    online = replay_online(transactions, labels, config)
    assert offline.columns.tolist() == list(FEATURE_NAMES)
    pd.testing.assert_frame_equal(offline, online, check_exact=False, rtol=1e-12, atol=1e-9)
    assert (offline["terminal_risk_7d"] > 0).any(), "the parity check must exercise known frauds"


def _frame(rows: list[tuple[str, datetime, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["transaction_id", "event_time", "customer_id", "terminal_id", "amount"])


def test_customer_windows_include_the_current_payment_and_end_exactly_at_the_width() -> None:
    frame = _frame(
        [
            ("a", T0, "c", "t1", 10.0),
            ("b", T0 + timedelta(hours=23, minutes=59), "c", "t2", 20.0),
            ("c", T0 + timedelta(days=1), "c", "t3", 30.0),  # exactly 1 day after a: a is out of (t-1d, t]
            ("d", T0 + timedelta(days=1, minutes=30), "c", "t3", 60.0),
        ]
    )
    features = compute_features(frame)
    assert features["customer_nb_tx_1d"].tolist() == [1, 2, 2, 3]
    assert features["customer_avg_amount_1d"].tolist() == [10, 15, 25, 110 / 3]
    assert features["customer_nb_tx_7d"].tolist() == [1, 2, 3, 4]
    assert features["customer_nb_tx_1h"].tolist() == [1, 1, 2, 3]
    assert np.isnan(features["customer_hours_since_previous"].iloc[0])
    assert features["customer_hours_since_previous"].iloc[3] == pytest.approx(0.5)
    assert features["amount_to_customer_avg_30d"].iloc[3] == pytest.approx(60 / 30)


def test_calendar_flags() -> None:
    saturday_night = datetime(2024, 1, 6, 6, 59, tzinfo=UTC)
    monday_morning = datetime(2024, 1, 8, 7, 0, tzinfo=UTC)
    features = compute_features(_frame([("a", saturday_night, "c", "t", 1.0), ("b", monday_morning, "c", "t", 1.0)]))
    assert features["is_weekend"].tolist() == [1, 0]
    assert features["is_night"].tolist() == [1, 0]


def test_terminal_windows_are_shifted_by_the_label_delay() -> None:
    frame = _frame(
        [
            ("old", T0, "c1", "t", 5.0),
            ("now", T0 + timedelta(days=7), "c2", "t", 5.0),  # old is exactly at t - delay: inside (.., t - d]
            ("later", T0 + timedelta(days=8), "c3", "t", 5.0),  # old at t - d - 1d: outside the 1-day window
        ]
    )
    features = compute_features(frame, config=FeatureConfig(label_delay_days=7))
    assert features["terminal_nb_tx_1d"].tolist() == [0, 1, 0]
    assert features["terminal_nb_tx_7d"].tolist() == [0, 1, 1]


def test_a_label_counts_only_once_known() -> None:
    """No leakage: a fraud whose label becomes known after a payment is invisible to that payment."""
    frame = _frame(
        [
            ("fraud", T0, "c1", "t", 500.0),
            ("before-known", T0 + timedelta(days=10), "c2", "t", 5.0),
            ("after-known", T0 + timedelta(days=21), "c3", "t", 5.0),
        ]
    )
    labels = pd.DataFrame({"transaction_id": ["fraud"], "is_fraud": [1], "known_at": [T0 + timedelta(days=20)]})
    features = compute_features(frame, labels, FeatureConfig(label_delay_days=7))
    assert features["terminal_nb_tx_30d"].tolist() == [0, 1, 2]
    assert features["terminal_risk_30d"].tolist() == [0, 0, 0.5]


def test_no_feature_uses_a_label_known_after_the_payment(simulated: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """For sampled payments, hiding every label known after the payment changes none of its features."""
    transactions, labels = simulated
    everything = compute_features(transactions, labels)
    rng = np.random.default_rng(5)
    for position in rng.choice(len(transactions), size=25, replace=False):
        moment = transactions["event_time"].iloc[position]
        known_then = labels[labels["known_at"] <= moment]
        hidden = compute_features(transactions, known_then)
        pd.testing.assert_series_equal(hidden.iloc[position], everything.iloc[position])


def test_own_label_never_influences_own_features(simulated: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, labels = simulated
    flipped = labels.assign(is_fraud=1 - labels["is_fraud"], known_at=transactions["event_time"].min())
    a = compute_features(transactions, labels)
    b = compute_features(transactions, flipped)
    own_only = ["amount", "is_weekend", "is_night", "customer_nb_tx_1d", "customer_avg_amount_30d"]
    pd.testing.assert_frame_equal(a[own_only], b[own_only])
    # Terminal risks differ (other payments' labels), but a payment's own label is never in its window:
    # its terminal window ends a whole delay before it.
    assert (a["terminal_risk_7d"] != b["terminal_risk_7d"]).any()


def test_labels_of_unknown_transactions_are_ignored() -> None:
    state = OnlineFeatureState()
    assert state.observe_label("never-seen", True, T0) is False
    assert state.labels_ignored == 1

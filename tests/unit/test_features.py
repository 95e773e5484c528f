"""The one feature definition: offline and online agree, windows have the documented bounds, no label leaks."""

from __future__ import annotations

import itertools
import math
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraudops.features import FEATURE_NAMES, FeatureConfig
from fraudops.features import online as online_module
from fraudops.features.definition import MS_PER_DAY, MS_PER_HOUR
from fraudops.features.offline import compute_features, to_milliseconds
from fraudops.features.online import OnlineFeatureStore, TransactionColumns, epoch_millis
from fraudops.simulator import LabelDelayConfig, SimulatorConfig, derive_labels, simulate

T0 = datetime(2024, 1, 1, 12, tzinfo=UTC)  # a Monday


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame]:
    transactions = simulate(SimulatorConfig(n_customers=150, n_terminals=300, n_days=45, seed=11)).transactions
    return transactions, derive_labels(transactions)


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


EARLIER = "max_amount_to_customer_avg_30d_previous_7d"


def test_the_earlier_ratio_maximum_looks_at_earlier_payments_of_the_previous_7_days_only() -> None:
    frame = _frame(
        [
            ("a", T0, "c", "t1", 10.0),  # ratio 1
            ("b", T0 + timedelta(hours=1), "c", "t1", 50.0),  # ratio 50 / 30
            ("c", T0 + timedelta(hours=1), "c", "t1", 30.0),  # same millisecond as b: b does not count for it
            ("d", T0 + timedelta(days=7), "c", "t1", 10.0),  # a is exactly 7 days back: out of (t - 7d, t)
            ("e", T0 + timedelta(days=7, hours=1), "c", "t1", 10.0),  # b and c too
            ("x", T0 + timedelta(hours=2), "other", "t1", 1000.0),  # another customer's payment never counts
        ]
    )
    features = compute_features(frame)
    ratios = features["amount_to_customer_avg_30d"]
    assert ratios.tolist()[:3] == [1.0, 50 / 30, 1.0]
    earlier = features[EARLIER].tolist()
    assert math.isnan(earlier[0])
    assert earlier[1:4] == [1.0, 1.0, 50 / 30]
    assert earlier[4] == ratios.iloc[3]
    assert math.isnan(earlier[5])


def test_the_earlier_ratio_maximum_ignores_the_payment_itself_and_later_ones(
    simulated: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """Inflating every amount from some time on changes no payment's maximum up to that time."""
    transactions, labels = simulated
    everything = compute_features(transactions, labels)
    rng = np.random.default_rng(7)
    for position in rng.choice(len(transactions), size=5, replace=False):
        moment = transactions["event_time"].iloc[position]
        later = transactions["event_time"] >= moment
        inflated = transactions.assign(amount=transactions["amount"].where(~later, transactions["amount"] * 10))
        changed = compute_features(inflated, labels)
        upto = transactions["event_time"] <= moment
        pd.testing.assert_series_equal(changed.loc[upto, EARLIER], everything.loc[upto, EARLIER])
        assert not changed.loc[~upto, EARLIER].equals(everything.loc[~upto, EARLIER])


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
    own_only = ["amount", "is_weekend", "is_night", "customer_nb_tx_1d", "customer_avg_amount_30d", EARLIER]
    pd.testing.assert_frame_equal(a[own_only], b[own_only])
    # Terminal risks differ (other payments' labels), but a payment's own label is never in its window:
    # its terminal window ends a whole delay before it.
    assert (a["terminal_risk_7d"] != b["terminal_risk_7d"]).any()


# ----------------------------------------------------------------------------------------------- online store

AVERAGES = [i for i, name in enumerate(FEATURE_NAMES) if "avg" in name]
EXACT = [i for i in range(len(FEATURE_NAMES)) if i not in AVERAGES]


def assert_same_features(online: np.ndarray, offline: pd.DataFrame | np.ndarray) -> None:
    """Counts, risks, times and flags equal exactly (NaN equal NaN); averages up to float rounding.

    Offline averages are differences of one running sum over the whole dataset, so they carry an absolute
    rounding of about 1e-10 here, hence atol beside rtol.
    """
    expected = offline.to_numpy() if isinstance(offline, pd.DataFrame) else offline
    assert online.shape == expected.shape
    np.testing.assert_array_equal(online[:, EXACT], expected[:, EXACT])
    np.testing.assert_allclose(online[:, AVERAGES], expected[:, AVERAGES], rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    """60 days, 300 customers; analysts confirm some frauds within days, chargebacks come up to a month late."""
    transactions = simulate(SimulatorConfig(n_customers=300, n_terminals=600, n_days=60, seed=11)).transactions
    labels = derive_labels(transactions, LabelDelayConfig(fraud_analyst_share=0.3, seed=1))
    lateness = labels["known_at"] - labels["transaction_id"].map(transactions.set_index("transaction_id")["event_time"])
    frauds = labels["is_fraud"].astype(bool)
    delay = pd.Timedelta(days=FeatureConfig().label_delay_days)
    assert (lateness[frauds] < delay).sum() > 100, "some frauds must be known before the window reaches them"
    assert (lateness[frauds] > delay).sum() > 100, "some frauds must be known only after"
    return transactions, labels


def batch_bounds(n: int, seed: int = 0, *, largest: int = 3000, long_batch: bool = True) -> list[tuple[int, int]]:
    """Micro-batches of sizes 1, 7, 500 and random, and (`long_batch`) a few spanning more than a label delay."""
    rng = np.random.default_rng(seed)
    sizes = [1, 7, 500, largest, 9000] if long_batch else [1, 7, 500, largest]
    bounds, start, turn = [], 0, 0
    while start < n:
        size = sizes[turn % len(sizes)] if turn < 30 else largest
        size = int(rng.integers(1, size + 1)) if size == largest else size
        bounds.append((start, min(n, start + size)))
        start, turn = start + size, turn + 1
    return bounds


def columns(frame: pd.DataFrame) -> TransactionColumns:
    return TransactionColumns.from_frame(frame)


def observe(store: OnlineFeatureStore, labels: pd.DataFrame) -> None:
    store.observe_labels(
        labels["transaction_id"].tolist(), labels["is_fraud"].to_numpy(bool), to_milliseconds(labels["known_at"])
    )


def score_stream(
    store: OnlineFeatureStore,
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    labels_first: bool = False,
    deliver_twice: bool = False,
    bounds: list[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Scores micro-batches in order; before each batch, the labels known by its last payment (or all labels
    at the start); with `deliver_twice`, each batch's labels come again before the next batch."""
    labels = labels.sort_values("known_at", kind="stable", ignore_index=True)
    known = to_milliseconds(labels["known_at"])
    times = to_milliseconds(transactions["event_time"])
    out = np.empty((len(transactions), len(FEATURE_NAMES)))
    observed = len(labels) if labels_first else 0
    if labels_first:
        observe(store, labels)
    previous = labels.iloc[:0]
    for start, stop in bounds or batch_bounds(len(transactions)):
        upto = max(observed, int(np.searchsorted(known, times[stop - 1], side="right")))
        if deliver_twice:
            observe(store, previous)
        previous = labels.iloc[observed:upto]
        observe(store, previous)
        observed = upto
        out[start:stop] = store.score(columns(transactions.iloc[start:stop]))
    return out


@pytest.mark.parametrize("delay_days", [7, 3])
def test_online_micro_batches_equal_offline(stream: tuple[pd.DataFrame, pd.DataFrame], delay_days: int) -> None:
    transactions, labels = stream
    config = FeatureConfig(label_delay_days=delay_days)
    offline = compute_features(transactions, labels, config)
    store = OnlineFeatureStore(config)
    assert_same_features(score_stream(store, transactions, labels), offline)
    assert (offline["terminal_risk_7d"] > 0).mean() > 0.05, "the parity check must exercise known frauds"
    assert offline[EARLIER].notna().mean() > 0.9, "and payments with earlier ones in the previous 7 days"
    assert store.stats()["pending_labels"] == 0


def test_labels_arriving_before_their_transactions_wait(stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, labels = stream
    store = OnlineFeatureStore()
    observe(store, labels)
    assert store.stats()["pending_labels"] == len(labels)
    assert_same_features(score_stream(store, transactions, labels.iloc[:0]), compute_features(transactions, labels))
    assert store.stats()["pending_labels"] == 0


def test_labels_delivered_twice_count_once(stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, labels = stream
    online = score_stream(OnlineFeatureStore(), transactions, labels, deliver_twice=True)
    assert_same_features(online, compute_features(transactions, labels))


def test_other_partitions_remembered_ahead_count_for_terminals(stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Customers hashed into two groups: A is scored here, B (another instance's partitions) is remembered half a
    day ahead of each batch of A. A's rows get the offline values: B's later payments never reach their windows.
    (A batch of A spans less than a label delay, so the B payments its terminal windows need are there.)"""
    transactions, labels = stream
    group_b = np.array([zlib.crc32(str(c).encode()) % 2 == 1 for c in transactions["customer_id"]])
    a_rows, b_rows = transactions[~group_b], transactions[group_b]
    a_times, b_times = to_milliseconds(a_rows["event_time"]), to_milliseconds(b_rows["event_time"])
    labels = labels.sort_values("known_at", kind="stable", ignore_index=True)
    known = to_milliseconds(labels["known_at"])
    store = OnlineFeatureStore()
    out = np.empty((len(a_rows), len(FEATURE_NAMES)))
    b_done = observed = 0
    for start, stop in batch_bounds(len(a_rows), seed=3, largest=1500, long_batch=False):
        frontier = a_times[start] + 12 * MS_PER_HOUR
        b_upto = int(np.searchsorted(b_times, frontier, side="right"))
        upto = int(np.searchsorted(known, max(frontier, a_times[stop - 1]), side="right"))
        observe(store, labels.iloc[observed:upto])
        observed = upto
        if b_upto > b_done:
            store.remember(columns(b_rows.iloc[b_done:b_upto]))
            b_done = b_upto
        out[start:stop] = store.score(columns(a_rows.iloc[start:stop]))
    expected = compute_features(transactions, labels)[~group_b]
    assert_same_features(out, expected)


@pytest.mark.parametrize("held", [True, False])
def test_a_hold_keeps_what_a_lagging_partition_needs(stream: tuple[pd.DataFrame, pd.DataFrame], held: bool) -> None:
    """B runs 25 days ahead of A: holding A's position keeps A's values exact; without it they are not."""
    transactions, labels = stream
    group_b = np.array([zlib.crc32(str(c).encode()) % 2 == 1 for c in transactions["customer_id"]])
    a_rows, b_rows = transactions[~group_b], transactions[group_b]
    a_times, b_times = to_milliseconds(a_rows["event_time"]), to_milliseconds(b_rows["event_time"])
    store = OnlineFeatureStore()
    observe(store, labels)
    out = np.empty((len(a_rows), len(FEATURE_NAMES)))
    b_done = 0
    for start, stop in batch_bounds(len(a_rows), seed=4, largest=1500, long_batch=False):
        if held:
            store.hold(int(a_times[start]))
        b_upto = int(np.searchsorted(b_times, a_times[start] + 25 * MS_PER_DAY, side="right"))
        if b_upto > b_done:
            store.remember(columns(b_rows.iloc[b_done:b_upto]))
            b_done = b_upto
        out[start:stop] = store.score(columns(a_rows.iloc[start:stop]))
    expected = compute_features(transactions, labels)[~group_b].to_numpy()
    if held:
        assert_same_features(out, expected)
    else:
        assert not np.array_equal(out[:, EXACT], expected[:, EXACT])


@pytest.mark.parametrize("part_rows", [None, 997])
def test_state_rebuilt_from_a_long_log_scores_like_offline(
    stream: tuple[pd.DataFrame, pd.DataFrame], part_rows: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 days replayed in one `remember` (their labels observed first, so pending), then payments scored.
    `part_rows`: a log longer than a scored batch may be, remembered in parts."""
    transactions, labels = stream
    cut = int((transactions["event_time"] < transactions["event_time"].iloc[0] + pd.Timedelta(days=50)).sum())
    log, live = transactions.iloc[:cut], transactions.iloc[cut:]
    known_then = labels["known_at"] <= log["event_time"].max()
    store = OnlineFeatureStore()
    observe(store, labels[known_then])
    with monkeypatch.context() as patched:
        if part_rows is not None:
            patched.setattr(online_module, "_MAX_BATCH_ROWS", part_rows)
        store.remember(columns(log))
    assert store.stats()["pending_labels"] == 0
    assert store.stats()["recent_transactions"] < 0.85 * len(log), "days past the horizon are forgotten"
    online = score_stream(store, live, labels[~known_then])
    assert_same_features(online, compute_features(transactions, labels).iloc[cut:])


def test_a_reversed_fraud_stops_counting(stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Each payment sees the latest verdict known at its time: reversals before the fraud enters any window
    never show; reversals after it count until they are known."""
    transactions, labels = stream
    times = transactions.set_index("transaction_id")["event_time"]
    frauds = labels[labels["is_fraud"].astype(bool)].sample(12, random_state=2)
    lateness = pd.to_timedelta(np.resize([2, 9, 12, 20], len(frauds)), unit="D")
    reversals = frauds.assign(
        is_fraud=False,
        known_at=np.maximum(frauds["known_at"] + pd.Timedelta(hours=1), frauds["transaction_id"].map(times) + lateness),
    )
    everything = pd.concat([labels, reversals], ignore_index=True)
    online = score_stream(OnlineFeatureStore(), transactions, everything)
    # Offline takes the latest verdict of each transaction: compute it once per set of reversals known.
    moments = np.sort(reversals["known_at"].unique())
    event_times = transactions["event_time"].to_numpy()
    expected = np.empty_like(online)
    edges = [pd.Timestamp.min.tz_localize("UTC"), *moments, pd.Timestamp.max.tz_localize("UTC")]
    for low, high in itertools.pairwise(edges):
        rows = (event_times >= low) & (event_times < high)
        if rows.any():
            known_reversals = reversals[reversals["known_at"] <= low]
            expected[rows] = compute_features(transactions, pd.concat([labels, known_reversals]))[rows].to_numpy()
    assert_same_features(online, expected)
    never_shown = compute_features(transactions, labels).to_numpy()
    assert not np.array_equal(never_shown[:, EXACT], expected[:, EXACT]), "reversals must change some risks"


def test_peek_gives_the_score_and_changes_nothing(stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, labels = stream
    store = OnlineFeatureStore()
    first, second = transactions.iloc[:20_000], transactions.iloc[20_000:21_000]
    labels = labels.sort_values("known_at", kind="stable")
    observe(store, labels[labels["known_at"] <= first["event_time"].max()])
    store.score(columns(first))
    newcomers = second.assign(customer_id="new-customer", terminal_id="new-terminal").iloc[:3]
    batch = columns(pd.concat([second, newcomers]))
    before = store.stats()
    peeked = store.peek(batch)
    assert store.stats() == before
    np.testing.assert_array_equal(store.peek(batch), peeked)
    np.testing.assert_array_equal(store.score(batch), peeked)
    assert store.stats() != before
    assert OnlineFeatureStore().peek(batch).shape == (len(batch), len(FEATURE_NAMES))


# Hand-made streams: (transaction id, minutes after T0, customer, terminal, amount)
Row = tuple[str, float, str, str, float]


def _columns(rows: list[Row]) -> TransactionColumns:
    base = epoch_millis(T0)
    return TransactionColumns(
        transaction_ids=[r[0] for r in rows],
        customer_ids=[r[2] for r in rows],
        terminal_ids=[r[3] for r in rows],
        times_ms=np.array([base + round(r[1] * 60_000) for r in rows], dtype=np.int64),
        amounts=np.array([r[4] for r in rows], dtype=np.float64),
    )


def _column(features: np.ndarray, name: str) -> list[float]:
    values: list[float] = features[:, FEATURE_NAMES.index(name)].tolist()
    return values


@pytest.mark.parametrize("split", [False, True])
def test_same_millisecond_payments_count_in_processing_order(split: bool) -> None:
    rows: list[Row] = [("a", 0, "c", "t", 10.0), ("b", 0, "c", "t", 20.0), ("c", 0, "c", "t", 30.0)]
    store = OnlineFeatureStore()
    if split:
        features = np.vstack([store.score(_columns(rows[:1])), store.score(_columns(rows[1:]))])
    else:
        features = store.score(_columns(rows))
    assert _column(features, "customer_nb_tx_1h") == [1, 2, 3]
    assert _column(features, "customer_avg_amount_1d") == [10, 15, 20]
    assert _column(features, "customer_hours_since_previous")[1:] == [0, 0]
    assert math.isnan(_column(features, "customer_hours_since_previous")[0])
    # Payments of the same millisecond are never earlier payments, however they were processed.
    assert all(math.isnan(value) for value in _column(features, EARLIER))


@pytest.mark.parametrize("split", [False, True])
def test_a_payment_applied_earlier_with_a_later_time_is_outside_earlier_windows(split: bool) -> None:
    rows: list[Row] = [("x", 120, "c", "t", 10.0), ("y", 60, "c", "t", 20.0), ("z", 180, "c", "t", 60.0)]
    store = OnlineFeatureStore()
    features = np.vstack([store.score(_columns([row])) for row in rows]) if split else store.score(_columns(rows))
    assert _column(features, "customer_nb_tx_1d") == [1, 1, 3]
    assert _column(features, "customer_avg_amount_1d") == [10, 20, 30]
    hours = _column(features, "customer_hours_since_previous")
    assert math.isnan(hours[0])
    assert math.isnan(hours[1])
    assert hours[2] == 1.0  # from x (2h), the latest earlier payment, not y


@pytest.mark.parametrize("split", [False, True])
def test_earlier_payments_count_with_the_ratio_they_were_scored_with(split: bool) -> None:
    """x was scored before y, an earlier payment that arrived late: x keeps the ratio it had without y."""
    rows: list[Row] = [("w", 0, "c", "t", 10.0), ("x", 120, "c", "t", 40.0), ("y", 60, "c", "t", 20.0)]
    rows += [("z", 180, "c", "t", 60.0)]
    store = OnlineFeatureStore()
    features = np.vstack([store.score(_columns([row])) for row in rows]) if split else store.score(_columns(rows))
    assert _column(features, "amount_to_customer_avg_30d")[:3] == [1.0, 40 / 25, 20 / 15]
    earlier = _column(features, EARLIER)
    assert math.isnan(earlier[0])
    assert earlier[1:] == [1.0, 1.0, 40 / 25]  # y sees only w; z sees x's own 40 / 25, not 40 / (70 / 3)


def reference_features(rows: list[Row], verdicts: dict[str, tuple[bool, int]], config: FeatureConfig) -> np.ndarray:
    """The definition applied literally, payment by payment in processing order (small streams only)."""
    delay = config.label_delay_ms
    base = epoch_millis(T0)
    out = np.empty((len(rows), len(FEATURE_NAMES)))
    ratios: list[float] = []  # each payment's own amount_to_customer_avg_30d, as computed when it was applied
    for i, (_, minutes, customer, terminal, amount) in enumerate(rows):
        t = base + round(minutes * 60_000)
        applied = [(r[0], base + round(r[1] * 60_000), r[2], r[3], r[4]) for r in rows[: i + 1]]
        mine = [r for r in applied if r[2] == customer and r[1] <= t]
        moment = datetime.fromtimestamp(t / 1000, UTC)
        values = {"amount": amount, "is_weekend": float(moment.weekday() >= 5), "is_night": float(moment.hour <= 6)}
        for name, width in (("1h", MS_PER_HOUR), ("1d", MS_PER_DAY), ("7d", 7 * MS_PER_DAY), ("30d", 30 * MS_PER_DAY)):
            window = [r[4] for r in mine if r[1] > t - width]
            values[f"customer_nb_tx_{name}"] = len(window)
            values[f"customer_avg_amount_{name}"] = math.fsum(window) / len(window)
        earlier = [r[1] for r in mine[:-1]]
        values["customer_hours_since_previous"] = (t - max(earlier)) / MS_PER_HOUR if earlier else math.nan
        values["amount_to_customer_avg_30d"] = amount / values["customer_avg_amount_30d"]
        ratios.append(values["amount_to_customer_avg_30d"])
        earlier_ratios = [
            ratios[j] for j, r in enumerate(applied[:-1]) if r[2] == customer and t - 7 * MS_PER_DAY < r[1] < t
        ]
        values[EARLIER] = max((ratio for ratio in earlier_ratios if not math.isnan(ratio)), default=math.nan)
        for days in (1, 7, 30):
            seen = [r for r in applied if r[3] == terminal and t - delay - days * MS_PER_DAY < r[1] <= t - delay]
            frauds = [r for r in seen if verdicts.get(r[0], (False, 0))[0] and verdicts[r[0]][1] <= t]
            values[f"terminal_nb_tx_{days}d"] = len(seen)
            values[f"terminal_risk_{days}d"] = len(frauds) / len(seen) if seen else 0.0
        out[i] = [values[name] for name in FEATURE_NAMES]
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("remembered", [False, True])
def test_out_of_order_streams_follow_the_definition_row_by_row(seed: int, remembered: bool) -> None:
    """Shuffled payments with same-millisecond ties, in random micro-batches, against the literal definition.
    With `remembered`, some batches are remembered instead of scored (another instance's rows, a rebuild):
    the rows scored after them get the same values."""
    rng = np.random.default_rng(seed)
    n = 300
    minutes = np.sort(rng.integers(0, 20 * 24 * 60, n)).astype(float)
    minutes[rng.random(n) < 0.2] = minutes[0]  # ties
    swaps = rng.choice(n, size=(n // 4, 2))
    for i, j in swaps:  # local and distant inversions of the processing order
        minutes[[i, j]] = minutes[[j, i]]
    rows: list[Row] = [
        (
            f"tx{i}",
            float(minutes[i]),
            f"c{rng.integers(5)}",
            f"t{rng.integers(3)}",
            float(rng.integers(1, 10_000)) / 100,
        )
        for i in range(n)
    ]
    verdicts = {
        r[0]: (True, epoch_millis(T0) + round((r[1] + float(rng.integers(0, 15 * 24 * 60))) * 60_000))
        for r in rows
        if rng.random() < 0.3
    }
    config = FeatureConfig(label_delay_days=2)
    store = OnlineFeatureStore(config)
    store.observe_labels(list(verdicts), np.ones(len(verdicts), bool), np.array([k for _, k in verdicts.values()]))
    parts, start = [], 0
    scored = np.ones(n, dtype=bool)
    while start < n:
        stop = min(n, start + int(rng.choice([1, 3, 40, 150])))
        if remembered and rng.random() < 0.4:
            store.remember(_columns(rows[start:stop]))
            scored[start:stop] = False
        else:
            parts.append(store.score(_columns(rows[start:stop])))
        start = stop
    online = np.vstack(parts)
    expected = reference_features(rows, verdicts, config)[scored]
    np.testing.assert_array_equal(online[:, EXACT], expected[:, EXACT])
    np.testing.assert_allclose(online[:, AVERAGES], expected[:, AVERAGES], rtol=1e-12)
    assert (online[:, FEATURE_NAMES.index("terminal_risk_7d")] > 0).any()


def test_pruning_keeps_values_exact_at_the_retention_boundary() -> None:
    """Two payments every 10 minutes (same millisecond, often split between batches) for 120 days: window bounds
    fall exactly on payments, the store forgets (many times) everything at or before newest - retention (no
    slack), and the values stay those of offline. A customer silent for 55 days still gets its time since
    the previous payment, forgotten long ago."""
    rows: list[Row] = []
    for k, minute in enumerate(range(0, 120 * 24 * 60, 10)):
        rows.append((f"a{k}", minute, f"c{k % 2}", f"t{k % 3}", 1.0 + (k % 7)))
        rows.append((f"b{k}", minute, "d", f"t{(k + 1) % 3}", 2.0 + (k % 5)))
    quiet: list[Row] = [("q1", 5 * 24 * 60, "quiet", "t0", 50.0), ("q2", 60 * 24 * 60, "quiet", "t1", 70.0)]
    quiet += [("q3", 90 * 24 * 60, "quiet", "t2", 10.0)]  # exactly 30 days after q2
    rows = sorted(rows + quiet, key=lambda r: r[1])
    frame = pd.DataFrame(
        [(r[0], T0 + timedelta(minutes=r[1]), r[2], r[3], r[4]) for r in rows],
        columns=["transaction_id", "event_time", "customer_id", "terminal_id", "amount"],
    )
    frauds = frame[frame["transaction_id"].str.endswith("5")]
    labels = pd.DataFrame(
        {
            "transaction_id": frauds["transaction_id"],
            "is_fraud": True,
            "known_at": frauds["event_time"] + pd.to_timedelta(np.arange(len(frauds)) % 20, unit="D"),
        }
    )
    store = OnlineFeatureStore(late_slack_ms=0)
    online = score_stream(store, frame, labels, bounds=batch_bounds(len(frame), largest=300, long_batch=False))
    assert_same_features(online, compute_features(frame, labels))
    stats = store.stats()
    assert stats["customer_rows"] < len(frame) / 2, "old customer rows must have been dropped"
    assert stats["terminal_rows"] < len(frame) / 2, "old terminal rows must have been dropped"
    assert stats["recent_transactions"] < len(frame) / 2
    hours = dict(
        zip(frame["transaction_id"], online[:, FEATURE_NAMES.index("customer_hours_since_previous")], strict=True)
    )
    assert hours["q2"] == 55 * 24
    assert hours["q3"] == 30 * 24


def test_online_features_never_use_a_label_known_after_the_payment(stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Every label observed before any payment (future verdicts included) changes no payment's features."""
    transactions, labels = stream
    in_time = score_stream(OnlineFeatureStore(), transactions, labels)
    all_ahead = score_stream(OnlineFeatureStore(), transactions, labels, labels_first=True)
    np.testing.assert_array_equal(all_ahead, in_time)

    store = OnlineFeatureStore()
    store.observe_labels(["fraud"], np.array([True]), np.array([epoch_millis(T0 + timedelta(days=20))]))
    rows: list[Row] = [("fraud", 0, "c1", "t", 500.0), ("before", 10 * 24 * 60, "c2", "t", 5.0)]
    rows += [("after", 21 * 24 * 60, "c3", "t", 5.0)]
    features = np.vstack([store.score(_columns([row])) for row in rows])
    assert _column(features, "terminal_nb_tx_30d") == [0, 1, 2]
    assert _column(features, "terminal_risk_30d") == [0, 0, 0.5]


def test_pending_labels_are_bounded_by_the_horizon() -> None:
    store = OnlineFeatureStore(late_slack_ms=0)
    store.observe_labels(["never-seen", "old"], np.array([True, True]), np.array([epoch_millis(T0)] * 2))
    assert store.stats()["pending_labels"] == 2
    minutes = np.arange(0, 60 * 24 * 60, 5.0)
    for chunk in np.array_split(minutes, 20):
        store.remember(_columns([(f"p{m}", float(m), "c", "t", 1.0) for m in chunk]))
    assert store.stats()["pending_labels"] == 0
    store.observe_labels(["too-old"], np.array([True]), np.array([epoch_millis(T0)]))
    assert store.stats()["pending_labels"] == 0


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="label delay"):
        OnlineFeatureStore(FeatureConfig(label_delay_days=0))
    store = OnlineFeatureStore()
    store.score(_columns([("a", 0, "c", "t", 1.0)]))
    with pytest.raises(ValueError, match="event times must lie within"):
        store.score(_columns([("b", 60 * 365 * 24 * 60, "c", "t", 1.0)]))
    with pytest.raises(ValueError, match="same length"):
        TransactionColumns(["a"], ["c"], ["t"], np.array([1, 2]), np.array([1.0]))


def test_columns_from_a_frame(stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, _ = stream
    batch = TransactionColumns.from_frame(transactions.iloc[:5])
    assert len(batch) == 5
    assert batch.times_ms.dtype == np.int64
    assert batch.times_ms[0] == epoch_millis(transactions["event_time"].iloc[0].to_pydatetime())
    assert list(batch.customer_ids) == transactions["customer_id"].iloc[:5].astype(str).tolist()


def test_the_store_knows_which_transactions_it_holds() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "event_time": [T0, T0 + timedelta(minutes=1)],
            "customer_id": ["c1", "c2"],
            "terminal_id": ["t1", "t1"],
            "amount": [10.0, 20.0],
        }
    )
    store = OnlineFeatureStore()
    store.score(TransactionColumns.from_frame(frame.iloc[:1]))
    assert store.seen(["a", "b", "zz"]).tolist() == [True, False, False]
    store.remember(TransactionColumns.from_frame(frame.iloc[1:]))
    assert store.seen(["a", "b"]).tolist() == [True, True]

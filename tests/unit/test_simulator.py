"""The transaction simulator: the Handbook's distributions and fraud rules, drift, late labels, real data."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

from fraudops.cli import app
from fraudops.contracts.messages import ID_PATTERN
from fraudops.errors import InvalidInputError
from fraudops.simulator import (
    CARD_TESTING,
    COLUMNS,
    DRIFT_SCENARIOS,
    ULB_CREDITCARD,
    ColumnMapping,
    ConstantId,
    DriftSpec,
    HashedId,
    LabelDelayConfig,
    SimulationResult,
    SimulatorConfig,
    TriangularDelay,
    apply_mapping,
    derive_labels,
    load_real_dataset,
    simulate,
)

SMALL = SimulatorConfig(n_customers=500, n_terminals=1_000, n_days=60, seed=11)
DRIFT_START = 30
DAY = pd.Timedelta(days=1)
HB = SMALL.handbook


@pytest.fixture(scope="module")
def base() -> SimulationResult:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def card_testing() -> SimulationResult:
    return simulate(replace(SMALL, drifts=(DriftSpec("card_testing", DRIFT_START),)))


@pytest.fixture(scope="module")
def population_shift() -> SimulationResult:
    return simulate(replace(SMALL, drifts=(DriftSpec("population_shift", DRIFT_START),)))


# --- analytic expectations from the Handbook's parameters -------------------------------------------------


def p_time_kept() -> float:
    """P(a normal time of day falls within the day): the share of drawn transactions that are kept."""
    half_day = 86_400 / 2
    return math.erf((half_day / HB.time_of_day_std) / math.sqrt(2))


def customer_rates(result: SimulationResult) -> NDArray[np.float64]:
    """Expected kept transactions per day of each customer (none without terminals)."""
    c = result.customers
    has_terminals = c["n_terminals"].to_numpy() > 0
    return np.asarray(c["mean_nb_tx_per_day"].to_numpy() * p_time_kept() * has_terminals, dtype=np.float64)


def day_of(result: SimulationResult, frame: pd.DataFrame | None = None) -> NDArray[np.int64]:
    rows = result.transactions if frame is None else frame
    start = pd.Timestamp(result.config.start_date, tz="UTC")
    return np.asarray((rows["event_time"] - start) // DAY, dtype=np.int64)


def compromises(result: SimulationResult, scenario: int) -> list[tuple[str, int, int]]:
    """(entity id, first day, end day exclusive) of each compromise of `scenario`."""
    rows = result.compromises[result.compromises["fraud_scenario"] == scenario]
    return [
        (str(e), int(a), int(b))
        for e, a, b in zip(
            rows["entity_id"].tolist(), rows["start_day"].tolist(), rows["end_day"].tolist(), strict=True
        )
    ]


def covered_pairs(result: SimulationResult) -> set[tuple[str, int]]:
    """(terminal id, day) pairs inside a compromised terminal's window."""
    return {(t, day) for t, start, end in compromises(result, 2) for day in range(start, end)}


def terminal_day_coverage(n_days: int, per_day: int, n_terminals: int, window: int) -> float:
    """Expected number of (terminal, day) pairs covered by the compromises, summed over days, per terminal."""
    covered = 0.0
    for day in range(n_days):
        starts = min(day, n_days - 2) - max(0, day - window + 1) + 1  # compromise days whose window holds `day`
        covered += 1 - (1 - per_day / n_terminals) ** max(starts, 0)
    return covered


# --- determinism and schema -------------------------------------------------------------------------------


def test_same_seed_same_dataset_other_seed_other_dataset(base: SimulationResult) -> None:
    again = simulate(SMALL)
    for name in ("transactions", "customers", "terminals", "compromises"):
        pd.testing.assert_frame_equal(getattr(base, name), getattr(again, name))
    other = simulate(replace(SMALL, seed=12))
    assert not base.transactions["amount"].equals(other.transactions["amount"])


def test_schema_ids_order_and_amounts(base: SimulationResult) -> None:
    tx = base.transactions
    assert tuple(tx.columns) == COLUMNS
    assert str(tx["event_time"].dtype) == "datetime64[ns, UTC]"
    assert tx["amount"].dtype == np.float64
    assert tx["is_fraud"].dtype == np.int8
    assert tx["fraud_scenario"].dtype == np.int8
    for column in ("transaction_id", "customer_id", "terminal_id", "currency"):
        assert all(isinstance(value, str) for value in tx[column]), column
    assert tx["transaction_id"].is_unique
    pattern = re.compile(ID_PATTERN)
    for column in ("transaction_id", "customer_id", "terminal_id"):
        assert tx[column].map(lambda v: bool(pattern.match(v))).all(), column
    assert (tx["currency"] == "EUR").all()
    assert tx["event_time"].is_monotonic_increasing
    days = day_of(base)
    assert days.min() >= 0
    assert days.max() < SMALL.n_days
    assert (tx["amount"] > 0).all()
    assert np.allclose(tx["amount"], tx["amount"].round(2))
    assert set(tx["is_fraud"].unique()) <= {0, 1}
    assert ((tx["fraud_scenario"] > 0) == (tx["is_fraud"] == 1)).all()


def test_profiles_follow_the_handbook(base: SimulationResult) -> None:
    c, t = base.customers, base.terminals
    assert len(c) == SMALL.n_customers
    assert len(t) == SMALL.n_terminals
    for frame in (c, t):
        assert frame["x"].between(0, 100).all()
        assert frame["y"].between(0, 100).all()
    assert c["mean_amount"].between(5, 100).all()
    assert np.allclose(c["std_amount"], c["mean_amount"] / 2)
    assert c["mean_nb_tx_per_day"].between(0, 4).all()
    # The available terminals are exactly those strictly within the radius (brute force on the small world).
    dist = np.hypot(
        c["x"].to_numpy()[:, None] - t["x"].to_numpy()[None, :], c["y"].to_numpy()[:, None] - t["y"].to_numpy()[None, :]
    )
    ids = t["terminal_id"].to_numpy()
    for i, available in enumerate(c["available_terminals"]):
        assert list(available) == list(ids[dist[i] < SMALL.radius])
    assert (c["n_terminals"] == c["available_terminals"].map(len)).all()
    # Every transaction uses one of its customer's terminals; customers without any have no transactions.
    genuine = base.transactions
    pairs = set(zip(genuine["customer_id"], genuine["terminal_id"], strict=True))
    allowed = {
        (cid, tid) for cid, terms in zip(c["customer_id"], c["available_terminals"], strict=True) for tid in terms
    }
    assert pairs <= allowed


def test_transactions_per_customer_day_match_the_parameters(base: SimulationResult) -> None:
    rates = customer_rates(base)
    observed = len(base.transactions)
    # Given the profiles, the count is Poisson with this mean: within 5 standard deviations.
    expected = rates.sum() * SMALL.n_days
    assert abs(observed - expected) < 5 * math.sqrt(expected), (observed, expected)
    # Unconditionally, a customer with terminals makes E[U(0, 4)] * P(time kept) = 2 * 0.969 a day.
    with_terminals = int((base.customers["n_terminals"] > 0).sum())
    per_customer_day = observed / (with_terminals * SMALL.n_days)
    sd = p_time_kept() * math.sqrt((16 / 12) / with_terminals + 2 / (with_terminals * SMALL.n_days))
    assert abs(per_customer_day - 2 * p_time_kept()) < 4 * sd, per_customer_day
    # Times of day: a normal around noon, cut to the day.
    seconds = (base.transactions["event_time"] - base.transactions["event_time"].dt.floor("D")).dt.total_seconds()
    assert abs(seconds.mean() - 43_200) < 300
    assert 0.9 * HB.time_of_day_std < seconds.std() < HB.time_of_day_std


# --- the Handbook's fraud scenarios -------------------------------------------------------------------------


def test_scenario_1_every_amount_above_220_is_fraud(base: SimulationResult) -> None:
    tx = base.transactions
    assert (tx.loc[tx["amount"] > 220, "is_fraud"] == 1).all()
    assert (tx.loc[tx["fraud_scenario"] == 1, "amount"] > 220).all()


def test_scenario_2_compromised_terminals_for_28_days(base: SimulationResult) -> None:
    tx = base.transactions
    terminals = compromises(base, 2)
    assert len(terminals) == 2 * (SMALL.n_days - 1)
    assert all(end == min(start + 28, SMALL.n_days) for _, start, end in terminals)
    covered = covered_pairs(base)
    days = day_of(base)
    in_window = np.array([(t, d) in covered for t, d in zip(tx["terminal_id"], days, strict=True)])
    # All transactions at a compromised terminal in its window are frauds (scenario 3 may overwrite the code) ...
    assert (tx.loc[in_window, "is_fraud"] == 1).all()
    assert tx.loc[in_window, "fraud_scenario"].isin([2, 3]).all()
    # ... and scenario 2 never labels anything else.
    assert not (tx.loc[~in_window, "fraud_scenario"] == 2).any()
    # Each compromise's frauds span at most 28 days.
    for terminal, start, end in terminals:
        hit = (tx["terminal_id"].to_numpy() == terminal) & (days >= start) & (days < end)
        if hit.any():
            assert days[hit].max() - days[hit].min() < 28


def test_scenario_3_amounts_are_multiplied_by_5(base: SimulationResult) -> None:
    without = simulate(replace(SMALL, handbook_scenarios=(1, 2)))
    tx, before = base.transactions, without.transactions
    # Scenario 3 changes amounts and labels only, so the rows line up one to one.
    pd.testing.assert_series_equal(tx["transaction_id"], before["transaction_id"])
    pd.testing.assert_series_equal(tx["customer_id"], before["customer_id"])
    picked = (tx["fraud_scenario"] == 3).to_numpy()
    assert picked.sum() > 0
    ratio = tx["amount"].to_numpy()[picked] / before["amount"].to_numpy()[picked]
    times = np.round(np.log(ratio) / np.log(5))  # 1, or 2 for a transaction picked on two overlapping days
    assert np.allclose(ratio, 5**times, rtol=1e-3)
    assert (times >= 1).all()
    assert (times == 1).mean() > 0.95
    assert np.array_equal(tx["amount"].to_numpy()[~picked], before["amount"].to_numpy()[~picked])
    # Only compromised customers' transactions inside their 14-day window are picked, and about a third of them.
    picks: dict[tuple[int, int], list[str]] = {}
    for customer, start, end in compromises(base, 3):
        picks.setdefault((start, end), []).append(customer)
    days = day_of(base)
    cust = tx["customer_id"].to_numpy()
    allowed = np.zeros(len(tx), dtype=bool)
    capacity = 0
    for (start, end), customers in picks.items():
        rows = np.isin(cust, customers) & (days >= start) & (days < end)
        allowed |= rows
        capacity += int(rows.sum()) // 3
    assert not (picked & ~allowed).any()
    assert 0.9 * capacity <= picked.sum() <= capacity


def test_fraud_counts_match_the_handbook_parameters(base: SimulationResult) -> None:
    """Expected frauds per scenario from the profiles and the compromises drawn, and the overall rate."""
    tx = base.transactions
    rates = customer_rates(base)
    n_days, n_terminals = SMALL.n_days, SMALL.n_terminals
    mean_amount = base.customers["mean_amount"].to_numpy()
    z = (HB.fraud_amount_threshold - mean_amount) / (mean_amount / 2)
    above = 0.5 * np.array([math.erfc(v / math.sqrt(2)) for v in z])  # P(N(m, m/2) > 220)

    # Scenario 2 given the compromised terminals: the expected transactions at them inside their windows.
    terminal_rate = dict.fromkeys(base.terminals["terminal_id"], 0.0)
    for rate, terms in zip(rates, base.customers["available_terminals"], strict=True):
        for t in terms:
            terminal_rate[t] += rate / len(terms)
    covered = covered_pairs(base)
    expected_2 = sum(terminal_rate[t] for t, _ in covered)
    days = day_of(base)
    in_window = [(t, d) in covered for t, d in zip(tx["terminal_id"], days, strict=True)]
    observed_2 = int(np.sum(in_window))
    assert abs(observed_2 - expected_2) < 5 * math.sqrt(expected_2), (observed_2, expected_2)

    # The rate implied by the parameters alone (averaged over which terminals and customers get compromised).
    e_tx = rates.sum() * n_days
    e_1 = (rates * above).sum() * n_days
    cover = terminal_day_coverage(n_days, HB.compromised_terminals_per_day, n_terminals, HB.terminal_compromise_days)
    e_2 = rates.sum() * cover
    windows = np.array([min(HB.customer_compromise_days, n_days - d) for d in range(n_days - 1)], dtype=float)
    e_3 = (rates.mean() * windows - 1 / 3).sum()  # a third of 3 customers' transactions, floored each day
    share_2 = e_2 / e_tx
    # Frauds of scenarios 1 and 3 at compromised terminals count once.
    expected = e_1 + e_2 + e_3 - (e_1 + e_3) * share_2
    # Its spread comes mostly from which terminals and customers are drawn (their rates vary a lot).
    terminal_rates = np.fromiter(terminal_rate.values(), dtype=float)
    window_2 = np.array([min(HB.terminal_compromise_days, n_days - d) for d in range(n_days - 1)], dtype=float)
    var = (
        HB.compromised_terminals_per_day * terminal_rates.var() * (window_2**2).sum()
        + HB.compromised_customers_per_day * rates.var() * ((windows / 3) ** 2).sum()
        + expected
    )
    frauds = int(tx["is_fraud"].sum())
    assert abs(frauds - expected) < 4 * math.sqrt(var), (frauds, expected, math.sqrt(var))
    assert abs(frauds / len(tx) - expected / e_tx) < 4 * math.sqrt(var) / e_tx
    # Scenario 1 alone is rare but follows the normal tail (Poisson given the profiles; scenario 3's x5 aside).
    high = int(((tx["amount"] > 220) & (tx["fraud_scenario"] != 3)).sum())
    assert abs(high - e_1) < 5 * math.sqrt(e_1) + 3, (high, e_1)


# --- drift --------------------------------------------------------------------------------------------------


def _before(result: SimulationResult, day: int) -> pd.DataFrame:
    return result.transactions[day_of(result) < day].reset_index(drop=True)


def test_drift_registry_and_validation() -> None:
    assert {"card_testing", "population_shift"} <= DRIFT_SCENARIOS.keys()
    with pytest.raises(InvalidInputError, match="unknown drift scenario 'nope'"):
        simulate(replace(SMALL, drifts=(DriftSpec("nope", 3),)))
    with pytest.raises(InvalidInputError, match="after the last day"):
        replace(SMALL, drifts=(DriftSpec("card_testing", SMALL.n_days),))
    with pytest.raises(InvalidInputError, match=">= 0"):
        DriftSpec("card_testing", -1)


def test_card_testing_adds_small_bursts_from_the_start_day_only(
    base: SimulationResult, card_testing: SimulationResult
) -> None:
    tx = card_testing.transactions
    pd.testing.assert_frame_equal(_before(card_testing, DRIFT_START), _before(base, DRIFT_START))
    new = tx[tx["fraud_scenario"] == CARD_TESTING]
    old = tx[tx["fraud_scenario"] != CARD_TESTING]
    # Everything else is the baseline, row for row (only the ids after the start day moved up).
    pd.testing.assert_frame_equal(
        old.drop(columns="transaction_id").reset_index(drop=True),
        base.transactions.drop(columns="transaction_id"),
    )
    assert len(new) > 0
    assert (day_of(card_testing, new) >= DRIFT_START).all()
    assert (new["is_fraud"] == 1).all()
    assert new["amount"].between(1, 10).all()
    # Bursts: several transactions of one card at one terminal within an hour, the card's usual terminals avoided.
    bursts = new.groupby(["customer_id", new["event_time"].dt.floor("D")])
    assert bursts.ngroups == 10 * (SMALL.n_days - DRIFT_START)
    assert bursts.size().between(4, 12).all()
    assert (bursts["terminal_id"].nunique() == 1).all()
    assert (bursts["event_time"].agg(lambda s: s.max() - s.min()) < pd.Timedelta(hours=1)).all()
    usual = dict(zip(card_testing.customers["customer_id"], card_testing.customers["available_terminals"], strict=True))
    assert not any(t in usual[c] for c, t in zip(new["customer_id"], new["terminal_id"], strict=True))
    assert (card_testing.compromises["fraud_scenario"] == CARD_TESTING).sum() == bursts.ngroups


def test_population_shift_raises_amounts_and_night_share_from_the_start_day(
    base: SimulationResult, population_shift: SimulationResult
) -> None:
    pd.testing.assert_frame_equal(_before(population_shift, DRIFT_START), _before(base, DRIFT_START))
    shifted, baseline = population_shift.transactions, base.transactions
    after_s = shifted[day_of(population_shift) >= DRIFT_START]
    after_b = baseline[day_of(base) >= DRIFT_START]
    assert len(after_s) == len(after_b)
    # Amounts rise 1.2x, except those the rise would lift above scenario 1's threshold (scenario 3's x5 aside).
    plain_s = np.sort(after_s.loc[after_s["fraud_scenario"] != 3, "amount"].to_numpy())
    plain_b = after_b.loc[after_b["fraud_scenario"] != 3, "amount"].to_numpy()
    expected = np.sort(np.where(np.round(plain_b * 1.2, 2) > 220, plain_b, np.round(plain_b * 1.2, 2)))
    assert np.allclose(plain_s, expected, atol=0.011)

    # More transactions at night (before 06:00).
    def night(frame: pd.DataFrame) -> float:
        return float((frame["event_time"].dt.hour < 6).mean())

    assert night(after_s) > night(after_b) + 0.15
    # No new fraud: every scenario labels as many payments as without the shift.
    counts_s, counts_b = population_shift.scenario_counts(), base.scenario_counts()
    assert counts_s.get(1, 0) == counts_b.get(1, 0)
    assert counts_s.get(2) == counts_b.get(2)
    assert counts_s.get(3) == counts_b.get(3)
    assert (shifted.loc[shifted["amount"] > 220, "is_fraud"] == 1).all()
    assert CARD_TESTING not in counts_s


# --- late labels ---------------------------------------------------------------------------------------------


def test_labels_are_never_known_before_the_transaction(base: SimulationResult) -> None:
    labels = derive_labels(base.transactions)
    assert tuple(labels.columns) == ("transaction_id", "is_fraud", "source", "known_at")
    assert str(labels["known_at"].dtype) == "datetime64[ns, UTC]"
    assert labels["known_at"].is_monotonic_increasing
    assert labels["transaction_id"].is_unique
    events = base.transactions.set_index("transaction_id")
    event_time = events.loc[labels["transaction_id"], "event_time"].to_numpy()
    delay = (labels["known_at"].to_numpy() - event_time) / np.timedelta64(1, "D")
    assert (delay >= 0).all()
    assert (labels["known_at"].dt.microsecond % 1000 == 0).all()
    # Every fraud is labelled, by a chargeback 1–30 days later, mostly about a week.
    frauds = labels[labels["is_fraud"]]
    assert len(frauds) == int(base.transactions["is_fraud"].sum())
    assert (frauds["source"] == "CHARGEBACK").all()
    fraud_delay = delay[labels["is_fraud"].to_numpy()]
    assert fraud_delay.min() >= 1
    assert fraud_delay.max() <= 30
    assert abs(np.median(fraud_delay) - 11.2) < 1  # median of triangular(1, 7, 30)
    # Genuine transactions only for a sample, as analyst verdicts.
    genuine = labels[~labels["is_fraud"]]
    assert (genuine["source"] == "ANALYST").all()
    n_genuine = int((base.transactions["is_fraud"] == 0).sum())
    assert abs(len(genuine) / n_genuine - 0.02) < 0.005
    pd.testing.assert_frame_equal(labels, derive_labels(base.transactions))


def test_label_delays_are_configurable(base: SimulationResult) -> None:
    config = LabelDelayConfig(
        fraud_delay=TriangularDelay(0, 0, 2), fraud_analyst_share=0.5, genuine_sample_rate=0.0, seed=3
    )
    labels = derive_labels(base.transactions, config)
    assert labels["is_fraud"].all()
    assert set(labels["source"]) == {"CHARGEBACK", "ANALYST"}
    events = base.transactions.set_index("transaction_id")
    assert (labels["known_at"].to_numpy() >= events.loc[labels["transaction_id"], "event_time"].to_numpy()).all()
    with pytest.raises(InvalidInputError):
        TriangularDelay(-1, 2, 3)
    with pytest.raises(InvalidInputError):
        LabelDelayConfig(genuine_sample_rate=1.5)


# --- real datasets -------------------------------------------------------------------------------------------


def ulb_like(rows: int = 50) -> pd.DataFrame:
    """A small frame in the layout of ULB's creditcard.csv: Time, V1..V28, Amount, Class."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"Time": np.sort(rng.integers(0, 172_792, rows)).astype(float)})
    for i in range(1, 29):
        frame[f"V{i}"] = rng.normal(size=rows)
    frame["Amount"] = np.round(rng.uniform(0, 500, rows), 2)
    frame.loc[3, "Amount"] = 0.0
    frame["Class"] = (rng.random(rows) < 0.1).astype(int)
    return frame


def test_ulb_layout_maps_to_the_transaction_columns(tmp_path: Path) -> None:
    source = ulb_like()
    origin = datetime(2013, 9, 1, tzinfo=UTC)
    path = tmp_path / "creditcard.csv"
    source.to_csv(path, index=False)
    frame = load_real_dataset(path, replace(ULB_CREDITCARD, origin=origin))
    assert list(frame.columns[:7]) == [
        "transaction_id", "event_time", "customer_id", "terminal_id", "amount", "currency", "is_fraud"
    ]  # fmt: skip
    assert list(frame.columns[7:]) == [f"V{i}" for i in range(1, 29)]
    assert "fraud_scenario" not in frame.columns
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert (frame["event_time"] == pd.Timestamp(origin) + pd.to_timedelta(source["Time"], unit="s")).all()
    assert frame["transaction_id"].is_unique
    assert frame["transaction_id"].iloc[0] == "ulb-00"
    assert (frame["customer_id"] == "ulb-customer").all()
    assert (frame["terminal_id"] == "ulb-terminal").all()
    assert (frame["currency"] == "EUR").all()
    assert frame["is_fraud"].dtype == np.int8
    assert (frame["is_fraud"].to_numpy() == source["Class"].to_numpy()).all()
    assert np.allclose(frame["V7"], source["V7"])
    assert np.allclose(frame["amount"], source["Amount"])
    dropped = apply_mapping(source, replace(ULB_CREDITCARD, drop_non_positive_amounts=True))
    assert len(dropped) == len(source) - 1
    assert (dropped["amount"] > 0).all()


def test_mapping_options_and_refusals() -> None:
    source = ulb_like()
    hashed = apply_mapping(source, replace(ULB_CREDITCARD, customer_id=HashedId(("V1",), buckets=7, prefix="c")))
    assert hashed["customer_id"].str.fullmatch(r"c[0-6]").all()
    assert hashed["customer_id"].nunique() > 1
    absolute = source.assign(ts=pd.Timestamp("2024-01-01") + pd.to_timedelta(source["Time"], unit="s"), id=range(50))
    mapping = ColumnMapping(
        event_time="ts", amount="Amount", transaction_id="id", transaction_id_prefix="x-", terminal_id=ConstantId("t")
    )
    frame = apply_mapping(absolute.drop(columns="Time"), mapping)
    assert frame["event_time"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(
        seconds=source["Time"].iloc[0]
    )
    assert frame["transaction_id"].iloc[0] == "x-0"
    assert "is_fraud" not in frame.columns
    assert "Class" in frame.columns
    offsets = pd.DataFrame(
        {"ts": ["2024-01-01T10:00:00+02:00", "2024-01-01T09:00:00Z"], "eur": [1.0, 2.0], "y": [True, False]}
    )
    frame = apply_mapping(offsets, ColumnMapping(event_time="ts", amount="eur", is_fraud="y", time_format="ISO8601"))
    assert list(frame["event_time"]) == [pd.Timestamp("2024-01-01T08:00Z"), pd.Timestamp("2024-01-01T09:00Z")]
    assert list(frame["is_fraud"]) == [1, 0]
    with pytest.raises(InvalidInputError, match="not timestamps"):
        apply_mapping(offsets.assign(ts="nope"), ColumnMapping(event_time="ts", amount="eur", time_format="ISO8601"))
    with pytest.raises(InvalidInputError, match="lacks column"):
        apply_mapping(source.drop(columns="Amount"), ULB_CREDITCARD)
    with pytest.raises(InvalidInputError, match="0/1"):
        apply_mapping(source.assign(Class=2), ULB_CREDITCARD)
    with pytest.raises(InvalidInputError, match="not unique"):
        apply_mapping(absolute.assign(id=1).drop(columns="Time"), mapping)
    with pytest.raises(InvalidInputError, match="clash"):
        apply_mapping(source.assign(amount=1.0), ULB_CREDITCARD)
    with pytest.raises(InvalidInputError, match="time_unit and origin"):
        ColumnMapping(event_time="Time", amount="Amount", time_unit="s")


# --- CLI -----------------------------------------------------------------------------------------------------


def test_cli_simulate_writes_parquet_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "sim" / "tx.parquet"
    args = ["simulate", "--out", str(out), "--customers", "200", "--terminals", "400", "--days", "20", "--seed", "3"]
    result = CliRunner().invoke(
        app, [*args, "--drift", "card_testing", "--drift-start-day", "10", "--profiles-dir", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out)
    expected = simulate(
        SimulatorConfig(n_customers=200, n_terminals=400, n_days=20, seed=3, drifts=(DriftSpec("card_testing", 10),))
    )
    pd.testing.assert_frame_equal(written, expected.transactions)
    assert "transactions" in result.output
    assert "4=" in result.output
    assert len(pd.read_parquet(tmp_path / "p" / "customers.parquet")) == 200
    assert len(pd.read_parquet(tmp_path / "p" / "terminals.parquet")) == 400

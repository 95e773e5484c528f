"""Batch evaluation of the feature definition over a whole dataset (training, evaluation, parity checks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fraudops.features.definition import (
    CUSTOMER_WINDOWS_DAYS,
    EARLIER_MAX_RATIO,
    EARLIER_RATIO_WINDOW_MS,
    FEATURE_NAMES,
    MS_PER_DAY,
    MS_PER_HOUR,
    TERMINAL_WINDOWS_DAYS,
    FeatureConfig,
)

Int64s = NDArray[np.int64]
Floats = NDArray[np.float64]

# Group codes are shifted above the time offsets so one sorted key orders by (entity, time).
_TIME_BITS = 40


def to_milliseconds(times: pd.Series) -> Int64s:
    """Event times as whole UTC milliseconds, the contracts' precision."""
    utc = pd.to_datetime(times, utc=True)
    values: Int64s = utc.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return values


class _Grouped:
    """Transactions sorted by (entity, time, arrival order), with keys for per-entity binary search."""

    def __init__(self, entity: pd.Series, times_ms: Int64s, origin_ms: int) -> None:
        codes = pd.factorize(entity)[0].astype(np.int64)
        relative = times_ms - origin_ms
        if relative.size and (relative.min() < 0 or relative.max() >= 1 << _TIME_BITS):
            raise ValueError("event times span more than 34 years")
        self.order = np.lexsort((np.arange(len(codes)), relative, codes))
        self.codes = codes[self.order]
        self.times = relative[self.order]
        self.keys = (self.codes << _TIME_BITS) + self.times
        starts = np.r_[0, np.flatnonzero(np.diff(self.codes)) + 1] if len(codes) else np.array([], dtype=np.int64)
        self.group_start = np.repeat(starts, np.diff(np.r_[starts, len(codes)]))

    def count_at_or_before(self, offsets_ms: Int64s) -> Int64s:
        """Per row, how many rows of the same entity have time <= row time - offset."""
        bounds = (self.codes << _TIME_BITS) + (self.times - offsets_ms)
        result: Int64s = np.searchsorted(self.keys, bounds, side="right") - self.group_start
        return np.maximum(result, 0)

    def unsort(self, values: NDArray[np.float64]) -> Floats:
        out: Floats = np.empty(len(values), dtype=np.float64)
        out[self.order] = values
        return out


def range_max(values: Floats, lows: Int64s, highs: Int64s, chunk: int = 1 << 22) -> Floats:
    """Per i, the largest of values[lows[i]:highs[i]] ignoring NaN (`np.fmax`), NaN for an empty range.

    The ranges' elements are gathered (`chunk` at a time, to bound memory) and reduced with one
    `np.fmax.reduceat`: the work is their total length, however large `values` is.
    """
    out: Floats = np.full(len(lows), np.nan, dtype=np.float64)
    rows = np.flatnonzero(highs > lows)
    if not rows.size:
        return out
    sizes = (highs - lows)[rows]
    ends = np.cumsum(sizes)
    start = 0
    while start < len(rows):
        done = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + chunk, side="right")))
        part, lengths = rows[start:stop], sizes[start:stop]
        offsets = np.cumsum(lengths) - lengths
        gathered = values[np.repeat(lows[part] - offsets, lengths) + np.arange(int(lengths.sum()))]
        out[part] = np.fmax.reduceat(gathered, offsets)
        start = stop
    return out


def _fraud_known_ms(transactions: pd.DataFrame, labels: pd.DataFrame | None, ids: pd.Series) -> Floats:
    """For each transaction: when it became known as a fraud (ms), NaN if not (yet) labelled fraud."""
    if labels is None or labels.empty:
        return np.full(len(transactions), np.nan, dtype=np.float64)
    latest = labels.sort_values("known_at", kind="stable").drop_duplicates("transaction_id", keep="last")
    frauds = latest[latest["is_fraud"].astype(bool)]
    known = pd.Series(to_milliseconds(frauds["known_at"]).astype(np.float64), index=frauds["transaction_id"].to_numpy())
    return np.asarray(ids.map(known), dtype=np.float64)


def compute_features(
    transactions: pd.DataFrame, labels: pd.DataFrame | None = None, config: FeatureConfig | None = None
) -> pd.DataFrame:
    """Features for every row of `transactions` (same index), using only labels known at each row's time.

    `transactions` needs transaction_id, event_time, customer_id, terminal_id, amount, in arrival order
    (rows are ordered by event time here; ties keep the given order). `labels` has transaction_id,
    is_fraud and known_at (the latest verdict per transaction is used).
    """
    config = config or FeatureConfig()
    n = len(transactions)
    times = to_milliseconds(transactions["event_time"])
    amounts = transactions["amount"].to_numpy(dtype=np.float64)
    origin = int(times.min()) - config.terminal_retention_ms - MS_PER_DAY if n else 0
    out: dict[str, Floats] = {"amount": amounts}
    moments = pd.to_datetime(times, unit="ms", utc=True)
    out["is_weekend"] = np.asarray(moments.dayofweek >= 5, dtype=np.float64)
    out["is_night"] = np.asarray(moments.hour <= 6, dtype=np.float64)

    customers = _Grouped(transactions["customer_id"], times, origin)
    position = np.arange(n) - customers.group_start  # index within the customer's own sequence
    sorted_amounts = amounts[customers.order]
    cumulative = np.r_[0.0, np.cumsum(sorted_amounts)]
    end = np.arange(n) + 1
    for days in CUSTOMER_WINDOWS_DAYS:
        before = customers.count_at_or_before(np.full(n, days * MS_PER_DAY, dtype=np.int64))
        count = position + 1 - before
        total = cumulative[end] - cumulative[customers.group_start + before]
        out[f"customer_nb_tx_{days}d"] = customers.unsort(count.astype(np.float64))
        out[f"customer_avg_amount_{days}d"] = customers.unsort(total / count)
    hourly_before = customers.count_at_or_before(np.full(n, MS_PER_HOUR, dtype=np.int64))
    out["customer_nb_tx_1h"] = customers.unsort((position + 1 - hourly_before).astype(np.float64))
    previous = np.where(position > 0, customers.times - np.r_[0, customers.times[:-1]], -1).astype(np.float64)
    previous[position == 0] = np.nan
    out["customer_hours_since_previous"] = customers.unsort(previous / MS_PER_HOUR)
    out["amount_to_customer_avg_30d"] = amounts / out["customer_avg_amount_30d"]
    # The largest of those ratios among the customer's payments with time in (t - 7d, t): earlier ones only.
    ratios = out["amount_to_customer_avg_30d"][customers.order]
    lows = customers.group_start + customers.count_at_or_before(np.full(n, EARLIER_RATIO_WINDOW_MS, dtype=np.int64))
    highs = customers.group_start + customers.count_at_or_before(np.ones(n, dtype=np.int64))
    out[EARLIER_MAX_RATIO] = customers.unsort(range_max(ratios, lows, highs))

    terminals = _Grouped(transactions["terminal_id"], times, origin)
    delay = config.label_delay_ms
    fraud_known = _fraud_known_ms(transactions, labels, transactions["transaction_id"])[terminals.order] - origin
    is_labelled = ~np.isnan(fraud_known)
    fraud_codes = terminals.codes[is_labelled]
    fraud_times = terminals.times[is_labelled]
    fraud_known_rel = fraud_known[is_labelled].astype(np.int64)
    up_to_delay = terminals.count_at_or_before(np.full(n, delay, dtype=np.int64))
    for days in TERMINAL_WINDOWS_DAYS:
        width = days * MS_PER_DAY
        in_window = up_to_delay - terminals.count_at_or_before(np.full(n, delay + width, dtype=np.int64))
        frauds = _known_frauds_in_window(terminals, fraud_codes, fraud_times, fraud_known_rel, delay, width)
        risk = np.divide(frauds, in_window, out=np.zeros(n), where=in_window > 0)
        out[f"terminal_nb_tx_{days}d"] = terminals.unsort(in_window.astype(np.float64))
        out[f"terminal_risk_{days}d"] = terminals.unsort(risk)

    frame = pd.DataFrame({name: out[name] for name in FEATURE_NAMES}, index=transactions.index)
    return frame


def _known_frauds_in_window(
    terminals: _Grouped, codes: Int64s, times: Int64s, known: Int64s, delay: int, width: int
) -> Floats:
    """Frauds of the row's terminal with time in (t - delay - width, t - delay] and known_at <= t.

    A fraud at s known at k counts for t in [max(s + delay, k), s + delay + width): an interval per fraud,
    so the count at t is (#intervals started by t) - (#intervals ended by t).
    """
    starts = np.maximum(times + delay, known)
    ends = times + delay + width
    live = starts < ends
    start_keys = np.sort((codes[live] << _TIME_BITS) + starts[live])
    end_keys = np.sort((codes[live] << _TIME_BITS) + ends[live])
    query = terminals.keys
    started = np.searchsorted(start_keys, query, side="right")
    ended = np.searchsorted(end_keys, query, side="right")
    result: Floats = (started - ended).astype(np.float64)
    return result

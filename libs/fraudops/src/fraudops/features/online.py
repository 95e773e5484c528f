"""Online evaluation of the feature definition: a columnar store the scorer feeds one micro-batch at a time.

`OnlineFeatureStore` keeps every applied transaction of the retention horizon in sorted numpy arrays keyed
as in `offline.py`: `(entity code << 40) + time`, times in ms relative to an origin fixed by the first
batch (ten years below it). A batch's features add up vectorised parts:

- the store, everything applied before the batch: binary searches for each window bound. Customers live in
  a large sorted level, rewritten rarely, and a small one each batch is merged into; terminal windows end
  a label delay back, so new terminal rows are only staged and merged into their sorted level once many;
- the batch's own rows: sorted stably by key, each row sees the rows before it and itself by its rank;
- known frauds: a fraud at s counts for t in [s + d, s + d + w) while its verdict known last at t is fraud,
  so a window's fraud count is (#intervals started by t) - (#intervals ended by t) over sorted keys.

Semantics (`definition.py` is the spec; for a stream in event-time order the values equal
`compute_features`):

- a row's features are as of its own event time, over every row applied before it (earlier batches, the
  earlier rows of its batch) and itself. Windows are bounded by time, so a row applied earlier with a later
  time (out of order, or another partition running ahead) is outside an earlier row's windows; among rows
  of the same millisecond, those applied earlier count and those applied later do not;
- customer windows cover (t - w, t]; `customer_hours_since_previous` is measured from the customer's
  latest applied row with time <= t (remembered past the retention, as offline has all history);
- each customer row keeps the `amount_to_customer_avg_30d` it got when applied (`remember` computes the
  customer windows for that); `max_amount_to_customer_avg_30d_previous_7d` is the largest of them over the
  customer's applied rows with time in (t - 7d, t): a range maximum per level between two binary searches,
  gathered and reduced at once (`offline.range_max`). A row applied earlier with a later time is outside;
  one applied later with an earlier time counts for rows applied after it, with the ratio it was given;
- terminal windows cover (t - d - w, t - d] over all applied rows of the terminal; their frauds are the
  rows whose verdict known last at t is fraud;
- average amounts add the window's own amounts (directly, or as differences of running sums restarted
  for each customer), while offline takes differences of one running sum over the whole dataset: they
  differ by float rounding only (parity to rtol 1e-9; on the full 183-day dataset offline's own rounding
  reaches 7e-9 absolute), every other feature is exactly equal.

Labels name only a transaction: the store maps recent transaction ids to their terminal and time. A label
whose transaction has not been applied yet (the two topics are read independently) waits as pending and
applies when the transaction arrives. A verdict holds from its known_at on, and of verdicts known at the
same time the last to arrive wins: a fraud later reversed stops counting from the reversal on, a verdict
delivered twice counts once, and results do not depend on how labels interleave with batches.

Retention: rows with time <= (newest event time applied - retention - `late_slack_ms`) are dropped
(counting back from an earlier time while `hold` says a lagging partition needs it), amortised (once the rows applied since the last pruning reach a quarter of the store). Rows at most
`late_slack_ms` behind the newest applied time therefore still get exact values; rows later than that may
miss the oldest part of their windows. Recent ids are forgotten at each pruning, those whose latest
transaction is at or before the horizon. Pending labels known before the terminal horizon are dropped: their
transactions are older still. The horizon follows transactions only, never label times, so a labels topic
read far ahead keeps its verdicts. Entity maps are never pruned (about 100 bytes per entity): each
customer's last time is needed for `customer_hours_since_previous`. Transactions are not deduplicated:
one applied twice counts twice.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fraudops.features._id_table import IdTable
from fraudops.features._search import search_right
from fraudops.features.definition import (
    CUSTOMER_WINDOWS_DAYS,
    EARLIER_MAX_RATIO,
    EARLIER_RATIO_WINDOW_MS,
    FEATURE_NAMES,
    MS_PER_DAY,
    MS_PER_HOUR,
    TERMINAL_WINDOWS_DAYS,
    FeatureConfig,
    is_night_hour,
    is_weekend_day,
)
from fraudops.features.offline import range_max, to_milliseconds

Int64s = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

# Keys are (entity code << 40) + relative time: 2**40 ms is about 34 years; 2**23 codes keep keys positive.
_TIME_BITS = 40
_TIME_MASK = (1 << _TIME_BITS) - 1
_MAX_CODES = 1 << 23
# The first batch's middle time sits this far above the origin, so late rows still fit. The middle, not the
# earliest: one payment dated decades back must not shift the span the live ones have to fit in.
_ORIGIN_SLACK_MS = 3650 * MS_PER_DAY
# The in-batch order check packs a group number above the time: scored batches are limited to 2**22 rows.
_MAX_BATCH_ROWS = 1 << 22
_PRUNE_FRACTION = 0.25
_PRUNE_MIN_ROWS = 4096
_NO_PENDING = 1 << 62
# Each batch goes into a small level (or staging), merged into the main one once it holds this share of it.
_RECENT_LEVEL_FRACTION = 1 / 16
_RECENT_LEVEL_MIN_ROWS = 8192

_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
# Customer windows widest first, so each row's bounds ascend: t - 30d <= t - 7d <= t - 1d <= t - 1h < t.
_CUSTOMER_WINDOWS: tuple[tuple[str, int], ...] = tuple(
    sorted(
        [(f"{days}d", days * MS_PER_DAY) for days in CUSTOMER_WINDOWS_DAYS] + [("1h", MS_PER_HOUR)],
        key=lambda window: -window[1],
    )
)
_CUSTOMER_WIDTHS = np.array([width for _, width in _CUSTOMER_WINDOWS], dtype=np.int64)
_CUSTOMER_COUNTS = [_COLUMN[f"customer_nb_tx_{name}"] for name, _ in _CUSTOMER_WINDOWS]
_CUSTOMER_AVERAGES = [
    (i, _COLUMN[f"customer_avg_amount_{name}"]) for i, (name, _) in enumerate(_CUSTOMER_WINDOWS) if name != "1h"
]
_CUSTOMER_30D = [name for name, _ in _CUSTOMER_WINDOWS].index(f"{max(CUSTOMER_WINDOWS_DAYS)}d")
# The earlier-ratio maximum's window starts where one of the customer windows does (its lower bound is shared).
_EARLIER_WINDOW = [width for _, width in _CUSTOMER_WINDOWS].index(EARLIER_RATIO_WINDOW_MS)
_TERMINAL_DAYS = tuple(sorted(TERMINAL_WINDOWS_DAYS, reverse=True))
_TERMINAL_WIDTHS = np.array([days * MS_PER_DAY for days in _TERMINAL_DAYS], dtype=np.int64)
# The windows' widths, then 0 for the upper bound (a label delay back), as `_terminal_bounds` shifts them.
_TERMINAL_WIDTHS_AND_NONE = np.append(_TERMINAL_WIDTHS, 0)
# Calendar flags through lookup tables built from the definition's own rules.
_WEEKEND = np.array([is_weekend_day(day) for day in range(7)], dtype=np.float64)
_NIGHT = np.array([is_night_hour(hour) for hour in range(24)], dtype=np.float64)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def epoch_millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch, floored, without float rounding."""
    return (moment - _EPOCH) // _MILLISECOND


@dataclass(frozen=True)
class TransactionColumns:
    """A micro-batch of transactions in processing (arrival) order."""

    transaction_ids: Sequence[str]
    customer_ids: Sequence[str]
    terminal_ids: Sequence[str]
    times_ms: NDArray[np.int64]
    """Event time, whole UTC milliseconds."""
    amounts: NDArray[np.float64]

    def __post_init__(self) -> None:
        times = np.asarray(self.times_ms)
        if times.ndim != 1 or not (np.issubdtype(times.dtype, np.integer) or times.size == 0):
            raise ValueError("times_ms must be a 1-D array of integer milliseconds")
        object.__setattr__(self, "times_ms", times.astype(np.int64, copy=False))
        object.__setattr__(self, "amounts", np.asarray(self.amounts, dtype=np.float64).reshape(-1))
        n = len(times)
        lengths = {len(self.transaction_ids), len(self.customer_ids), len(self.terminal_ids), len(self.amounts)}
        if lengths != {n}:
            raise ValueError("every column of a batch must have the same length")

    def __len__(self) -> int:
        return len(self.times_ms)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> TransactionColumns:
        """Columns transaction_id, event_time (datetime), customer_id, terminal_id, amount, in arrival order."""
        return cls(
            transaction_ids=frame["transaction_id"].astype(str).tolist(),
            customer_ids=frame["customer_id"].astype(str).tolist(),
            terminal_ids=frame["terminal_id"].astype(str).tolist(),
            times_ms=to_milliseconds(frame["event_time"]),
            amounts=frame["amount"].to_numpy(dtype=np.float64),
        )


def _rows(batch: TransactionColumns, start: int, stop: int) -> TransactionColumns:
    """Rows [start, stop) of a batch (the batch itself when that is all of it)."""
    if start == 0 and stop >= len(batch):
        return batch
    return TransactionColumns(
        transaction_ids=batch.transaction_ids[start:stop],
        customer_ids=batch.customer_ids[start:stop],
        terminal_ids=batch.terminal_ids[start:stop],
        times_ms=batch.times_ms[start:stop],
        amounts=batch.amounts[start:stop],
    )


@dataclass(frozen=True)
class _Batch:
    """A batch in the store's coordinates (entity codes, times relative to the origin), not yet applied."""

    ids: Sequence[str]
    times: Int64s
    amounts: Floats
    customer_codes: Int64s
    customer_keys: Int64s
    terminal_keys: Int64s
    origin: int
    new_customers: dict[str, int]
    new_terminals: dict[str, int]
    fraud_rows: Int64s
    """Rows with pending fraud verdicts, one per fraud period, and the periods [from, until) (relative)."""
    fraud_periods: Int64s


@dataclass(frozen=True)
class _FraudIntervals:
    """Sorted keys where known frauds start counting, and per terminal window (widest first) where they stop.

    A fraud at s counts for t in [s + d, s + d + w) while its verdict known last at t is fraud: over
    [max(s + d, from), min(s + d + w, until)) for each period [from, until) of fraud verdicts. An interval
    that never opens stops where it starts, so it adds nothing, and every window can share the same starts.
    """

    starts: Int64s
    ends: tuple[Int64s, ...]

    @classmethod
    def build(cls, terminal_keys: Int64s, known_from: Int64s, known_until: Int64s, delay: int) -> _FraudIntervals:
        times = terminal_keys & _TIME_MASK
        base = terminal_keys - times
        closes = np.minimum(times[:, None] + delay + _TERMINAL_WIDTHS[None, :], known_until[:, None])
        opens = np.minimum(np.maximum(times + delay, known_from), closes.max(axis=1, initial=0))
        ends = np.maximum(closes, opens[:, None]) + base[:, None]  # opens and ends stay within the terminal's keys
        return cls(np.sort(base + opens), tuple(np.sort(ends[:, j]) for j in range(ends.shape[1])))

    @classmethod
    def of_periods(cls, periods: Sequence[tuple[int, tuple[tuple[int, int], ...]]], delay: int) -> _FraudIntervals:
        """From (terminal key, fraud periods) per transaction."""
        flat = [(key, start, end) for key, spans in periods for start, end in spans]
        values = np.array(flat, dtype=np.int64).reshape(-1, 3)
        return cls.build(values[:, 0], values[:, 1], values[:, 2], delay)

    def with_added(self, periods: Sequence[tuple[int, tuple[tuple[int, int], ...]]], delay: int) -> _FraudIntervals:
        """These intervals and those of more frauds (merged in, without sorting everything again)."""
        more = _FraudIntervals.of_periods(periods, delay)
        ends = tuple(_merged(old, new) for old, new in zip(self.ends, more.ends, strict=True))
        return _FraudIntervals(_merged(self.starts, more.starts), ends)

    def counts(self, queries: Int64s) -> Int64s:
        """Frauds counting at each query key, one column per window."""
        started = np.searchsorted(self.starts, queries, side="right")
        out = np.empty((len(queries), len(self.ends)), dtype=np.int64)
        for j, ends in enumerate(self.ends):
            out[:, j] = started - np.searchsorted(ends, queries, side="right")
        return out

    @property
    def nbytes(self) -> int:
        return self.starts.nbytes + sum(a.nbytes for a in self.ends)


Periods = tuple[tuple[int, int], ...]
_STILL = 1 << 62  # the end of a period that still goes on


def _fraud_periods(verdicts: Sequence[tuple[int, bool]]) -> Periods:
    """Periods [from, until) over which the verdict known last is fraud, given verdicts (known_at, is_fraud)
    in arrival order: each holds from its known_at on; of verdicts known at the same time, the last to arrive."""
    periods: list[tuple[int, int]] = []
    fraud_since: int | None = None
    for known_at, fraud in sorted(verdicts, key=lambda verdict: verdict[0]):
        if fraud and fraud_since is None:
            fraud_since = known_at
        elif not fraud and fraud_since is not None:
            if known_at > fraud_since:
                periods.append((fraud_since, known_at))
            fraud_since = None
    if fraud_since is not None:
        periods.append((fraud_since, _STILL))
    return tuple(periods)


def _direct_window_sums(values: Floats, positions: Int64s) -> Floats:
    """`_Level.window_sums` by summing: one `np.add.reduceat` over the pieces between consecutive bounds (and the
    gaps between rows, short when rows come in key order, thrown away); windows add their pieces inside out."""
    n, k = positions.shape
    if n == 0:
        return np.zeros((0, k - 1), dtype=np.float64)
    flat = np.empty(n * k + 1, dtype=np.intp)
    flat[:-1] = positions.ravel()
    flat[-1] = len(values)  # the sentinel
    pieces = np.add.reduceat(np.append(values, 0.0), flat)[:-1].reshape(n, k)[:, :-1]
    pieces[positions[:, 1:] == positions[:, :-1]] = 0.0
    sums: Floats = np.cumsum(pieces[:, ::-1], axis=1)[:, ::-1]
    return sums


def _search_right(haystack: Int64s, needles: Int64s) -> Int64s:
    """`np.searchsorted(haystack, needles, side="right")`, galloping from each answer to the next in C: a row's
    window bounds and key, then the next row's, are near each other (`_search.c`)."""
    flat = np.ascontiguousarray(needles, dtype=np.int64)
    out = np.empty(flat.shape, dtype=np.int64)
    search_right(np.ascontiguousarray(haystack, dtype=np.int64), flat, out)
    return out


def _merged(old: Int64s, new: Int64s) -> Int64s:
    """Two sorted arrays as one sorted array."""
    out: Int64s = np.insert(old, np.searchsorted(old, new, side="right"), new)
    return out


_NO_VALUES: Floats = np.empty(0, dtype=np.float64)
_NO_VALUES.flags.writeable = False


@dataclass(frozen=True)
class _Level:
    """Applied rows sorted by key (rows of equal keys in the order applied); for customers, their amounts and
    their own `amount_to_customer_avg_30d` (what the earlier-ratio maximum of later rows looks at)."""

    keys: Int64s
    amounts: Floats
    lasting: bool = False
    """Rewritten rarely: worth keeping running sums of the amounts (else windows sum them directly)."""
    ratios: Floats = field(default_factory=lambda: _NO_VALUES)

    @classmethod
    def empty(cls, *, lasting: bool = False) -> _Level:
        return cls(np.empty(0, dtype=np.int64), _NO_VALUES, lasting, _NO_VALUES)

    def __len__(self) -> int:
        return len(self.keys)

    def merged(self, keys: Int64s, amounts: Floats | None = None, ratios: Floats | None = None) -> _Level:
        """These rows, then more rows (sorted by key) merged in after them."""
        return self.merged_at(keys, amounts, ratios)[0]

    def merged_at(
        self, keys: Int64s, amounts: Floats | None = None, ratios: Floats | None = None
    ) -> tuple[_Level, Int64s]:
        """`merged`, and where the new rows are in it. Customer rows come with their amounts; their ratios may
        follow, written into the new level's own `ratios` at the slots returned (NaN until then)."""
        n, m = len(self.keys), len(keys)
        slots = np.searchsorted(self.keys, keys, side="right") + np.arange(m)
        old = np.ones(n + m, dtype=np.bool_)
        old[slots] = False
        merged_keys = np.empty(n + m, dtype=np.int64)
        merged_keys[slots] = keys
        merged_keys[old] = self.keys
        if amounts is None:
            return _Level(merged_keys, self.amounts, self.lasting, self.ratios), slots
        merged_amounts = np.empty(n + m, dtype=np.float64)
        merged_amounts[slots] = amounts
        merged_amounts[old] = self.amounts
        merged_ratios = np.empty(n + m, dtype=np.float64)
        merged_ratios[slots] = np.nan if ratios is None else ratios
        merged_ratios[old] = self.ratios
        return _Level(merged_keys, merged_amounts, self.lasting, merged_ratios), slots

    def kept(self, keep: Bools) -> _Level:
        if not len(self.amounts):
            return _Level(self.keys[keep], self.amounts, self.lasting, self.ratios)
        return _Level(self.keys[keep], self.amounts[keep], self.lasting, self.ratios[keep])

    def earlier_max(self, lows: Int64s, keys: Int64s) -> Floats:
        """Per row: the largest ratio of this level's rows with key in (low, key), NaN if none."""
        return range_max(
            self.ratios, np.searchsorted(self.keys, lows, side="right"), np.searchsorted(self.keys, keys, side="left")
        )

    @functools.cached_property
    def running(self) -> Floats:
        """Per row: the sum of its entity's amounts up to and including it, plus a residual tiny beside them.

        One cumsum over all entities, with each entity's start lowered by the previous entity's total: the
        running value restarts near zero, so rounding stays at the scale of one entity's amounts (a running
        sum over the whole store would lose precision on small windows).
        """
        codes = self.keys >> _TIME_BITS
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.empty(0, np.intp)
        adjusted = self.amounts.copy()
        if len(starts) > 1:
            adjusted[starts[1:]] -= np.add.reduceat(self.amounts, starts)[:-1]
        running: Floats = np.cumsum(adjusted)
        return running

    def window_sums(self, positions: Int64s) -> Floats:
        """Per row r and bound j: the amounts of rows positions[r, j] to positions[r, -1] (excluded).

        Rows come in key order. A level rebuilt each batch sums its amounts directly; a lasting one computes
        `running` once and answers each window by a difference.
        """
        if not self.lasting:
            return _direct_window_sums(self.amounts, positions)
        highs = positions[:, -1:]
        lows = np.minimum(positions[:, :-1], len(self.keys) - 1)
        running = self.running
        below = running[lows] - self.amounts[lows]  # the running value before each window's first row
        sums: Floats = np.where(highs > positions[:, :-1], running[np.maximum(highs - 1, 0)] - below, 0.0)
        return sums

    @property
    def nbytes(self) -> int:
        running = self.__dict__.get("running")
        extra = running.nbytes if running is not None else 0
        return self.keys.nbytes + self.amounts.nbytes + self.ratios.nbytes + extra


def _encode(ids: Sequence[str], table: dict[str, int]) -> tuple[Int64s, dict[str, int]]:
    """Codes of `ids` in `table`; unknown ids get new codes, returned apart (the caller decides to keep them)."""
    codes = list(map(table.get, ids))
    new: dict[str, int] = {}
    if None in codes:
        next_code = len(table)
        for i, code in enumerate(codes):
            if code is None:
                entity = ids[i]
                code = new.get(entity)
                if code is None:
                    code = new[entity] = next_code
                    next_code += 1
                codes[i] = code
        if next_code > _MAX_CODES:
            raise ValueError(f"more than {_MAX_CODES:,} distinct entities of one kind")
    return np.array(codes, dtype=np.int64), new


def _customer_bounds(keys: Int64s, times: Int64s) -> Int64s:
    """Lower key bounds (exclusive) of each customer window, widest first; -1 stays below the customer's keys."""
    base = keys - times
    bounds: Int64s = base[:, None] + np.maximum(times[:, None] - _CUSTOMER_WIDTHS[None, :], -1)
    return bounds


def _terminal_bounds(keys: Int64s, times: Int64s, delay: int) -> Int64s:
    """Key bounds of each terminal window: the lower ones (exclusive, widest first), then the upper one."""
    base = keys - times
    shifts = _TERMINAL_WIDTHS_AND_NONE + delay
    bounds: Int64s = base[:, None] + np.maximum(times[:, None] - shifts[None, :], -1)
    return bounds


def _out_of_order(codes: Int64s, times: Int64s, tolerance: int) -> Bools:
    """Rows whose time is below (earlier rows of the same entity's latest time - tolerance), in batch order."""
    n = len(codes)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    group = np.cumsum(first) - 1
    packed = (group << (_TIME_BITS + 1)) + times[order]
    latest_before = np.r_[-1, np.maximum.accumulate(packed)[:-1]] - (group << (_TIME_BITS + 1))
    late = ~first & (times[order] + tolerance < latest_before)
    out = np.empty(n, dtype=np.bool_)
    out[order] = late
    return out


def _places(order: NDArray[np.intp]) -> Int64s:
    """The inverse permutation: where each row is in `order`."""
    places = np.empty(len(order), dtype=np.int64)
    places[order] = np.arange(len(order))
    return places


def _is_sorted_within(keys: Int64s, order: NDArray[np.intp]) -> bool:
    """True when sorting by key (stably) keeps each entity's rows in batch order: its times never go back."""
    same = (keys[order[1:]] >> _TIME_BITS) == (keys[order[:-1]] >> _TIME_BITS)
    return bool(np.all(order[1:][same] > order[:-1][same]))


class _Seen(NamedTuple):
    """What rows see of one level: count and amount of each customer window, the time of the customer's latest
    row (-1 if none), and where the windows start and end in the level (the lower bounds, then the upper one)."""

    counts: Int64s
    sums: Floats
    previous: Int64s
    positions: Int64s


def _customer_windows(level: _Level, lows: Int64s, keys: Int64s, highs: Int64s | None = None) -> _Seen:
    """Over one level, for rows in key order: count and amount of each customer window (lower key bounds
    `lows`, widest first, up to the row's own key), and the time of the customer's latest row up to the key
    (-1 if none). `highs`: each row's own position + 1, when the level holds the rows themselves."""
    n, k = lows.shape
    if highs is None:
        needles = np.empty((n, k + 1), dtype=np.int64)
        needles[:, :k] = lows
        needles[:, k] = keys
        positions = _search_right(level.keys, needles)
    else:
        positions = np.empty((n, k + 1), dtype=np.int64)
        positions[:, :k] = _search_right(level.keys, lows)
        positions[:, k] = highs
    counts = positions[:, -1:] - positions[:, :-1]
    sums = level.window_sums(positions)
    before = positions[:, -1] - (1 if highs is None else 2)  # the latest row up to the key, not the row itself
    found = level.keys[np.maximum(before, 0)]
    same = (before >= 0) & (found >> _TIME_BITS == keys >> _TIME_BITS)
    previous: Int64s = np.where(same, found & _TIME_MASK, -1)
    return _Seen(counts, sums, previous, positions)


def _earlier_max(level: _Level, starts: Int64s, ends: Int64s, keys: Int64s) -> Floats:
    """Per row (in key order): the largest ratio of the level's rows from `starts` up to the first one with the
    row's own key. `ends` is a position past the rows before that key: rows of the key itself (the same customer
    and millisecond, applied earlier) just before it are stepped back over."""
    if not len(level):
        return np.full(len(keys), np.nan, dtype=np.float64)
    same = (ends > starts) & (level.keys[np.maximum(ends - 1, 0)] == keys)
    if same.any():
        ends = ends.copy()
        ends[same] = np.searchsorted(level.keys, keys[same], side="left")
    return range_max(level.ratios, starts, ends)


def _terminal_windows(keys: Int64s, bounds: Int64s) -> Int64s:
    """Rows of `keys` (sorted) in each terminal window: bounds are the lower ones, widest first, then the upper."""
    positions = _search_right(keys, bounds)
    counts: Int64s = positions[:, -1:] - positions[:, :-1]
    return counts


@dataclass
class _Windows:
    """What the rows of a batch see of their customers' windows, accumulated part by part, in customer-key order."""

    counts: Int64s
    sums: Floats
    previous: Int64s

    def add_customers(self, parts: _Seen, rows: Int64s | slice = slice(None)) -> None:
        counts, sums, previous, _ = parts
        self.counts[rows] += counts
        self.sums[rows] += sums
        self.previous[rows] = np.maximum(self.previous[rows], previous)


@dataclass(frozen=True)
class _Customers:
    """A batch's customer features, rows in customer-key order (`by_customer`), and for a batch in a single run
    the small customer level with the batch merged in (ratios included), ready to be applied."""

    by_customer: NDArray[np.intp]
    windows: _Windows
    averages: Floats
    """Per row and customer window (widest first): the average amount (the 1-hour one is not a feature)."""
    ratios: Floats
    earlier_max: Floats
    merged: _Level | None


class OnlineFeatureStore:
    """What the scorer remembers between micro-batches; `score` gives the offline values, batch by batch.

    `late_slack_ms` is how far behind the newest applied event time a row may be and still be scored
    exactly (partitions consumed at different paces); it costs that much more history in memory.
    """

    def __init__(self, config: FeatureConfig | None = None, *, late_slack_ms: int = MS_PER_DAY) -> None:
        self.config = config or FeatureConfig()
        if self.config.label_delay_ms <= 0:
            raise ValueError("the online store needs a label delay of at least one day")
        if late_slack_ms < 0:
            raise ValueError("late_slack_ms must be >= 0")
        self.late_slack_ms = late_slack_ms
        self._delay = self.config.label_delay_ms
        self._max_time = _TIME_MASK - 1 - self._delay - int(_TERMINAL_WIDTHS.max())
        self._origin: int | None = None
        self._newest = -1  # newest event time applied, relative
        self._held_ms: int | None = None  # see `hold`
        self._customer_codes: dict[str, int] = {}
        self._terminal_codes: dict[str, int] = {}
        # Applied rows in two sorted levels: a large main one rewritten rarely, a small one each batch goes into.
        self._customers = (_Level.empty(lasting=True), _Level.empty())
        # Terminal windows end a label delay back, so new terminal rows are only staged (unsorted) and merged
        # into the sorted level once many; a query reaching back to staged rows sorts them first.
        self._terminals = _Level.empty()
        self._staged: list[Int64s] = []
        self._staged_rows = 0
        self._staged_earliest = _TIME_MASK
        self._staged_sorted: Int64s | None = None
        self._customer_last_pruned: Int64s = np.empty(0, dtype=np.int64)  # per customer code, -1 if none
        # Recent transaction ids -> terminal key (a C hash table: a dict of strings cost ~0.75 µs a payment).
        self._recent = IdTable()
        self._id_size = 0  # an id's size in memory, for `nbytes`
        # Verdicts of applied transactions: id -> (terminal key, [(known_at relative, is_fraud)] in arrival order)
        self._verdicts: dict[str, tuple[int, list[tuple[int, bool]]]] = {}
        self._frauds: dict[str, tuple[int, Periods]] = {}  # those with fraud periods -> (terminal key, periods)
        self._pending: dict[str, list[tuple[int, bool]]] = {}  # verdicts (known_at ms, is_fraud) of unseen ids
        # At most the earliest of the pending ids' latest known_at: pruning looks through them only once it
        # may have passed (labels written ahead of their payments, as in a replay, are many).
        self._pending_earliest_ms = _NO_PENDING
        self._fraud_intervals: _FraudIntervals | None = None  # None: rebuild from `_frauds`
        self._applied_since_pruning = 0

    # ---------------------------------------------------------------------------------------------- public

    def score(self, batch: TransactionColumns) -> Floats:
        """Features (shape (len(batch), len(FEATURE_NAMES)), FEATURE_NAMES order) of each row as of its own
        event time, over everything applied before plus the earlier rows of this batch; then remembers the rows."""
        prepared = self._prepare(batch, scoring=True)
        features, customers = self._features(prepared)
        self._apply(prepared, customers)
        return features

    def peek(self, batch: TransactionColumns) -> Floats:
        """Same values as `score` would give, but the store is left unchanged (synchronous what-if scoring)."""
        return self._features(self._prepare(batch, scoring=True))[0]

    def remember(self, batch: TransactionColumns) -> None:
        """Apply rows without scoring them (rebuilding state from the log, other instances' partitions).

        Only their customer windows are computed: each row keeps its own `amount_to_customer_avg_30d`, which
        later rows of its customer look back on. Long batches go in parts, applied one after the other.
        """
        for start in range(0, len(batch), _MAX_BATCH_ROWS):
            prepared = self._prepare(_rows(batch, start, start + _MAX_BATCH_ROWS), scoring=False)
            if len(prepared.times):
                by_customer = np.argsort(prepared.customer_keys, kind="stable")
                runs = self._runs(prepared, by_customer, None)
                self._apply(prepared, self._customer_part(prepared, by_customer, runs))

    def observe_labels(
        self, transaction_ids: Sequence[str], is_fraud: NDArray[np.bool_], known_at_ms: NDArray[np.int64]
    ) -> None:
        """Verdicts, in arrival order; the latest per transaction wins (a fraud later reversed stops counting).

        A verdict holds from its known_at on: a payment at t sees, per transaction, the verdict known last at t
        (as `GET /v1/labels?as_of=t`), so a fraud reversed later still counted for payments before the reversal
        was known, and a verdict delivered twice changes nothing.
        """
        verdicts = np.asarray(is_fraud, dtype=np.bool_).reshape(-1).tolist()
        known = np.asarray(known_at_ms, dtype=np.int64).reshape(-1).tolist()
        if not len(transaction_ids) == len(verdicts) == len(known):
            raise ValueError("transaction_ids, is_fraud and known_at_ms must have the same length")
        origin = self._origin
        horizon = self._terminal_horizon()
        pending = self._pending
        keys = dict(zip(*self._recent.find(transaction_ids), strict=True))
        added: list[tuple[int, Periods]] = []
        for row, (transaction_id, fraud, known_at) in enumerate(zip(transaction_ids, verdicts, known, strict=True)):
            key = keys.get(row)
            if key is not None:
                assert origin is not None  # a transaction was applied
                self._record(transaction_id, key, [(known_at - origin, fraud)], added)
            elif origin is None or known_at - origin > horizon:
                pending.setdefault(transaction_id, []).append((known_at, fraud))
                self._pending_earliest_ms = min(self._pending_earliest_ms, known_at)
            else:
                # Known before the horizon: its transaction is older still, and would be forgotten.
                pending.pop(transaction_id, None)
        self._add_fraud_intervals(added)

    def seen(self, transaction_ids: Sequence[str]) -> NDArray[np.bool_]:
        """Per id: whether a transaction with that id was applied within the retention horizon.

        The log is at least once (a producer's retry can write a payment twice); the scorer scores a
        payment once and leaves repeats out of the state, so they never count twice in a window.
        """
        seen = np.zeros(len(transaction_ids), dtype=np.bool_)
        seen[self._recent.find(transaction_ids)[0]] = True
        return seen

    def hold(self, time_ms: int | None) -> None:
        """Keeps what rows from `time_ms` on (event time, UTC ms) will need, however far others run ahead.

        Forgetting then counts back from min(newest time applied, time_ms) instead of the newest: a partition
        catching up on a backlog holds its position; a time before the first batch holds everything; None
        releases the hold (the next pruning catches up).
        """
        self._held_ms = time_ms

    def stats(self) -> dict[str, int]:
        return {
            "customers": len(self._customer_codes),
            "terminals": len(self._terminal_codes),
            "customer_rows": sum(len(level) for level in self._customers),
            "terminal_rows": len(self._terminals) + self._staged_rows,
            "known_frauds": sum(periods[-1][1] == _STILL for _, periods in self._frauds.values()),
            "pending_labels": len(self._pending),
            "recent_transactions": len(self._recent),
        }

    def nbytes(self) -> int:
        """Approximate memory held: numpy arrays, plus dict tables and their keys and values (estimated)."""
        total = sum(level.nbytes for level in (*self._customers, self._terminals)) + self._customer_last_pruned.nbytes
        total += 8 * self._staged_rows + (self._staged_sorted.nbytes if self._staged_sorted is not None else 0)
        if self._fraud_intervals is not None:
            total += self._fraud_intervals.nbytes
        int_size = sys.getsizeof(1 << 50)
        pair_size = sys.getsizeof((0, 0)) + 2 * int_size
        listed_size = sys.getsizeof([]) + 8 + pair_size  # a list of one pair
        tables: list[tuple[Mapping[str, object], int]] = [
            (self._customer_codes, int_size),
            (self._terminal_codes, int_size),
            (self._verdicts, pair_size + listed_size),
            (self._frauds, pair_size + sys.getsizeof((0,)) + pair_size),
            (self._pending, listed_size),
        ]
        for table, value_size in tables:
            if table:
                key_size = sys.getsizeof(next(iter(table)))
                total += sys.getsizeof(table) + len(table) * (key_size + value_size)
        return total + self._recent.nbytes + len(self._recent) * self._id_size

    # ---------------------------------------------------------------------------------------- preparation

    def storable(self, times_ms: NDArray[np.int64], *, settle: bool = True) -> NDArray[np.bool_]:
        """Which event times fit the span the store's packed keys cover (about 35 years around the first
        payment it holds). The contract allows a century, so a payment dated decades away from the others is
        valid yet cannot be held: callers set it aside instead of failing the batch it came in.

        Before the first payment, `settle` fixes the span from these times, so the rows kept are exactly those
        that fit when the batch is applied; what-if scoring passes False and leaves it to the log."""
        times = np.asarray(times_ms, dtype=np.int64)
        origin = self._origin
        if origin is None and len(times):
            origin = self._first_origin(times)
            if settle:
                self._origin = origin
        relative = times - (origin or 0)
        return np.asarray((relative >= 0) & (relative <= self._max_time), dtype=np.bool_)

    def time_span(self) -> tuple[datetime, datetime] | None:
        """The earliest and latest event times the store can hold, once the first payments fixed them."""
        return None if self._origin is None else self._span(self._origin)

    def _span(self, origin: int) -> tuple[datetime, datetime]:
        return _EPOCH + origin * _MILLISECOND, _EPOCH + (origin + self._max_time) * _MILLISECOND

    @staticmethod
    def _first_origin(times_ms: NDArray[np.int64]) -> int:
        return int(np.median(times_ms)) - _ORIGIN_SLACK_MS

    def _reference(self) -> int:
        """The relative time retention counts back from: the newest applied, or the held time if earlier."""
        if self._held_ms is None or self._origin is None:
            return self._newest
        return min(self._newest, self._held_ms - self._origin)

    def _terminal_horizon(self) -> int:
        """Relative time at or before which terminal rows, recent transactions and frauds may be dropped."""
        return self._reference() - self.config.terminal_retention_ms - self.late_slack_ms

    def _prepare(self, batch: TransactionColumns, *, scoring: bool) -> _Batch:
        n = len(batch)
        if scoring and n > _MAX_BATCH_ROWS:
            raise ValueError(f"a scored batch has at most {_MAX_BATCH_ROWS:,} rows, got {n:,}")
        origin = self._origin
        if origin is None:
            origin = self._first_origin(batch.times_ms) if n else 0
        times = batch.times_ms - origin
        if n and (int(times.min()) < 0 or int(times.max()) > self._max_time):
            low, high = self._span(origin)
            raise ValueError(f"event times must lie within [{low.isoformat()}, {high.isoformat()}] for this store")
        customer_codes, new_customers = _encode(batch.customer_ids, self._customer_codes)
        terminal_codes, new_terminals = _encode(batch.terminal_ids, self._terminal_codes)
        fraud_rows: list[int] = []
        fraud_periods: list[tuple[int, int]] = []
        # Looked up at C speed first: the rows whose verdicts came first are few, the others many.
        early = self._pending.keys() & batch.transaction_ids if scoring and self._pending else None
        if early:
            pending = self._pending
            for i, transaction_id in enumerate(batch.transaction_ids):
                if transaction_id in early:
                    verdicts = pending[transaction_id]
                    for period in _fraud_periods([(known_at - origin, fraud) for known_at, fraud in verdicts]):
                        fraud_rows.append(i)
                        fraud_periods.append(period)
        return _Batch(
            ids=batch.transaction_ids,
            times=times,
            amounts=batch.amounts,
            customer_codes=customer_codes,
            customer_keys=(customer_codes << _TIME_BITS) + times,
            terminal_keys=(terminal_codes << _TIME_BITS) + times,
            origin=origin,
            new_customers=new_customers,
            new_terminals=new_terminals,
            fraud_rows=np.array(fraud_rows, dtype=np.int64),
            fraud_periods=np.array(fraud_periods, dtype=np.int64).reshape(-1, 2),
        )

    # ------------------------------------------------------------------------------------------- features

    def _features(self, batch: _Batch) -> tuple[Floats, _Customers | None]:
        """The batch's features, and what its customers' rows need to be applied (None for an empty batch)."""
        n = len(batch.times)
        out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
        if n == 0:
            return out, None
        absolute = batch.times + batch.origin
        day_numbers = absolute // MS_PER_DAY
        out[:, _COLUMN["amount"]] = batch.amounts
        out[:, _COLUMN["is_weekend"]] = _WEEKEND[(day_numbers + _EPOCH_WEEKDAY) % 7]
        out[:, _COLUMN["is_night"]] = _NIGHT[(absolute - day_numbers * MS_PER_DAY) // MS_PER_HOUR]

        # Rows are queried in key order: sorted needles search faster, and window sums stay local.
        by_customer = np.argsort(batch.customer_keys, kind="stable")
        by_terminal = np.argsort(batch.terminal_keys, kind="stable")
        runs = self._runs(batch, by_customer, by_terminal)
        customers = self._customer_part(batch, by_customer, runs)
        for window, column in enumerate(_CUSTOMER_COUNTS):
            out[by_customer, column] = customers.windows.counts[:, window]
        for window, column in _CUSTOMER_AVERAGES:
            out[by_customer, column] = customers.averages[:, window]
        previous = customers.windows.previous
        out[by_customer, _COLUMN["customer_hours_since_previous"]] = np.where(
            previous >= 0, (batch.times[by_customer] - previous) / MS_PER_HOUR, np.nan
        )
        out[by_customer, _COLUMN["amount_to_customer_avg_30d"]] = customers.ratios
        out[by_customer, _COLUMN[EARLIER_MAX_RATIO]] = customers.earlier_max

        terminal_counts, frauds = self._terminal_part(batch, by_terminal, runs)
        for window, days in enumerate(_TERMINAL_DAYS):
            in_window = terminal_counts[:, window]
            out[by_terminal, _COLUMN[f"terminal_nb_tx_{days}d"]] = in_window
            out[by_terminal, _COLUMN[f"terminal_risk_{days}d"]] = np.divide(
                frauds[:, window], in_window, out=np.zeros(n), where=in_window > 0
            )
        return out, customers

    def _customer_part(self, batch: _Batch, by_customer: NDArray[np.intp], runs: list[tuple[int, int]]) -> _Customers:
        """The customer features of a non-empty batch, rows in customer-key order.

        The store, and the batch's own rows. In the common case (a single run) the batch is merged into the small
        customer level, each row seeing the rows before it there (stably sorted: the store's rows of the same
        key, then its batch's earlier ones) and itself. The ratios of the batch's rows come from its windows,
        so the earlier-ratio maximum, which looks at earlier rows of the batch too, comes last.
        """
        n = len(batch.times)
        customer_keys = batch.customer_keys[by_customer]
        customer_times = batch.times[by_customer]
        lows = _customer_bounds(customer_keys, customer_times)
        windows = _Windows(
            counts=np.zeros((n, len(_CUSTOMER_WIDTHS)), dtype=np.int64),
            sums=np.zeros((n, len(_CUSTOMER_WIDTHS)), dtype=np.float64),
            previous=np.full(n, -1, dtype=np.int64),
        )
        main, recent = self._customers
        # Per level: where each row's windows start and end in it (the earlier-ratio maximum's come from there).
        seen: list[tuple[_Level, Int64s, Int64s]] = []
        if len(main):
            part = _customer_windows(main, lows, customer_keys)
            windows.add_customers(part)
            seen.append((main, part.positions[:, _EARLIER_WINDOW], part.positions[:, -1]))
        merged: _Level | None = None
        if len(runs) == 1:
            merged, slots = recent.merged_at(customer_keys, batch.amounts[by_customer])
            part = _customer_windows(merged, lows, customer_keys, slots + 1)
            windows.add_customers(part)
            seen.append((merged, part.positions[:, _EARLIER_WINDOW], slots))
        else:
            if len(recent):
                part = _customer_windows(recent, lows, customer_keys)
                windows.add_customers(part)
                seen.append((recent, part.positions[:, _EARLIER_WINDOW], part.positions[:, -1]))
            self._add_customer_runs(batch, runs, by_customer, lows, windows)
        # A customer's last row may be older than the store's rows.
        codes = customer_keys >> _TIME_BITS
        last_pruned = self._customer_last_pruned
        pruned = last_pruned[np.minimum(codes, len(last_pruned) - 1)] if len(last_pruned) else np.full(n, -1)
        pruned_usable = (codes < len(last_pruned)) & (pruned <= customer_times)
        windows.previous = np.maximum(windows.previous, np.where(pruned_usable, pruned, -1))

        averages = windows.sums / windows.counts
        ratios = batch.amounts[by_customer] / averages[:, _CUSTOMER_30D]
        if merged is not None:
            merged.ratios[slots] = ratios  # the level was built for this batch: nothing else holds it yet
        maxima = np.full(n, np.nan, dtype=np.float64)
        for level, starts, ends in seen:
            maxima = np.fmax(maxima, _earlier_max(level, starts, ends, customer_keys))
        if merged is None:
            self._add_run_maxima(batch, runs, by_customer, ratios, lows[:, _EARLIER_WINDOW], maxima)
        return _Customers(by_customer, windows, averages, ratios, maxima, merged)

    def _add_customer_runs(
        self,
        batch: _Batch,
        runs: list[tuple[int, int]],
        by_customer: NDArray[np.intp],
        lows: Int64s,
        windows: _Windows,
    ) -> None:
        """The batch's own rows, run by run: each run sees the batch's prefix up to its end.

        Sorting the prefix stably by key puts before each row of the run exactly the prefix rows applied
        before it and not later in time (a run's own rows never go back in time), and the row itself.
        """
        customer_place = _places(by_customer)
        for start, stop in runs:
            order = np.argsort(batch.customer_keys[:stop], kind="stable")
            prefix = _Level(batch.customer_keys[:stop][order], batch.amounts[:stop][order])
            rank = np.empty(stop, dtype=np.int64)
            rank[order] = np.arange(stop)
            rows = start + np.argsort(rank[start:stop])  # the run's rows in key order
            places = customer_place[rows]
            parts = _customer_windows(prefix, lows[places], batch.customer_keys[rows], rank[rows] + 1)
            windows.add_customers(parts, places)

    def _add_run_maxima(
        self,
        batch: _Batch,
        runs: list[tuple[int, int]],
        by_customer: NDArray[np.intp],
        ratios: Floats,
        earlier_lows: Int64s,
        maxima: Floats,
    ) -> None:
        """The earlier-ratio maximum over the batch's own rows, run by run (rows and ratios in customer-key order):
        the prefix rows of the customer earlier in time were all applied before the row (a run never goes back)."""
        customer_place = _places(by_customer)
        in_batch_order = np.empty(len(ratios), dtype=np.float64)
        in_batch_order[by_customer] = ratios
        for start, stop in runs:
            order = np.argsort(batch.customer_keys[:stop], kind="stable")
            keys = batch.customer_keys[:stop][order]
            prefix = _Level(keys, _NO_VALUES, ratios=in_batch_order[:stop][order])
            places = customer_place[start:stop]
            found = prefix.earlier_max(earlier_lows[places], batch.customer_keys[start:stop])
            maxima[places] = np.fmax(maxima[places], found)

    def _terminal_part(
        self, batch: _Batch, by_terminal: NDArray[np.intp], runs: list[tuple[int, int]]
    ) -> tuple[Int64s, Int64s]:
        """Rows and known frauds in each terminal window (widest first), rows in terminal-key order."""
        terminal_keys = batch.terminal_keys[by_terminal]
        bounds = _terminal_bounds(terminal_keys, batch.times[by_terminal], self._delay)
        counts = np.zeros((len(terminal_keys), len(_TERMINAL_WIDTHS)), dtype=np.int64)
        frauds = self._intervals().counts(terminal_keys)
        if len(self._terminals):
            counts += _terminal_windows(self._terminals.keys, bounds)
        staged = self._staged_needed(int(batch.times.max()) - self._delay)
        if staged is not None:
            counts += _terminal_windows(staged, bounds)
        # Out of order, the batch's own rows are added run by run. In order, they reach each other's terminal
        # windows only in a batch spanning at least a label delay.
        if len(runs) > 1:
            terminal_place = _places(by_terminal)
            for start, stop in runs:
                rows = np.arange(start, stop)
                places = terminal_place[rows]
                counts[places] += _terminal_windows(np.sort(batch.terminal_keys[:stop]), bounds[places])
                in_prefix = batch.fraud_rows < stop
                if in_prefix.any():
                    periods = batch.fraud_periods[in_prefix]
                    own_frauds = _FraudIntervals.build(
                        batch.terminal_keys[batch.fraud_rows[in_prefix]], periods[:, 0], periods[:, 1], self._delay
                    )
                    frauds[places] += own_frauds.counts(batch.terminal_keys[rows])
        elif int(batch.times.max()) - int(batch.times.min()) >= self._delay:
            counts += _terminal_windows(terminal_keys, bounds)
            if len(batch.fraud_rows):
                periods = batch.fraud_periods
                own_frauds = _FraudIntervals.build(
                    batch.terminal_keys[batch.fraud_rows], periods[:, 0], periods[:, 1], self._delay
                )
                frauds += own_frauds.counts(terminal_keys)
        return counts, frauds

    def _runs(
        self, batch: _Batch, by_customer: NDArray[np.intp], by_terminal: NDArray[np.intp] | None
    ) -> list[tuple[int, int]]:
        """Runs of the batch in which no row comes before an earlier row of its customer in time, nor a whole
        delay before an earlier row of its terminal: then no later row of a run is in an earlier row's
        windows, and a run can be answered from the batch's prefix at once. Without `by_terminal`, runs for
        the customer windows only (rows remembered, whose terminal windows nobody asks for)."""
        n = len(batch.times)
        # A terminal row can only come a whole delay before an earlier one in a batch spanning that long.
        short = int(batch.times.max()) - int(batch.times.min()) < self._delay
        if _is_sorted_within(batch.customer_keys, by_customer) and (
            by_terminal is None or short or _is_sorted_within(batch.terminal_keys, by_terminal)
        ):
            return [(0, n)]
        late = _out_of_order(batch.customer_keys >> _TIME_BITS, batch.times, 0)
        if by_terminal is not None:
            late |= _out_of_order(batch.terminal_keys >> _TIME_BITS, batch.times, self._delay - 1)
        starts = {0, n, *np.flatnonzero(late).tolist()}
        return list(itertools.pairwise(sorted(starts)))

    def _staged_needed(self, latest_upper: int) -> Int64s | None:
        """The staged terminal keys, sorted, if a window ending at `latest_upper` can reach them."""
        if not self._staged or self._staged_earliest > latest_upper:
            return None
        if self._staged_sorted is None:
            self._staged_sorted = np.sort(np.concatenate(self._staged))
        return self._staged_sorted

    def _intervals(self) -> _FraudIntervals:
        if self._fraud_intervals is None:
            self._fraud_intervals = _FraudIntervals.of_periods(list(self._frauds.values()), self._delay)
        return self._fraud_intervals

    def _record(
        self, transaction_id: str, key: int, verdicts: list[tuple[int, bool]], added: list[tuple[int, Periods]]
    ) -> None:
        """Verdicts (relative known_at, is_fraud) of an applied transaction; its new fraud intervals go to `added`
        when they only add to the known ones, else the intervals are rebuilt."""
        entry = self._verdicts.get(transaction_id)
        history = entry[1] + verdicts if entry is not None else verdicts
        self._verdicts[transaction_id] = (key, history)
        periods = _fraud_periods(history)
        before = self._frauds.get(transaction_id)
        if (before[1] if before is not None else ()) == periods:
            return
        if periods:
            self._frauds[transaction_id] = (key, periods)
        else:
            del self._frauds[transaction_id]
        if before is None:
            added.append((key, periods))
        else:
            self._fraud_intervals = None

    def _add_fraud_intervals(self, added: list[tuple[int, Periods]]) -> None:
        if added and self._fraud_intervals is not None:
            self._fraud_intervals = self._fraud_intervals.with_added(added, self._delay)

    # ------------------------------------------------------------------------------------------- applying

    def _apply(self, batch: _Batch, customers: _Customers | None) -> None:
        """Remembers the batch; `customers`: its customer features (None for an empty batch)."""
        n = len(batch.times)
        if n == 0 or customers is None:
            return
        self._origin = batch.origin
        self._customer_codes.update(batch.new_customers)
        self._terminal_codes.update(batch.new_terminals)
        missing = len(self._customer_codes) - len(self._customer_last_pruned)
        if missing > 0:
            grown = max(missing, len(self._customer_last_pruned) // 2)
            self._customer_last_pruned = np.r_[self._customer_last_pruned, np.full(grown, -1, dtype=np.int64)]

        recent_customers = customers.merged
        if recent_customers is None:
            order = customers.by_customer
            recent_customers = self._customers[1].merged(
                batch.customer_keys[order], batch.amounts[order], customers.ratios
            )
        self._add_customers(recent_customers)
        self._stage_terminals(batch.terminal_keys, int(batch.times.min()))

        ids = list(batch.ids)
        self._recent.add(ids, batch.terminal_keys, batch.times)
        self._id_size = sys.getsizeof(ids[0])
        early = self._pending.keys() & ids if self._pending else None
        if early:
            pop = self._pending.pop
            added: list[tuple[int, Periods]] = []
            for transaction_id, key in zip(ids, batch.terminal_keys.tolist(), strict=True):
                verdicts = pop(transaction_id, None) if transaction_id in early else None
                if verdicts is not None:
                    relative = [(known_at - batch.origin, fraud) for known_at, fraud in verdicts]
                    self._record(transaction_id, key, relative, added)
            self._add_fraud_intervals(added)
        self._newest = max(self._newest, int(batch.times.max()))
        self._applied_since_pruning += n
        stored = len(self._terminals) + self._staged_rows
        if self._applied_since_pruning >= max(_PRUNE_MIN_ROWS, _PRUNE_FRACTION * stored):
            self._prune()

    def _add_customers(self, recent: _Level) -> None:
        """The new small level, merged into the main one when grown large."""
        main = self._customers[0]
        if len(recent) >= max(_RECENT_LEVEL_MIN_ROWS, len(main) * _RECENT_LEVEL_FRACTION):
            main, recent = main.merged(recent.keys, recent.amounts, recent.ratios), _Level.empty()
        self._customers = (main, recent)

    def _stage_terminals(self, keys: Int64s, earliest: int) -> None:
        self._staged.append(keys)
        self._staged_rows += len(keys)
        self._staged_earliest = min(self._staged_earliest, earliest)
        self._staged_sorted = None
        if self._staged_rows >= max(_RECENT_LEVEL_MIN_ROWS, len(self._terminals) * _RECENT_LEVEL_FRACTION):
            self._merge_staged()

    def _merge_staged(self) -> None:
        if self._staged:
            self._terminals = self._terminals.merged(np.sort(np.concatenate(self._staged)))
        self._staged, self._staged_rows, self._staged_earliest, self._staged_sorted = [], 0, _TIME_MASK, None

    def _prune(self) -> None:
        self._applied_since_pruning = 0
        recent = self._customers[1]
        customers = self._customers[0].merged(recent.keys, recent.amounts, recent.ratios)
        customer_horizon = self._reference() - self.config.customer_retention_ms - self.late_slack_ms
        old = (customers.keys & _TIME_MASK) <= customer_horizon
        if old.any():
            gone = customers.keys[old]
            codes = gone >> _TIME_BITS
            last = np.r_[codes[1:] != codes[:-1], True]
            self._customer_last_pruned[codes[last]] = np.maximum(
                self._customer_last_pruned[codes[last]], gone[last] & _TIME_MASK
            )
            customers = customers.kept(~old)
        self._customers = (customers, _Level.empty())
        horizon = self._terminal_horizon()
        self._merge_staged()
        self._terminals = self._terminals.kept((self._terminals.keys & _TIME_MASK) > horizon)
        self._recent.forget(horizon)
        self._verdicts = {tid: entry for tid, entry in self._verdicts.items() if entry[0] & _TIME_MASK > horizon}
        kept = {tid: entry for tid, entry in self._frauds.items() if entry[0] & _TIME_MASK > horizon}
        if len(kept) != len(self._frauds):
            self._frauds = kept
            self._fraud_intervals = None
        origin = self._origin or 0
        if self._pending and self._pending_earliest_ms - origin <= horizon:
            pending: dict[str, list[tuple[int, bool]]] = {}
            earliest = _NO_PENDING
            for tid, verdicts in self._pending.items():
                latest = max(known_at for known_at, _ in verdicts)
                if latest - origin > horizon:
                    pending[tid] = verdicts
                    earliest = min(earliest, latest)
            self._pending, self._pending_earliest_ms = pending, earliest

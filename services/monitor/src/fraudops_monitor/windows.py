"""The live side of every comparison: recent features, and scores waiting for (or joined with) their labels.

Both are bounded: the feature window by row count and event-time age, the scored log by event-time age,
pending labels by count. Appends are batches of numpy arrays; reads are snapshots the evaluation owns.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Int64s = NDArray[np.int64]

NO_LABEL = -1


class FeatureWindow:
    """The newest transactions' features, at most `max_rows` and at most `max_age_ms` behind the newest."""

    def __init__(self, n_features: int, max_rows: int, max_age_ms: int) -> None:
        self.n_features = n_features
        self.max_rows = max_rows
        self.max_age_ms = max_age_ms
        self._chunks: list[tuple[NDArray[np.object_], Int64s, Floats]] = []
        self._rows = 0
        self.newest_ms = -1

    def append(self, transaction_ids: Sequence[str], times_ms: Int64s, features: Floats) -> None:
        if features.shape != (times_ms.shape[0], self.n_features) or len(transaction_ids) != times_ms.shape[0]:
            raise ValueError(
                f"need {times_ms.shape[0]} ids and features of shape ({times_ms.shape[0]}, {self.n_features})"
            )
        if times_ms.shape[0] == 0:
            return
        self._chunks.append(
            (
                np.asarray(transaction_ids, dtype=object),
                times_ms.astype(np.int64, copy=True),
                features.astype(np.float64, copy=True),
            )
        )
        self._rows += times_ms.shape[0]
        self.newest_ms = max(self.newest_ms, int(times_ms.max()))
        if self._rows > 2 * self.max_rows:
            self._compact()

    def snapshot(self) -> tuple[NDArray[np.object_], Int64s, Floats]:
        """(transaction ids, event times, features) of the rows inside the window, oldest first."""
        self._compact()
        if not self._chunks:
            return np.empty(0, dtype=object), np.empty(0, dtype=np.int64), np.empty((0, self.n_features))
        return self._chunks[0]

    def __len__(self) -> int:
        return self._rows

    def _compact(self) -> None:
        if not self._chunks:
            return
        ids = np.concatenate([i for i, _, _ in self._chunks])
        times = np.concatenate([t for _, t, _ in self._chunks])
        features = np.concatenate([f for _, _, f in self._chunks])
        # Partitions are read at different paces: order by event time before keeping the newest.
        order = np.argsort(times, kind="stable")
        ids, times, features = ids[order], times[order], features[order]
        oldest_kept = int(np.searchsorted(times, self.newest_ms - self.max_age_ms, side="right"))
        start = max(oldest_kept, len(times) - self.max_rows)
        self._chunks = [(ids[start:], times[start:], features[start:])]
        self._rows = len(times) - start


@dataclass(frozen=True)
class ScoredSnapshot:
    """Columns of the scored log at one moment; `label` is NO_LABEL, 0 or 1."""

    transaction_ids: NDArray[np.object_]
    customer_ids: NDArray[np.object_]
    event_ms: Int64s
    scores: Floats
    flagged: NDArray[np.bool_]
    model_versions: NDArray[np.object_]
    labels: NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.event_ms.shape[0])


@dataclass(frozen=True)
class LabelOutcome:
    matched: int
    pending: int
    # Event-to-label delays (seconds) of the labels just matched, for the delay histogram.
    delays_s: Floats
    # Waiting labels dropped (oldest first) to stay within the cap: counted as unmatched.
    dropped: int = 0


class ScoredLog:
    """Scores kept for `retention_ms` of event time, joined with their labels whenever either arrives first."""

    def __init__(self, retention_ms: int, label_wait_ms: int, max_pending: int) -> None:
        self.retention_ms = retention_ms
        self.label_wait_ms = label_wait_ms
        self.max_pending = max_pending
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._customers: list[str] = []
        self._versions: list[str] = []
        self._event = np.empty(0, dtype=np.int64)
        self._scores = np.empty(0, dtype=np.float64)
        self._flagged = np.empty(0, dtype=np.bool_)
        self._labels = np.empty(0, dtype=np.int8)
        self._known = np.empty(0, dtype=np.int64)
        self._size = 0
        # Labels whose score has not been seen: id -> (is_fraud, known_at ms, newest event time when it came).
        self._pending: OrderedDict[str, tuple[bool, int, int]] = OrderedDict()
        self.newest_ms = -1
        self.unmatched = 0

    def __len__(self) -> int:
        return self._size

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add_scores(
        self,
        transaction_ids: Sequence[str],
        customer_ids: Sequence[str],
        event_ms: Int64s,
        scores: Floats,
        flagged: NDArray[np.bool_],
        model_versions: Sequence[str],
    ) -> LabelOutcome:
        """Log scores (a repeated transaction keeps its first score); labels that were waiting are joined."""
        fresh: list[int] = []
        start = self._size
        for i, tid in enumerate(transaction_ids):
            if tid not in self._index:
                self._index[tid] = start + len(fresh)
                fresh.append(i)
        if not fresh:
            return LabelOutcome(0, self.pending, np.empty(0))
        rows = np.asarray(fresh, dtype=np.int64)
        self._reserve(self._size + len(fresh))
        stop = start + len(fresh)
        self._ids.extend(transaction_ids[i] for i in fresh)
        self._customers.extend(customer_ids[i] for i in fresh)
        self._versions.extend(model_versions[i] for i in fresh)
        self._event[start:stop] = event_ms[rows]
        self._scores[start:stop] = scores[rows]
        self._flagged[start:stop] = flagged[rows]
        self._labels[start:stop] = NO_LABEL
        self._known[start:stop] = 0
        self._size = stop
        self.newest_ms = max(self.newest_ms, int(event_ms.max()))
        outcome = self._join_pending([transaction_ids[i] for i in fresh])
        self._forget_old()
        return outcome

    def add_labels(
        self, transaction_ids: Sequence[str], is_fraud: Sequence[bool], known_at_ms: Sequence[int]
    ) -> LabelOutcome:
        """Join labels to logged scores; the others wait (bounded) for their score. The latest verdict wins."""
        delays: list[float] = []
        matched = 0
        for tid, fraud, known in zip(transaction_ids, is_fraud, known_at_ms, strict=True):
            row = self._index.get(tid)
            if row is None:
                waiting = self._pending.pop(tid, None)
                if waiting is not None and waiting[1] > int(known):
                    self._pending[tid] = waiting  # a verdict known earlier does not replace a later one
                else:
                    self._pending[tid] = (bool(fraud), int(known), self.newest_ms)
                continue
            if self._labels[row] == NO_LABEL:
                matched += 1
                delays.append(max(0, int(known) - int(self._event[row])) / 1000.0)
            if int(known) >= self._known[row]:
                self._labels[row] = 1 if fraud else 0
                self._known[row] = int(known)
        dropped = max(0, len(self._pending) - self.max_pending)
        for _ in range(dropped):
            self._pending.popitem(last=False)
        self.unmatched += dropped
        return LabelOutcome(matched, self.pending, np.asarray(delays, dtype=np.float64), dropped)

    def scores_of(self, transaction_ids: Sequence[str], model_version: str) -> Floats:
        """Each transaction's score by `model_version`; NaN if it has none (not scored yet, or by another)."""
        out = np.full(len(transaction_ids), np.nan)
        index, versions = self._index, self._versions
        for position, tid in enumerate(transaction_ids):
            row = index.get(tid)
            if row is not None and versions[row] == model_version:
                out[position] = self._scores[row]
        return out

    def snapshot(self, since_ms: int | None = None) -> ScoredSnapshot:
        """Copies of the rows with event time >= `since_ms` (all rows if None)."""
        n = self._size
        rows = slice(0, n) if since_ms is None else np.flatnonzero(self._event[:n] >= since_ms)
        return ScoredSnapshot(
            transaction_ids=np.asarray(self._ids, dtype=object)[rows],
            customer_ids=np.asarray(self._customers, dtype=object)[rows],
            event_ms=self._event[:n][rows].copy(),
            scores=self._scores[:n][rows].copy(),
            flagged=self._flagged[:n][rows].copy(),
            model_versions=np.asarray(self._versions, dtype=object)[rows],
            labels=self._labels[:n][rows].copy(),
        )

    def _join_pending(self, transaction_ids: Sequence[str]) -> LabelOutcome:
        if not self._pending:
            return LabelOutcome(0, 0, np.empty(0))
        waiting = [(tid, self._pending.pop(tid)) for tid in transaction_ids if tid in self._pending]
        if not waiting:
            return LabelOutcome(0, self.pending, np.empty(0))
        outcome = self.add_labels([tid for tid, _ in waiting], [v[0] for _, v in waiting], [v[1] for _, v in waiting])
        return outcome

    def expire_pending(self) -> int:
        """Count as unmatched the labels that waited `label_wait_ms` of event time for a score; return how many."""
        expired = 0
        deadline = self.newest_ms - self.label_wait_ms
        while self._pending:
            _tid, (_, _, seen_at) = next(iter(self._pending.items()))
            if seen_at > deadline:
                break
            self._pending.popitem(last=False)
            expired += 1
        self.unmatched += expired
        return expired

    def _reserve(self, capacity: int) -> None:
        if capacity <= self._event.shape[0]:
            return
        size = max(capacity, 2 * self._event.shape[0], 1024)
        for name in ("_event", "_scores", "_flagged", "_labels", "_known"):
            old = getattr(self, name)
            grown = np.empty(size, dtype=old.dtype)
            grown[: self._size] = old[: self._size]
            setattr(self, name, grown)

    def _forget_old(self) -> None:
        n = self._size
        old = self._event[:n] < self.newest_ms - self.retention_ms
        # Rewriting the log costs O(n): only once a quarter of it is stale.
        if int(old.sum()) * 4 < n:
            return
        keep = np.flatnonzero(~old)
        for name in ("_event", "_scores", "_flagged", "_labels", "_known"):
            column = getattr(self, name)
            column[: keep.shape[0]] = column[keep]
        self._ids = [self._ids[i] for i in keep]
        self._customers = [self._customers[i] for i in keep]
        self._versions = [self._versions[i] for i in keep]
        self._size = keep.shape[0]
        self._index = {tid: i for i, tid in enumerate(self._ids)}

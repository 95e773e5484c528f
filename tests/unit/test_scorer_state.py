"""The scorer's shared feature state rebuilt from a log that keeps growing while it is read.

A fake consumer stands in for Kafka, so the orderings that only happen now and then on a loaded machine
(a payment appended between the rebuild's end-offsets request and its fetch) happen every time here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndTimestamp
from prometheus_client import CollectorRegistry

from fraudops.contracts.hotpath import TransactionDecoder, TransactionRows
from fraudops.contracts.messages import Transaction
from fraudops.features import FEATURE_NAMES, FeatureConfig
from fraudops.features.offline import compute_features
from fraudops.features.online import OnlineFeatureStore, TransactionColumns
from fraudops_scorer.metrics import ScorerMetrics
from fraudops_scorer.settings import ScorerSettings
from fraudops_scorer.state import SharedState, columns_of, outside_span_error, storable_rows

TOKEN = "q2V8pXr4Lm9Zt7Bn3Kd6Hs1Wf5Yc0Ja"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
TRANSACTIONS, LABELS = "transactions", "labels"
OWNED, FOLLOWED = TopicPartition(TRANSACTIONS, 0), TopicPartition(TRANSACTIONS, 1)
LABELS_0 = TopicPartition(LABELS, 0)


class FakeLog:
    """Partitions of records; `before_fetch` runs before each fetch, as a producer writing meanwhile would."""

    def __init__(self) -> None:
        self.records: dict[TopicPartition, list[bytes]] = {OWNED: [], FOLLOWED: [], LABELS_0: []}
        self.before_fetch: Callable[[], None] = lambda: None

    def append(self, tp: TopicPartition, values: Iterable[bytes]) -> None:
        self.records[tp].extend(values)


class _Client:
    async def add_topic(self, topic: str) -> None:
        return None

    async def force_metadata_update(self) -> bool:
        return True


class FakeConsumer:
    """The part of AIOKafkaConsumer the shared state uses, over a FakeLog (every record is in the horizon)."""

    def __init__(self, log: FakeLog) -> None:
        self.log = log
        self._client = _Client()
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.log.records if tp.topic == topic}

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._positions = dict.fromkeys(partitions, 0)
        self._paused = set()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(partitions)

    async def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log.records[tp]) for tp in partitions}

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        return {tp: OffsetAndTimestamp(0, 0) if self.log.records[tp] else None for tp in timestamps}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        self.log.before_fetch()
        wanted = [tp for tp in (partitions or self._positions) if tp not in self._paused]
        out: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for tp in wanted:
            start = self._positions[tp]
            values = self.log.records[tp][start:]
            if values:
                out[tp] = [_record(tp, start + i, value) for i, value in enumerate(values)]
                self._positions[tp] = start + len(values)
        if not out:
            await asyncio.sleep(0.005)
        return out


def _record(tp: TopicPartition, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    written_ms = int(time.time() * 1000)  # these payments are all dated before it
    return ConsumerRecord(tp.topic, tp.partition, offset, written_ms, 0, None, value, None, 0, len(value), ())


def _payments(count: int, customers: int, start: datetime, step: timedelta, prefix: str) -> pd.DataFrame:
    rows = [
        (f"{prefix}{i}", start + i * step, f"{prefix}-c{i % customers}", f"t{i % 7}", 10.0 + i % 13)
        for i in range(count)
    ]
    return pd.DataFrame(rows, columns=["transaction_id", "event_time", "customer_id", "terminal_id", "amount"])


def _avro(frame: pd.DataFrame) -> list[bytes]:
    return [
        Transaction(
            transaction_id=tid,
            event_time=moment.to_pydatetime(),
            customer_id=customer,
            terminal_id=terminal,
            amount=amount,
        ).to_avro()
        for tid, moment, customer, terminal, amount in zip(
            frame["transaction_id"].tolist(),
            pd.to_datetime(frame["event_time"], utc=True),
            frame["customer_id"].tolist(),
            frame["terminal_id"].tolist(),
            frame["amount"].tolist(),
            strict=True,
        )
    ]


def _state(log: FakeLog, **settings: Any) -> SharedState:
    config = ScorerSettings(
        tokens={"operator": TOKEN},
        topics={"transactions": TRANSACTIONS, "labels": LABELS},
        **settings,
    )
    state = SharedState(config, ScorerMetrics(CollectorRegistry()), TransactionDecoder())
    state._consumer = FakeConsumer(log)
    state._offsets = FakeConsumer(log)
    return state


async def test_payments_written_while_the_rebuild_reads_another_instances_partition_reach_the_state() -> None:
    log = FakeLog()
    before = _payments(50, 5, T0, timedelta(minutes=10), "early")
    during = _payments(50, 5, T0 + timedelta(days=1), timedelta(minutes=10), "late")
    log.append(FOLLOWED, _avro(before))
    pending = [_avro(during)]

    def producer_writes() -> None:
        # After the rebuild asked where the partition ends, before its first fetch.
        if pending:
            log.append(FOLLOWED, pending.pop())

    log.before_fetch = producer_writes
    state = _state(log)
    try:
        await state.rebuild(FeatureConfig(), {OWNED: 0})
        await state.catch_up(time.monotonic())
        ids = [*before["transaction_id"], *during["transaction_id"]]
        missing = [tid for tid, seen in zip(ids, state.store.seen(ids).tolist(), strict=True) if not seen]
        assert not missing, f"{len(missing)} payments of the followed partition never reached the state"
    finally:
        await state._stop_following()


async def test_a_rebuild_keeps_the_history_an_owned_partition_behind_the_others_resumes_with() -> None:
    # The owned partition was scored up to day 16.6 and resumes at day 20 (a backlog); the other instance's
    # partition has run on to day 62.5, further ahead than the store's late slack.
    log = FakeLog()
    owned = _payments(200, 4, T0, timedelta(hours=2), "own")  # days 0 to 16.6, all committed
    resume = _payments(4, 4, T0 + timedelta(days=20), timedelta(hours=1), "next")
    resume["customer_id"] = [f"own-c{i}" for i in range(4)]
    followed = _payments(6_000, 300, T0, timedelta(minutes=15), "other")  # days 0 to 62.5
    log.append(OWNED, _avro(owned) + _avro(resume))
    log.append(FOLLOWED, _avro(followed))
    state = _state(log)
    try:
        await state.rebuild(FeatureConfig(), {OWNED: len(owned)})
        # As the worker holds it for a partition with a backlog.
        state.store.hold(int(resume["event_time"].min().timestamp() * 1000))
        online = state.store.score(TransactionColumns.from_frame(resume))
    finally:
        await state._stop_following()
    # Ordered as the log was read: the owned partition's history, the other partition's, then the batch.
    everything = pd.concat([owned, followed, resume], ignore_index=True)
    offline = compute_features(everything).tail(len(resume))[list(FEATURE_NAMES)].to_numpy()
    np.testing.assert_allclose(online, offline, rtol=1e-9, equal_nan=True)
    # The payments read back during the rebuild count with their own ratios in the 7-day maximum.
    assert not np.isnan(online[:, FEATURE_NAMES.index("max_amount_to_customer_avg_30d_previous_7d")]).any()


def _rows_at(*times: datetime) -> TransactionRows:
    return TransactionRows(
        positions=list(range(len(times))),
        transaction_ids=[f"span-{n}" for n in range(len(times))],
        customer_ids=["c-1"] * len(times),
        terminal_ids=["t-1"] * len(times),
        times_ms=[int(t.timestamp() * 1000) for t in times],
        amounts=[10.0] * len(times),
    )


def test_a_payment_dated_decades_away_is_set_aside_and_the_rest_is_held() -> None:
    store = OnlineFeatureStore()
    now = datetime(2026, 11, 29, tzinfo=UTC)
    # In the first batch: one payment of 2000 must not drag the span away from the live ones.
    first = _rows_at(now, datetime(2000, 1, 1, tzinfo=UTC), now + timedelta(minutes=1))
    kept, aside = storable_rows(store, first)
    assert aside == [1]
    assert kept.transaction_ids == ["span-0", "span-2"]
    store.remember(columns_of(kept))
    later = _rows_at(now + timedelta(hours=1), datetime(2099, 12, 31, tzinfo=UTC), datetime(2001, 1, 1, tzinfo=UTC))
    kept, aside = storable_rows(store, later)
    assert aside == [1, 2]
    assert len(store.score(columns_of(kept))) == 1
    span = store.time_span()
    assert span is not None
    assert "(2016-12-01 to " in str(outside_span_error(store))
    assert span[0] < now < span[1]


def test_what_if_scoring_leaves_the_span_to_the_log() -> None:
    store = OnlineFeatureStore()
    ancient = np.asarray([int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)], dtype=np.int64)
    assert store.storable(ancient, settle=False).all()
    assert store.time_span() is None
    assert "more than 35 years" in str(outside_span_error(store))

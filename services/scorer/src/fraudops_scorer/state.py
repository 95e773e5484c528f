"""The online feature state and the reader that keeps it whole across partitions and instances.

Customer windows only need the customer's own payments, which all land in one partition (the topic's key
is customer_id) and so in one instance. Terminal windows and terminal risk need every partition and every
label. So each instance keeps the complete state: its own partitions feed it as they are scored, and this
reader feeds it everything else (the labels topic, and the transactions partitions other instances score).

The state is a function of the log. At start and after every rebalance it is rebuilt by reading the topics
from the state's horizon (what the features look back on, plus a margin) up to the committed offsets of
the partitions this instance scores and to the end of the others. Before a batch is scored, the reader is
made to catch up with everything written before the batch was fetched (within `state_staleness_ms`), so a
label or another instance's payment is never missed because it was read a moment later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from fraudops.contracts.hotpath import TransactionDecoder, TransactionRows
from fraudops.contracts.messages import Label
from fraudops.errors import InvalidInputError, MessageDecodeError
from fraudops.features import FeatureConfig
from fraudops.features.definition import MS_PER_DAY
from fraudops.features.online import OnlineFeatureStore, TransactionColumns, epoch_millis
from fraudops.kafka import topic_partitions
from fraudops_scorer.metrics import ScorerMetrics
from fraudops_scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

Records = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
MS_PER_HOUR = 3_600_000


def first_sightings(store: OnlineFeatureStore, rows: TransactionRows) -> TransactionRows:
    """The rows whose transaction the state has not seen: a payment written twice to the log counts once."""
    seen = store.seen(rows.transaction_ids)
    if not seen.any() and len(set(rows.transaction_ids)) == len(rows):
        return rows  # the usual batch: all new, none twice
    keep: list[int] = []
    fresh: set[str] = set()
    for row, (transaction_id, known) in enumerate(zip(rows.transaction_ids, seen.tolist(), strict=True)):
        if not known and transaction_id not in fresh:
            fresh.add(transaction_id)
            keep.append(row)
    return rows if len(keep) == len(rows) else rows.subset(keep)


def storable_rows(store: OnlineFeatureStore, rows: TransactionRows) -> tuple[TransactionRows, list[int]]:
    """The rows the state can hold, and the positions of those it cannot (dated decades away from the rest)."""
    if not len(rows):
        return rows, []
    fits = store.storable(np.asarray(rows.times_ms, dtype=np.int64)).tolist()
    if all(fits):
        return rows, []
    keep = [row for row, fit in enumerate(fits) if fit]
    return rows.subset(keep), [rows.positions[row] for row, fit in enumerate(fits) if not fit]


def outside_span_error(store: OnlineFeatureStore) -> InvalidInputError:
    span = store.time_span()
    if span is None:
        return InvalidInputError("invalid Transaction: event_time: the payments span more than 35 years")
    low, high = span
    return InvalidInputError(
        f"invalid Transaction: event_time: outside the span the scorer's state holds ({low:%Y-%m-%d} to "
        f"{high:%Y-%m-%d}), decades away from the payments it has seen"
    )


def columns_of(rows: TransactionRows) -> TransactionColumns:
    return TransactionColumns(
        transaction_ids=rows.transaction_ids,
        customer_ids=rows.customer_ids,
        terminal_ids=rows.terminal_ids,
        times_ms=np.asarray(rows.times_ms, dtype=np.int64),
        amounts=np.asarray(rows.amounts, dtype=np.float64),
    )


class SharedState:
    def __init__(self, settings: ScorerSettings, metrics: ScorerMetrics, decoder: TransactionDecoder) -> None:
        self.settings = settings
        self.metrics = metrics
        self.decoder = decoder
        self._max_ahead_ms = settings.max_future_skew_s * 1000
        self.store = self._new_store(FeatureConfig())
        self._consumer: AIOKafkaConsumer | None = None
        # Asks only for end offsets: on the reading consumers' connections such a request would queue
        # behind their long-polling fetches (up to fetch_max_wait_ms, 500 ms).
        self._offsets: AIOKafkaConsumer | None = None
        self._followed: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        # Monotonic time up to which everything written to the followed partitions has been applied.
        self._current_as_of = float("-inf")

    async def stop(self) -> None:
        await self._stop_following()
        clients, self._consumer, self._offsets = (self._consumer, self._offsets), None, None
        for client in clients:
            if client is None:
                continue
            try:
                await client.stop()
            except Exception:  # a broker that is gone may fail the goodbye; new clients follow
                log.warning("closing a Kafka client failed", exc_info=True)

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Where each partition's log ends now (one ListOffsets request on a connection of its own)."""
        if self._offsets is None:
            kafka = self.settings.kafka
            client = AIOKafkaConsumer(
                bootstrap_servers=kafka.bootstrap_servers,
                client_id=f"{kafka.client_id_prefix}-scorer-offsets",
                enable_auto_commit=False,
                isolation_level="read_committed",
                request_timeout_ms=kafka.request_timeout_ms,
            )
            await client.start()
            self._offsets = client
        ends: dict[TopicPartition, int] = await self._offsets.end_offsets(list(partitions))
        return ends

    async def rebuild(self, config: FeatureConfig, owned: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """A fresh state from the log; `owned` maps the partitions this instance scores to where scoring resumes.

        Returns, per owned partition that had history, the newest event time read from it.
        """
        started_wall = time.perf_counter()
        await self._stop_following()
        consumer = await self._ensure_consumer()
        topics = self.settings.topics
        every = [
            TopicPartition(topic, partition)
            for topic in (topics.transactions, topics.labels)
            for partition in sorted(await topic_partitions(consumer, topic))
        ]
        consumer.assign(every)
        started = time.monotonic()
        starts = await self._horizon_offsets(consumer, every, config)
        ends = await consumer.end_offsets(every)
        targets = {tp: owned.get(tp, ends[tp]) for tp in every}
        for tp in every:
            consumer.seek(tp, starts[tp])
        self.store = self._new_store(config)
        pending = {tp for tp in every if starts[tp] < targets[tp]}
        consumer.pause(*[tp for tp in owned if tp not in pending])
        merge = _TimeOrderedMerge(tp for tp in pending if tp.topic == topics.transactions)
        owned_transactions = [tp for tp in owned if tp.topic == topics.transactions]
        while pending:
            records = await consumer.getmany(*pending, timeout_ms=500, max_records=20_000)
            for tp, batch in records.items():
                if tp.topic == topics.labels:
                    self._observe_labels(batch)
                    continue
                if tp in owned:
                    # Scoring takes the partition on from the committed offset: what lies beyond is its to feed.
                    batch = [r for r in batch if r.offset < targets[tp]]
                # A followed partition's records written since its end was asked are state all the same: the
                # reader goes on from past them, so dropping them here would lose them for good.
                rows, _ = self.decoder.decode_records(batch, self._max_ahead_ms)
                merge.add(tp, rows)
            for tp in list(pending):
                if await consumer.position(tp) >= targets[tp]:
                    pending.discard(tp)
                    merge.exhausted(tp)
                    if tp in owned:
                        consumer.pause(tp)
            # Once an owned partition is read up to where its scoring resumes, the others run on ahead of it;
            # the store must not forget, behind them, the history that partition's next payments look back on.
            self.store.hold(merge.frontier(owned_transactions))
            ready = merge.take()
            if ready is not None:
                ready, _ = storable_rows(self.store, first_sightings(self.store, ready))
                if len(ready):
                    self.store.remember(columns_of(ready))
            await asyncio.sleep(0)  # let heartbeats and the HTTP server run between chunks
        self._followed = [tp for tp in every if tp not in owned]
        consumer.resume(*self._followed)
        self._current_as_of = started
        self._task = asyncio.create_task(self._follow(), name="shared-state")
        elapsed = time.perf_counter() - started_wall
        self.metrics.state_rebuilds.inc()
        self.metrics.state_rebuild_seconds.observe(elapsed)
        self.show_size()
        log.info(
            "feature state rebuilt",
            extra={
                "seconds": round(elapsed, 3),
                "owned": len(owned),
                "followed": len(self._followed),
                **self.store.stats(),
            },
        )
        return {tp: newest for tp, newest in merge.newest.items() if tp in owned}

    def _new_store(self, config: FeatureConfig) -> OnlineFeatureStore:
        return OnlineFeatureStore(config, late_slack_ms=self.settings.state_late_slack_hours * MS_PER_HOUR)

    def behind_partitions(self, fetched_at: float) -> list[TopicPartition]:
        """The followed partitions whose end offsets `catch_up` needs for a batch fetched at `fetched_at`:
        none when the state is recent enough (STATE_STALENESS_MS) or follows nothing."""
        if self._current_as_of >= fetched_at - self.settings.state_staleness_ms / 1000:
            return []
        if self._consumer is None:
            return []
        return list(self._followed)

    async def catch_up(self, fetched_at: float, ends: Mapping[TopicPartition, int] | None = None) -> None:
        """Return once everything written to the followed partitions before `fetched_at` is in the state.

        `ends`: end offsets of `behind_partitions(fetched_at)` asked for after `fetched_at` (the worker asks
        for them with its own, in one request); asked here when not given."""
        followed = self.behind_partitions(fetched_at)
        consumer = self._consumer
        if not followed or consumer is None:
            return
        waited_from = time.perf_counter()
        asked = time.monotonic()
        targets = ends if ends is not None else await self.end_offsets(followed)
        while True:
            self._progress.clear()
            behind = [tp for tp in followed if await consumer.position(tp) < targets[tp]]
            if not behind:
                break
            if self._task is None or self._task.done():
                raise RuntimeError("the shared-state reader stopped")
            await self._progress.wait()
        self._current_as_of = max(self._current_as_of, asked)
        self.metrics.state_wait_seconds.observe(time.perf_counter() - waited_from)

    def show_size(self) -> None:
        for kind, value in self.store.stats().items():
            self.metrics.state_size.labels(kind).set(value)

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            records = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            if records:
                self._apply(records)
            self._progress.set()

    def _apply(self, records: Records) -> None:
        transactions: list[ConsumerRecord[bytes, bytes]] = []
        label_records: list[ConsumerRecord[bytes, bytes]] = []
        for tp, batch in records.items():
            if tp.topic == self.settings.topics.labels:
                label_records.extend(batch)
            else:
                transactions.extend(batch)
        if transactions:
            # Invalid payments are the scoring instance's to dead-letter; here they are simply not state.
            rows, _ = self.decoder.decode_records(transactions, self._max_ahead_ms)
            rows, _ = storable_rows(self.store, first_sightings(self.store, rows))
            if len(rows):
                self.store.remember(columns_of(rows))
        if label_records:
            self._observe_labels(label_records)

    def _observe_labels(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        ids: list[str] = []
        verdicts: list[bool] = []
        known: list[int] = []
        for record in records:
            try:
                label = Label.from_avro(record.value)
            except (MessageDecodeError, ValueError):
                log.warning("unreadable label skipped", extra={"partition": record.partition, "offset": record.offset})
                continue
            ids.append(label.transaction_id)
            verdicts.append(label.is_fraud)
            known.append(epoch_millis(label.known_at))
        if ids:
            self.store.observe_labels(ids, np.asarray(verdicts, dtype=np.bool_), np.asarray(known, dtype=np.int64))

    async def _ensure_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            kafka = self.settings.kafka
            consumer = AIOKafkaConsumer(
                bootstrap_servers=kafka.bootstrap_servers,
                client_id=f"{kafka.client_id_prefix}-scorer-state",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                request_timeout_ms=max(kafka.request_timeout_ms, 40_000),
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def _horizon_offsets(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition], config: FeatureConfig
    ) -> dict[TopicPartition, int]:
        """Where the state's history starts: the first record appended within the horizon (log append time)."""
        horizon_ms = config.terminal_retention_ms + MS_PER_DAY + self.settings.state_rebuild_margin_hours * MS_PER_HOUR
        since = int(time.time() * 1000) - horizon_ms
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since))
        ends = await consumer.end_offsets(partitions)
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}

    async def _stop_following(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # the reader failed on its own (a broker outage): a rebuild starts a new one
                log.warning("the shared-state reader had stopped", exc_info=True)
            self._task = None
        self._followed = []
        self._current_as_of = float("-inf")


class _TimeOrderedMerge:
    """Hands partitions' rows to the store in event-time order while the partitions are read at uneven speed.

    The store forgets what lies beyond its horizon behind the newest time it has seen, so a rebuild must
    not let one partition's rows run weeks ahead of another's: rows are released only up to the oldest
    newest-time among the partitions still being read (a partition is in event-time order, as produced).
    """

    def __init__(self, partitions: Iterable[TopicPartition]) -> None:
        self._open = set(partitions)
        self._rows: dict[TopicPartition, TransactionRows] = {tp: TransactionRows() for tp in self._open}
        # Per partition: the newest event time read, which is where that partition's scoring resumes.
        self.newest: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, rows: TransactionRows) -> None:
        if rows.times_ms:
            self.newest[tp] = max(self.newest.get(tp, rows.times_ms[-1]), max(rows.times_ms))
        buffered = self._rows[tp]
        for name in _ROW_FIELDS:
            getattr(buffered, name).extend(getattr(rows, name))

    def exhausted(self, tp: TopicPartition) -> None:
        self._open.discard(tp)

    def frontier(self, partitions: Sequence[TopicPartition]) -> int | None:
        """The oldest newest-time read among `partitions`: -1 (before everything) when one has no rows read,
        None when there are no partitions."""
        if not partitions:
            return None
        times = [self.newest.get(tp) for tp in partitions]
        return min(t for t in times if t is not None) if None not in times else -1

    def take(self) -> TransactionRows | None:
        """The rows every partition still being read has gone past, sorted by time (None if there are none)."""
        if any(not self._rows[tp].times_ms for tp in self._open):
            return None  # an open partition has nothing buffered: its next row may be older than any other
        watermark = min((self._rows[tp].times_ms[-1] for tp in self._open), default=None)
        released = TransactionRows()
        for rows in self._rows.values():
            times = np.asarray(rows.times_ms, dtype=np.int64)
            beyond = np.flatnonzero(times > watermark) if watermark is not None else np.empty(0, dtype=np.intp)
            cut = int(beyond[0]) if beyond.size else len(times)
            for name in _ROW_FIELDS:
                column = getattr(rows, name)
                getattr(released, name).extend(column[:cut])
                del column[:cut]
        if not released.times_ms:
            return None
        order = np.argsort(np.asarray(released.times_ms, dtype=np.int64), kind="stable").tolist()
        for name in _ROW_FIELDS:
            column = getattr(released, name)
            setattr(released, name, [column[i] for i in order])
        return released


_ROW_FIELDS = ("positions", "transaction_ids", "customer_ids", "terminal_ids", "times_ms", "amounts")

"""Reads transactions, scores and labels into the live windows; never waits for an evaluation.

One monitor reads every partition of the three topics itself (no consumer group): the windows and the
feature state are global, like the alerts computed from them. It starts from the beginning of the
retained log, so a restarted monitor rebuilds its windows instead of starting blind, and after a broker
outage it resumes where it stopped. Features come from the same online store the scorer uses; rows
of partitions read at different paces get features within the store's late slack, which is
exact enough to watch distributions (the scorer's alignment is what makes its features exact).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from fraudops.contracts.avro import AvroCodec, default_codec
from fraudops.contracts.hotpath import SCORE_RESULT, TransactionDecoder
from fraudops.errors import FraudOpsError, OversizeMessageError
from fraudops.features import FeatureConfig
from fraudops.features.online import OnlineFeatureStore, TransactionColumns, epoch_millis
from fraudops.kafka import topic_partitions
from fraudops_monitor.evaluator import Evaluator
from fraudops_monitor.metrics import MonitorMetrics
from fraudops_monitor.settings import MonitorSettings
from fraudops_monitor.windows import FeatureWindow, ScoredLog

log = logging.getLogger(__name__)

LABEL = "io.fraudops.Label"
FALLBACK_VERSION = "fallback"
RETRY_DELAY_S = 2.0


class MonitorConsumer:
    def __init__(
        self,
        settings: MonitorSettings,
        metrics: MonitorMetrics,
        features: FeatureWindow,
        scored: ScoredLog,
        evaluator: Evaluator,
        codec: AvroCodec | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.features = features
        self.scored = scored
        self.evaluator = evaluator
        self.codec = codec or default_codec()
        self.decoder = TransactionDecoder(self.codec, max_bytes=settings.kafka.max_message_bytes)
        self.store = OnlineFeatureStore(FeatureConfig(label_delay_days=settings.label_delay_days))
        self.running = False
        self.last_error: str | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.running = True
        self._task = asyncio.create_task(self._run(), name="monitor-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.running = False

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker outage: keep the windows, reconnect, resume
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.warning("monitor consumer interrupted; reconnecting", extra={"reason": self.last_error})
                await asyncio.sleep(RETRY_DELAY_S)

    async def _session(self) -> None:
        kafka = self.settings.kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id_prefix}-monitor",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            request_timeout_ms=max(kafka.request_timeout_ms, 40_000),
        )
        await consumer.start()
        try:
            topics = self.settings.topics
            partitions = [
                TopicPartition(topic, p)
                for topic in (topics.transactions, topics.scores, topics.labels)
                for p in sorted(await topic_partitions(consumer, topic))
            ]
            consumer.assign(partitions)
            for tp in partitions:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
            self.last_error = None
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=self.settings.max_batch)
                for tp, records in batches.items():
                    self._handle(tp.topic, records)
                    self._positions[tp] = records[-1].offset + 1
                self.evaluator.lag_changed(self._lag(consumer, partitions))
                self.metrics.labels_unmatched.inc(self.scored.expire_pending())
                self.metrics.labels_pending.set(self.scored.pending)
        finally:
            await consumer.stop()

    def _lag(self, consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]) -> int:
        """Messages of transactions and scores between the position and the end the broker last reported."""
        lag = 0
        for tp in partitions:
            if tp.topic == self.settings.topics.labels:
                continue  # labels come in bursts days late; being behind on them does not make windows stale
            end = consumer.highwater(tp)
            if end is not None:
                lag += max(0, end - self._positions.get(tp, 0))
        return lag

    def _handle(self, topic: str, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        self.metrics.messages.labels(topic).inc(len(records))
        topics = self.settings.topics
        if topic == topics.transactions:
            self._transactions(records)
        elif topic == topics.scores:
            self._scores(records)
        elif topic == topics.labels:
            self._labels(records)

    def _transactions(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        rows, rejected = self.decoder.decode_records(records, self.settings.max_future_skew_s * 1000)
        if rejected:
            # The scorer sends these to the dead-letter topic; here they only count.
            self.metrics.unreadable.labels(self.settings.topics.transactions).inc(len(rejected))
        if not len(rows):
            return
        all_times = np.asarray(rows.times_ms, dtype=np.int64)
        fresh = ~self.store.seen(rows.transaction_ids)
        # Valid, but dated decades away from the rest: the store cannot hold it (the scorer dead-letters it).
        outside = fresh & ~self.store.storable(all_times)
        if outside.any():
            self.metrics.unreadable.labels(self.settings.topics.transactions).inc(int(outside.sum()))
            log.warning("transactions outside the state's span skipped", extra={"count": int(outside.sum())})
        keep = np.flatnonzero(fresh & ~outside)
        if keep.shape[0] == 0:
            return
        times = all_times[keep]
        ids = [rows.transaction_ids[i] for i in keep]
        columns = TransactionColumns(
            transaction_ids=ids,
            customer_ids=[rows.customer_ids[i] for i in keep],
            terminal_ids=[rows.terminal_ids[i] for i in keep],
            times_ms=times,
            amounts=np.asarray(rows.amounts, dtype=np.float64)[keep],
        )
        features = self.store.score(columns)
        self.features.append(ids, times, features)
        self.evaluator.transactions_added(len(ids))

    def _scores(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        ids: list[str] = []
        customers: list[str] = []
        versions: list[str] = []
        event_ms: list[int] = []
        scores: list[float] = []
        flagged: list[bool] = []
        for record in records:
            try:
                result = self.codec.decode(self._bounded(record), expected=SCORE_RESULT)
            except FraudOpsError:
                self.metrics.unreadable.labels(self.settings.topics.scores).inc()
                continue
            ids.append(result["transaction_id"])
            customers.append(result["customer_id"])
            versions.append(result["model_version"] or FALLBACK_VERSION)
            event_ms.append(epoch_millis(result["event_time"]))
            scores.append(result["score"])
            flagged.append(result["decision"] != "APPROVE")
        if not ids:
            return
        values = np.asarray(scores, dtype=np.float64)
        for value in values:
            self.metrics.scores.observe(value)
        outcome = self.scored.add_scores(
            ids, customers, np.asarray(event_ms, dtype=np.int64), values, np.asarray(flagged), versions
        )
        self._count_matches(outcome.matched, outcome.delays_s)

    def _labels(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        ids: list[str] = []
        verdicts: list[bool] = []
        known: list[int] = []
        for record in records:
            try:
                label = self.codec.decode(self._bounded(record), expected=LABEL)
            except FraudOpsError:
                self.metrics.unreadable.labels(self.settings.topics.labels).inc()
                continue
            ids.append(label["transaction_id"])
            verdicts.append(bool(label["is_fraud"]))
            known.append(epoch_millis(label["known_at"]))
        if not ids:
            return
        self.store.observe_labels(ids, np.asarray(verdicts, dtype=np.bool_), np.asarray(known, dtype=np.int64))
        outcome = self.scored.add_labels(ids, verdicts, known)
        self.metrics.labels_unmatched.inc(outcome.dropped)
        self._count_matches(outcome.matched, outcome.delays_s)

    def _bounded(self, record: ConsumerRecord[bytes, bytes]) -> bytes | None:
        """The record's value, unless it is larger than any message the monitor reads."""
        limit = self.settings.kafka.max_message_bytes
        value: bytes | None = record.value
        if value is not None and len(value) > limit:
            raise OversizeMessageError(f"{len(value)} bytes, above the limit of {limit}")
        return value

    def _count_matches(self, matched: int, delays_s: np.ndarray) -> None:
        if matched:
            self.metrics.labels_matched.inc(matched)
            for delay in delays_s:
                self.metrics.label_delay.observe(float(delay))
        self.metrics.labels_pending.set(self.scored.pending)

"""The Kafka worker: poll a batch, score it with one model call, publish every result, then commit.

Delivery is at least once. Offsets are committed only after the broker acknowledged the batch's scores,
shadow scores and dead letters (acks=all, idempotent producer). A revoked partition's batch in flight is
finished before the rebalance goes on; any failure after the state took a batch in makes the worker
rebuild the state and resume from the committed offsets, so a re-scored payment gets the same features.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import TypeAlias

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from fraudops.contracts.hotpath import Rejected, ScoreResultEncoder, TransactionRows
from fraudops.features import FEATURE_NAMES, FEATURE_VERSION, FeatureConfig
from fraudops.kafka import dead_letter_for, dead_letter_headers, make_consumer, make_producer
from fraudops_scorer.fetching import fresh_batch
from fraudops_scorer.metrics import ScorerMetrics
from fraudops_scorer.publisher import BatchPublisher
from fraudops_scorer.registry import ModelWatcher
from fraudops_scorer.scoring import AVRO_DECISIONS, DECISIONS, Verdicts, score_batch
from fraudops_scorer.serving import Serving
from fraudops_scorer.settings import ScorerSettings
from fraudops_scorer.state import SharedState, columns_of, first_sightings, outside_span_error, storable_rows

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
# Latency histograms take at most this many rows of a batch: the rest would cost more than the scoring.
LATENCY_SAMPLES_PER_BATCH = 64
# How far (event time) a partition catching up may run ahead of the slowest one (see _alignment_limit), at
# most half the label delay. A partition's batch of 2,000 spans a day or more of the full dataset: with a day's
# lead most batches were cut, and every cut batch is a smaller one.
MAX_ALIGNMENT_MS = 3 * 86_400_000
_EVERYONE_WAITS = -(1 << 62)


class _FinishBeforeRebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped: its base is Any
    def __init__(self, worker: ScoringWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # The batch in flight is published and committed before its partitions move on.
        async with self.worker.batch_lock:
            await self.worker.finish_commit()
            self.worker.rebuild_needed = True

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.worker.rebuild_needed = True
        self.worker.metrics.assigned_partitions.set(len(assigned))
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})


class ScoringWorker:
    def __init__(
        self, settings: ScorerSettings, metrics: ScorerMetrics, watcher: ModelWatcher, state: SharedState
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.watcher = watcher
        self.state = state
        self.decoder = state.decoder
        self.batch_lock = asyncio.Lock()
        self.rebuild_needed = True
        self.last_error: str | None = None
        self._stopping = False
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._publisher: BatchPublisher | None = None
        self._task: asyncio.Task[None] | None = None
        # The last batch's acknowledgements, then its commit, awaited once the next batch is read and scored.
        self._pending_commit: asyncio.Future[None] | None = None
        self._last_lag_update = 0.0
        # Per owned partition: the next offset to score and the newest event time scored (or rebuilt from).
        self._next_offset: dict[TopicPartition, int] = {}
        self._newest_time: dict[TopicPartition, int] = {}
        self._end_offsets: dict[TopicPartition, int] = {}
        # Partitions not read because they ran ahead of the others, with the event time they wait at; and the
        # records read past the cut, scored once their partition is released (reading them again from the
        # broker, as a seek back would, cost about as much as scoring them while catching up on a backlog).
        # They are left out of reads rather than paused: pausing drops what the client had fetched for them.
        self._held_back: dict[TopicPartition, int] = {}
        self._set_aside: dict[TopicPartition, list[Record]] = {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scoring-worker")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # its results are published: committing spares a repeat
            await asyncio.wait_for(self.finish_commit(), timeout=5.0)
        await self._close_clients()
        await self.state.stop()

    def serving_changed(self, previous: Serving, current: Serving) -> None:
        """The features depend on the champion's label delay: a different one needs a rebuilt state."""
        delay = current.label_delay_days
        if delay is not None and delay != self.state.store.config.label_delay_days:
            self.rebuild_needed = True

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._connect()
                backoff = 0.5
                await self._consume()
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                # Not ours: a client library cancelled a wait of ours during a broker outage. Carry on.
                await self._recover("CancelledError: a Kafka client call was cancelled", transient=False)
            except Exception as exc:
                await self._recover(f"{exc.__class__.__name__}: {exc}", transient=_is_transient(exc))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _recover(self, error: str, transient: bool) -> None:
        """After a failure: forget the batch in flight and, unless the clients can go on, start them afresh."""
        self.last_error = error
        log.warning("scoring interrupted; resuming from the committed offsets", extra={"error": error})
        self.rebuild_needed = True
        if self._publisher is not None:
            self._publisher.abandon()
        if self._pending_commit is not None:
            self._pending_commit.cancel()  # on clients that failed: the next owner may score its batch again
            self._pending_commit = None
        if transient:
            return
        try:
            await self._close_clients()
            await self.state.stop()
        except BaseException:  # whatever closing does, the worker goes on (unless it is being stopped)
            if self._stopping:
                raise
            log.warning("closing the Kafka clients failed", exc_info=True)
            self._consumer = self._producer = self._publisher = None

    async def _connect(self) -> None:
        if self._consumer is not None:
            return
        settings = self.settings
        producer = make_producer(settings.kafka, "scorer")
        consumer = make_consumer(settings.kafka, settings.group_id)
        consumer._max_partition_fetch_bytes = 4 * 1024 * 1024
        try:
            await producer.start()
            await consumer.start()
            consumer.subscribe([settings.topics.transactions], listener=_FinishBeforeRebalance(self))
            publisher = BatchPublisher(producer)
            topics = settings.topics
            await publisher.prepare([topics.scores, topics.shadow_scores, topics.dead_letters])
        except BaseException:
            await consumer.stop()
            await producer.stop()
            raise
        self._consumer, self._producer, self._publisher = consumer, producer, publisher
        self.rebuild_needed = True
        self.last_error = None

    async def _close_clients(self) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = self._publisher = None
        for client in (consumer, producer):
            if client is None:
                continue
            try:
                await client.stop()
            except Exception:  # a broker that is gone may fail the goodbye; new clients follow
                log.warning("closing a Kafka client failed", exc_info=True)

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            if self.rebuild_needed:
                await self._rebuild(consumer)
                continue
            batch = await self._next_batch(consumer)
            fetched_at = time.monotonic()
            if batch:
                async with self.batch_lock:
                    if self._assignment_changed():
                        continue  # the batch is read again after the rebuild
                    await self._process(consumer, batch, fetched_at)
            await self._refresh_progress(consumer)

    def _assignment_changed(self) -> bool:
        """True when a rebalance (or a new label delay) happened while the batch was being fetched."""
        return self.rebuild_needed

    async def _rebuild(self, consumer: AIOKafkaConsumer) -> None:
        await self.finish_commit()  # the offsets to resume from
        if not consumer.assignment():
            # Not in the group yet: wait for the join (getmany drives it), then rebuild for what we got.
            await consumer.getmany(timeout_ms=self.settings.poll_timeout_ms, max_records=1)
            if not consumer.assignment():
                return
            self.rebuild_needed = True
        self.rebuild_needed = False
        owned = sorted(consumer.assignment())
        beginnings = await consumer.beginning_offsets(owned)
        resume = {}
        for tp in owned:
            committed = await consumer.committed(tp)
            resume[tp] = committed if committed is not None else beginnings[tp]
        delay = self.watcher.current.label_delay_days
        config = FeatureConfig(label_delay_days=delay) if delay is not None else self.state.store.config
        self._newest_time = await self.state.rebuild(config, resume)
        self._next_offset = dict(resume)
        self._held_back.clear()
        self._set_aside.clear()  # read again from the offsets resumed from
        for tp in owned:
            consumer.seek(tp, resume[tp])
        await self._refresh_progress(consumer, force=True)

    async def _process(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Record]], fetched_at: float
    ) -> None:
        publisher = self._publisher
        assert publisher is not None
        serving = self.watcher.current
        records = [record for partition_records in batch.values() for record in partition_records]
        received_ms = int(time.time() * 1000)
        # End offsets written before the batch was fetched, for the worker's partitions and the state's, at once:
        # asked for first, so the broker answers while the batch is decoded.
        followed = self.state.behind_partitions(fetched_at)
        progress = asyncio.ensure_future(self._refresh_progress(consumer, force=True, also=followed))
        await asyncio.sleep(0)  # the request goes out
        rows, rejected = self.decoder.decode_records(records, self.settings.max_future_skew_s * 1000)
        ends = await progress
        if followed:
            await self.state.catch_up(fetched_at, ends)
        kept = self._align(batch, rows)
        if kept is not batch:
            if not kept:
                return  # every partition of the batch waits for one that has not been read yet
            rows, rejected = _kept_rows(batch, kept, rows, rejected)
            batch = kept
            records = [record for partition_records in batch.values() for record in partition_records]

        unique = first_sightings(self.state.store, rows)
        if unique is not rows:
            # Scored when first seen (its result is on the scores topic): no second, different verdict.
            self.metrics.duplicates.inc(len(rows) - len(unique))
            rows = unique
        rows, unstorable = storable_rows(self.state.store, rows)
        if unstorable:
            error = outside_span_error(self.state.store)
            rejected = [*rejected, *(Rejected(position, error) for position in unstorable)]
            rejected.sort(key=lambda rejection: rejection.position)
        started = time.perf_counter()
        features = self.state.store.score(columns_of(rows)) if len(rows) else np.empty((0, len(FEATURE_NAMES)))
        main, shadow = score_batch(serving, features, self.settings)
        self.metrics.scoring_seconds.observe(time.perf_counter() - started)
        scored_ms = int(time.time() * 1000)

        topics = self.settings.topics
        self._add_results(publisher, topics.scores, rows, main, received_ms, scored_ms)
        if shadow is not None:
            self._add_results(publisher, topics.shadow_scores, rows, shadow, received_ms, scored_ms)
        for rejection in rejected:
            letter = dead_letter_for(records[rejection.position], rejection.error, "scorer")
            publisher.add(
                topics.dead_letters, letter.original_key or b"", letter.to_avro(), dead_letter_headers(letter)
            )
            self.metrics.dead_letters.labels(letter.error_type).inc()
            log.warning(
                "message dead-lettered",
                extra={
                    "partition": letter.original_partition,
                    "offset": letter.original_offset,
                    "error": letter.error_type,
                },
            )
        acknowledged = await publisher.send()

        # One batch in flight: the last one's results acknowledged and its offsets committed (they had this
        # batch's scoring to arrive), then this one's, in order, while the next batch is read and scored.
        await self.finish_commit()
        offsets = {tp: partition_records[-1].offset + 1 for tp, partition_records in batch.items()}
        self._pending_commit = asyncio.ensure_future(
            self._commit_when_acknowledged(consumer, acknowledged, offsets, records, rows)
        )
        self._advance(batch, records, rows)
        self._hold_history()
        self._release_aligned()
        self.metrics.messages_in.inc(len(records))
        self.metrics.batch_size.observe(len(records))
        self._count_decisions(main)

    async def _commit_when_acknowledged(
        self,
        consumer: AIOKafkaConsumer,
        acknowledged: Awaitable[dict[str, int]],
        offsets: dict[TopicPartition, int],
        records: list[Record],
        rows: TransactionRows,
    ) -> None:
        counts = await acknowledged
        published_ms = time.time() * 1000
        for topic, count in counts.items():
            self.metrics.results_out.labels(topic).inc(count)
        self._observe_latencies(records, rows.positions, rows.times_ms, published_ms)
        if not self.rebuild_needed:
            await consumer.commit(offsets)

    async def finish_commit(self) -> None:
        """Wait for the last batch's acknowledgements and commit; a refused commit (after a rebalance) asks for a
        rebuild, and a failed publication raises (the worker then resumes from the committed offsets)."""
        pending, self._pending_commit = self._pending_commit, None
        if pending is None:
            return
        try:
            await pending
        except CommitFailedError as exc:
            # Published but not committed: the new owner scores these again (at least once).
            log.warning("commit refused after a rebalance", extra={"error": str(exc)})
            self.rebuild_needed = True

    def _lagging(self) -> list[TopicPartition]:
        """Owned partitions with payments not scored yet, by the freshest end offset known (the last fetch's
        high watermark, or the last offsets request)."""
        consumer = self._consumer
        lagging = []
        for tp, end in self._end_offsets.items():
            highwater = consumer.highwater(tp) if consumer is not None and tp in consumer.assignment() else None
            latest = max(end, highwater or 0)
            if latest > self._next_offset.get(tp, latest):
                lagging.append(tp)
        return lagging

    def _alignment_limit(self, batch_firsts: Mapping[TopicPartition, int] | None = None) -> int | None:
        """The latest event time any partition may be scored up to now, or None when nothing lags.

        Terminal windows end a label delay before the payment and need every partition's payments up to
        there. So while partitions catch up on a backlog (at start, after a restart) none may run more than
        half the label delay (at most `MAX_ALIGNMENT_MS`) ahead of the slowest one with a backlog: the other
        half is the margin for payments written out of event-time order, beyond the state's late slack (a
        day). A partition with a backlog whose place in time is not known yet holds everyone until it is read.
        """
        frontiers = []
        for tp in self._lagging():
            if tp in self._held_back:
                continue
            frontier = self._newest_time.get(tp)
            if frontier is None and batch_firsts is not None:
                frontier = batch_firsts.get(tp)
            if frontier is None:
                return _EVERYONE_WAITS
            frontiers.append(frontier)
        if not frontiers:
            return None
        return min(frontiers) + self._alignment_window()

    def _alignment_window(self) -> int:
        return min(MAX_ALIGNMENT_MS, self.state.store.config.label_delay_ms // 2)

    def _align(
        self, batch: dict[TopicPartition, list[Record]], rows: TransactionRows
    ) -> dict[TopicPartition, list[Record]]:
        """The part of the batch within the alignment limit; partitions cut short wait (unread) for the others."""
        times_by_position = dict(zip(rows.positions, rows.times_ms, strict=True))
        spans = []
        firsts: dict[TopicPartition, int] = {}
        start = 0
        for tp, partition_records in batch.items():
            spans.append((tp, start, partition_records))
            first_time = next(
                (times_by_position[i] for i in range(start, start + len(partition_records)) if i in times_by_position),
                None,
            )
            if first_time is not None:
                firsts[tp] = first_time
            start += len(partition_records)
        limit = self._alignment_limit(firsts)
        if limit is None or not rows.times_ms or max(rows.times_ms) <= limit:
            return batch
        kept: dict[TopicPartition, list[Record]] = {}
        for tp, first, partition_records in spans:
            cut = next(
                (i for i in range(len(partition_records)) if times_by_position.get(first + i, limit) > limit),
                len(partition_records),
            )
            if cut < len(partition_records):
                self._held_back[tp] = times_by_position[first + cut]
                self._set_aside[tp] = partition_records[cut:]
                self.metrics.set_aside.inc(len(partition_records) - cut)
            if cut:
                kept[tp] = partition_records[:cut]
        return kept

    def _release_aligned(self) -> None:
        """Release the held-back partitions the others caught up with."""
        limit = self._alignment_limit()
        for tp, waiting_time in list(self._held_back.items()):
            if limit is None or waiting_time <= limit:
                del self._held_back[tp]

    async def _next_batch(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Record]]:
        """Up to `max_batch` records: first those set aside for released partitions, then fresh ones (which
        follow them) from every partition not held back, without waiting when some were set aside."""
        settings = self.settings
        readable = self._readable(consumer)
        batch: dict[TopicPartition, list[Record]] = {}
        count = 0
        for tp in [tp for tp in self._set_aside if tp not in self._held_back]:
            if count + len(self._set_aside[tp]) > settings.max_batch:
                break
            batch[tp] = self._set_aside.pop(tp)
            count += len(batch[tp])
        if count == settings.max_batch or any(tp in self._set_aside for tp in readable or self._set_aside):
            return batch  # a partition with records still set aside is not read before they are taken
        timeout_ms = 0 if batch else settings.poll_timeout_ms
        fresh = await fresh_batch(consumer, timeout_ms, settings.max_batch - count, settings.drain_wait_ms, readable)
        for tp, records in fresh.items():
            batch.setdefault(tp, []).extend(records)
        return batch

    def _readable(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The partitions to read from next ([]: all). Not the held-back ones; and while partitions catch up,
        only those with half the alignment window left to run ahead, if any: one partition's records in a
        batch span a day or more of a backlog, and read with less room, most would be cut and set aside."""
        limit = self._alignment_limit()
        if limit is None and not self._held_back:
            return []
        free = [tp for tp in consumer.assignment() if tp not in self._held_back]
        if limit is not None:
            room = self._alignment_window() // 2
            newest = self._newest_time
            roomy = [tp for tp in free if tp not in newest or newest[tp] <= limit - room]
            if roomy:
                return roomy
        if not free:  # never expected (the slowest partition is never held): release them all, read every one
            self._held_back.clear()
        return free

    def _advance(self, batch: dict[TopicPartition, list[Record]], records: list[Record], rows: TransactionRows) -> None:
        """Note how far each partition of the batch got, in offsets and in event time."""
        positions = np.asarray(rows.positions, dtype=np.intp)
        times = np.asarray(rows.times_ms, dtype=np.int64)
        start = 0
        for tp, partition_records in batch.items():
            end = start + len(partition_records)
            self._next_offset[tp] = partition_records[-1].offset + 1
            first, last = np.searchsorted(positions, [start, end])
            if last > first:
                self._newest_time[tp] = max(self._newest_time.get(tp, 0), int(times[first:last].max()))
            start = end
        assert start == len(records)

    def _hold_history(self) -> None:
        """Keep the history that partitions still catching up will need.

        The state forgets by event time, behind the newest payment it has seen. While one partition
        catches up on a backlog (after a restart, say), another may have run weeks ahead; the state then
        keeps everything from the oldest point a lagging partition has reached.
        """
        lagging = [self._newest_time.get(tp) for tp in self._lagging()]
        known = [t for t in lagging if t is not None]
        # A lagging partition whose position in time is unknown holds everything.
        self.state.store.hold(None if not lagging else (min(known) if len(known) == len(lagging) else -1))

    @staticmethod
    def _add_results(
        publisher: BatchPublisher,
        topic: str,
        rows: TransactionRows,
        verdicts: Verdicts,
        received_ms: int,
        scored_ms: int,
    ) -> None:
        encoder = ScoreResultEncoder(
            model_name=verdicts.model_name,
            model_version=verdicts.model_version,
            feature_version=FEATURE_VERSION,
            fallback=verdicts.fallback,
            received_ms=received_ms,
            scored_ms=scored_ms,
        )
        values = encoder.encode_many(
            rows.transaction_ids,
            rows.customer_ids,
            verdicts.scores,
            AVRO_DECISIONS[verdicts.decisions],
            rows.times_ms,
            verdicts.reasons,
        )
        publisher.add_many(topic, [transaction_id.encode() for transaction_id in rows.transaction_ids], values)

    def _count_decisions(self, verdicts: Verdicts) -> None:
        codes, counts = np.unique(verdicts.decisions, return_counts=True)
        version = verdicts.model_version or ""
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            self.metrics.decisions.labels(DECISIONS[code].value, verdicts.model_name, version).inc(count)

    def _observe_latencies(
        self, records: list[Record], positions: list[int], event_times: list[int], published_ms: float
    ) -> None:
        step = max(1, len(positions) // LATENCY_SAMPLES_PER_BATCH)
        for index in range(0, len(positions), step):
            record = records[positions[index]]
            self.metrics.produce_to_publish_seconds.observe(max(0.0, published_ms - record.timestamp) / 1000)
            self.metrics.event_to_publish_seconds.observe(max(0.0, published_ms - event_times[index]) / 1000)

    async def _refresh_progress(
        self, consumer: AIOKafkaConsumer, force: bool = False, also: Sequence[TopicPartition] = ()
    ) -> dict[TopicPartition, int]:
        """The owned partitions' end offsets (for alignment and held history; every batch when forced),
        and once a second the lag and state-size gauges. Returns every end offset asked for, `also`'s too."""
        now = time.monotonic()
        publish = now - self._last_lag_update >= 1.0
        if not (force or publish or also):
            return {}
        owned = sorted(consumer.assignment())
        asked = [*owned, *(tp for tp in also if tp not in consumer.assignment())]
        if publish and not asked:
            # An instance that owns no partition still proves the broker answers, or its gauge would go stale.
            asked = [TopicPartition(self.settings.topics.transactions, 0)]
        ends = await self.state.end_offsets(asked) if asked else {}
        self._end_offsets = {tp: ends[tp] for tp in owned}
        self._hold_history()
        if publish:
            self._last_lag_update = now
            self.metrics.lag_measured.set(time.time())
            self.state.show_size()
            self.metrics.lag.clear()
            for tp, end in self._end_offsets.items():
                self.metrics.lag.labels(str(tp.partition)).set(max(0, end - self._next_offset.get(tp, end)))
        return ends


def _kept_rows(
    batch: Mapping[TopicPartition, Sequence[Record]],
    kept: Mapping[TopicPartition, Sequence[Record]],
    rows: TransactionRows,
    rejected: Sequence[Rejected],
) -> tuple[TransactionRows, list[Rejected]]:
    """The decoded rows and rejections of the records `kept` (a prefix of each partition's), at their
    positions among the kept records."""
    new_position = np.full(sum(len(records) for records in batch.values()), -1, dtype=np.intp)
    old = new = 0
    for tp, records in batch.items():
        count = len(kept.get(tp, ()))
        new_position[old : old + count] = np.arange(new, new + count)
        old += len(records)
        new += count
    moved = new_position[np.asarray(rows.positions, dtype=np.intp)]
    kept_rows = rows.subset(np.flatnonzero(moved >= 0).tolist())
    kept_rows.positions = moved[moved >= 0].tolist()
    kept_rejected = [
        Rejected(int(new_position[rejection.position]), rejection.error)
        for rejection in rejected
        if new_position[rejection.position] >= 0
    ]
    return kept_rows, kept_rejected


def _is_transient(exc: BaseException) -> bool:
    """Errors after which the clients themselves are fine (they reconnect on their own)."""
    from aiokafka.errors import KafkaError

    return isinstance(exc, KafkaError) and getattr(exc, "retriable", False)

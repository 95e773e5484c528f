"""A dataset cut from the live log: the transactions of a time window, labelled with the verdicts known so far.

The window is one of event time, and the log's append times say nothing about it (a replay appends last year's
payments now; a late producer appends yesterday's), so every partition is read from its earliest offset up to
the end offsets taken when the job starts: what arrives later belongs to the next dataset. Only the rows inside
the window are kept, as columns, so memory follows the window, not the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from fraudops.contracts.avro import default_codec
from fraudops.contracts.hotpath import transaction_problems
from fraudops.errors import DependencyUnavailableError, FraudOpsError, InvalidInputError
from fraudops.kafka import start_client, topic_partitions
from fraudops.settings import KafkaSettings

log = logging.getLogger(__name__)

TRANSACTION = "io.fraudops.Transaction"
LABEL = "io.fraudops.Label"
BATCH = 5000
# A partition that yields nothing for this long while behind its end offset means the broker is not serving it.
STALL_S = 60.0


@dataclass(frozen=True)
class StreamWindow:
    start: datetime
    end: datetime
    transactions_topic: str
    labels_topic: str


@dataclass
class _Rows:
    """The window's transactions as columns; the first copy of an id wins (the log is at least once)."""

    seen: set[str] = field(default_factory=set)
    transaction_ids: list[str] = field(default_factory=list)
    times_ms: list[int] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)
    terminal_ids: list[str] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    read: int = 0
    undecodable: int = 0
    outside_window: int = 0
    duplicates: int = 0


@dataclass
class _Labels:
    """The newest verdict known at the cut-off per transaction of the window: id -> (known_at ms, is_fraud)."""

    verdicts: dict[str, tuple[int, bool]] = field(default_factory=dict)
    read: int = 0
    undecodable: int = 0
    known_later: int = 0


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _oversize(record: ConsumerRecord[bytes, bytes], max_bytes: int) -> bool:
    return record.value is not None and len(record.value) > max_bytes


def _add_transactions(
    rows: _Rows, records: Sequence[ConsumerRecord[bytes, bytes]], start_ms: int, end_ms: int, max_bytes: int
) -> None:
    codec = default_codec()
    for record in records:
        rows.read += 1
        if _oversize(record, max_bytes):
            rows.undecodable += 1  # never decoded: the scorer dead-letters it
            continue
        try:
            message = codec.decode(record.value, expected=TRANSACTION)
            message["event_time"] = _millis(message["event_time"])
            problem = transaction_problems(message)
        except (FraudOpsError, KeyError, TypeError, AttributeError):
            problem = "undecodable"
        if problem is not None:
            rows.undecodable += 1
            continue
        moment = message["event_time"]
        if not start_ms <= moment < end_ms:
            rows.outside_window += 1
            continue
        transaction_id = message["transaction_id"]
        if transaction_id in rows.seen:
            rows.duplicates += 1
            continue
        rows.seen.add(transaction_id)
        rows.transaction_ids.append(transaction_id)
        rows.times_ms.append(moment)
        rows.customer_ids.append(message["customer_id"])
        rows.terminal_ids.append(message["terminal_id"])
        rows.amounts.append(message["amount"])
        rows.currencies.append(message["currency"])


def _add_labels(
    labels: _Labels, records: Sequence[ConsumerRecord[bytes, bytes]], wanted: set[str], as_of_ms: int, max_bytes: int
) -> None:
    codec = default_codec()
    for record in records:
        labels.read += 1
        if _oversize(record, max_bytes):
            labels.undecodable += 1
            continue
        try:
            message = codec.decode(record.value, expected=LABEL)
            transaction_id = str(message["transaction_id"])
            known_ms = _millis(message["known_at"])
            verdict = bool(message["is_fraud"])
        except (FraudOpsError, KeyError, TypeError, AttributeError):
            labels.undecodable += 1
            continue
        if transaction_id not in wanted:
            continue
        if known_ms > as_of_ms:
            labels.known_later += 1
            continue
        earlier = labels.verdicts.get(transaction_id)
        # The latest verdict wins; on equal times the later message does (a transaction's labels share a
        # partition, so log order is the order they were published in).
        if earlier is None or known_ms >= earlier[0]:
            labels.verdicts[transaction_id] = (known_ms, verdict)


async def _scan(
    consumer: AIOKafkaConsumer, topic: str, handle: Callable[[Sequence[ConsumerRecord[bytes, bytes]]], None]
) -> dict[int, int]:
    """Feed every record of `topic` below the end offsets taken now to `handle`; returns those end offsets."""
    partitions = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
    consumer.assign(partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    begins: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    await consumer.seek_to_beginning(*partitions)
    remaining = {tp for tp in partitions if begins[tp] < ends[tp]}
    consumer.pause(*(set(partitions) - remaining))
    progress_at = time.monotonic()
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH)
        for tp, records in batches.items():
            handle([r for r in records if r.offset < ends[tp]])
            progress_at = time.monotonic()
        for tp in list(remaining):
            # Positions, not the last record's offset: transaction markers occupy offsets no record has.
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
                consumer.pause(tp)
        if remaining and time.monotonic() - progress_at > STALL_S:
            raise DependencyUnavailableError(
                f"Kafka stopped serving {topic} partitions {sorted(tp.partition for tp in remaining)} before their end"
            )
    return {tp.partition: ends[tp] for tp in partitions}


async def _read(kafka: KafkaSettings, window: StreamWindow, as_of: datetime) -> tuple[_Rows, _Labels, dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id_prefix}-ingest-datasets",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=max(kafka.request_timeout_ms, 40_000),
    )
    await start_client(consumer, kafka.bootstrap_servers)
    rows, labels = _Rows(), _Labels()
    start_ms, end_ms, as_of_ms = _millis(window.start), _millis(window.end), _millis(as_of)
    try:
        transaction_ends = await _scan(
            consumer,
            window.transactions_topic,
            lambda batch: _add_transactions(rows, batch, start_ms, end_ms, kafka.max_message_bytes),
        )
        # Labels second, so only the window's transactions' verdicts are kept.
        label_ends = await _scan(
            consumer,
            window.labels_topic,
            lambda batch: _add_labels(labels, batch, rows.seen, as_of_ms, kafka.max_message_bytes),
        )
    finally:
        await consumer.stop()
    offsets = {window.transactions_topic: transaction_ends, window.labels_topic: label_ends}
    return rows, labels, offsets


def read_window(kafka: KafkaSettings, window: StreamWindow) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The window's transactions with `is_fraud` (0 when no label is known: the Handbook's convention), and
    a summary of what was read. Raises InvalidInputError when the window holds no transaction."""
    started = time.perf_counter()
    as_of = datetime.now(UTC)
    rows, labels, offsets = asyncio.run(_read(kafka, window, as_of))
    if not rows.transaction_ids:
        raise InvalidInputError(
            f"no transactions between {window.start.isoformat()} and {window.end.isoformat()} "
            f"in topic {window.transactions_topic} ({rows.read} records read)"
        )
    verdicts = labels.verdicts
    known = np.fromiter((tid in verdicts for tid in rows.transaction_ids), dtype=bool, count=len(rows.seen))
    fraud = np.fromiter(
        (verdicts.get(tid, (0, False))[1] for tid in rows.transaction_ids), dtype=bool, count=len(rows.seen)
    )
    frame = pd.DataFrame(
        {
            "transaction_id": rows.transaction_ids,
            "event_time": pd.to_datetime(np.asarray(rows.times_ms, dtype=np.int64), unit="ms", utc=True),
            "customer_id": rows.customer_ids,
            "terminal_id": rows.terminal_ids,
            "amount": np.asarray(rows.amounts, dtype=np.float64),
            "currency": rows.currencies,
            "is_fraud": fraud.astype(np.int64),
        }
    )
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    summary = {
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "labels_as_of": as_of.isoformat(),
        "end_offsets": {topic: {str(p): o for p, o in ends.items()} for topic, ends in offsets.items()},
        "records_read": rows.read,
        "records_undecodable": rows.undecodable,
        "records_outside_window": rows.outside_window,
        "duplicates_dropped": rows.duplicates,
        "labels_read": labels.read,
        "labels_undecodable": labels.undecodable,
        "labels_known_later": labels.known_later,
        "rows_labelled": int(known.sum()),
        "rows_fraud": int(fraud.sum()),
        "unlabelled_as": 0,
        "read_seconds": round(time.perf_counter() - started, 3),
    }
    log.info("stream window read", extra={k: v for k, v in summary.items() if k != "end_offsets"})
    return frame, summary

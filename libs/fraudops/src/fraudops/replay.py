"""Stream a transaction dataset into Kafka at a steady rate, optionally with its late labels interleaved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import pandas as pd
from aiokafka import AIOKafkaProducer

from fraudops.contracts.messages import Label, LabelSource, Transaction
from fraudops.kafka import make_producer, start_client
from fraudops.settings import KafkaSettings

TRANSACTIONS_TOPIC = "transactions"
LABELS_TOPIC = "labels"
# Messages handed to the producer per pacing step; the pause between steps follows from the rate.
STEP = 250

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ReplayResult:
    transactions: int
    labels: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else float("inf")


def _labels_in_order(labels: pd.DataFrame | None) -> list[Label]:
    if labels is None or labels.empty:
        return []
    ordered = labels.sort_values("known_at", kind="stable")
    return [
        Label(transaction_id=tid, is_fraud=fraud, source=LabelSource(source), known_at=known.to_pydatetime())
        for tid, fraud, source, known in zip(
            ordered["transaction_id"].astype(str).tolist(),
            ordered["is_fraud"].astype(bool).tolist(),
            ordered["source"].astype(str).tolist(),
            pd.to_datetime(ordered["known_at"], utc=True),
            strict=True,
        )
    ]


def replay_messages(transactions: pd.DataFrame, labels: pd.DataFrame | None = None) -> Iterator[tuple[str, str, bytes]]:
    """(topic, key, Avro value) in time order; a label goes out once the stream reaches its known_at."""
    tx = transactions.sort_values("event_time", kind="stable")
    currencies = tx["currency"].astype(str).tolist() if "currency" in tx.columns else ["EUR"] * len(tx)
    pending = _labels_in_order(labels)
    next_label = 0
    for tid, moment, customer, terminal, amount, currency in zip(
        tx["transaction_id"].astype(str).tolist(),
        pd.to_datetime(tx["event_time"], utc=True),
        tx["customer_id"].astype(str).tolist(),
        tx["terminal_id"].astype(str).tolist(),
        tx["amount"].astype(float).tolist(),
        currencies,
        strict=True,
    ):
        when = moment.to_pydatetime()
        while next_label < len(pending) and pending[next_label].known_at <= when:
            label = pending[next_label]
            yield LABELS_TOPIC, label.transaction_id, label.to_avro()
            next_label += 1
        transaction = Transaction(
            transaction_id=tid,
            event_time=when,
            customer_id=customer,
            terminal_id=terminal,
            amount=amount,
            currency=currency,
        )
        yield TRANSACTIONS_TOPIC, transaction.customer_id, transaction.to_avro()


async def _acknowledged(producer: AIOKafkaProducer, sent: list[asyncio.Future[object]]) -> None:
    """Wait until the broker acknowledged every message sent, and raise the first failure; empties `sent`.

    One flush waits on the producer's batches (a few per partition) instead of a callback per message, which
    made `asyncio.gather` a quarter of the replay's time.
    """
    await producer.flush()
    for future in sent:
        await future  # done after the flush, so this only raises the message's failure, if any
    sent.clear()


async def _keep_pace(sent: int, rate: float, started: float) -> None:
    """Hold the cumulative schedule (`rate` per second since `started`; 0: no pacing), so short stalls are
    caught up instead of lowering the rate."""
    if rate > 0:
        ahead = sent / rate - (time.perf_counter() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)


async def replay(
    transactions: pd.DataFrame,
    kafka: KafkaSettings,
    rate: float,
    labels: pd.DataFrame | None = None,
    progress: Progress | None = None,
    topic_names: Mapping[str, str] | None = None,
) -> ReplayResult:
    """Produce every message (acks=all) at about `rate` transactions per second (0: as fast as possible).

    `topic_names` renames the topics (transactions, labels) for a stack with other names.
    """
    # No linger: the loop sends STEP messages (or a label group) and then waits for them, so a batch is
    # complete when the wait starts, and lingering only added 5 ms to every wait (a label before a payment
    # waits for its acknowledgement, which in a history with labels is hundreds of times a minute).
    producer = make_producer(kafka, "replay", linger_ms=0)
    await start_client(producer, kafka.bootstrap_servers)
    sent_tx = sent_labels = 0
    total = len(transactions)
    started = time.perf_counter()
    try:
        batch: list[asyncio.Future[object]] = []
        labels_in_flight = False
        for topic, key, value in replay_messages(transactions, labels):
            if topic == TRANSACTIONS_TOPIC and labels_in_flight:
                # A label known before this payment is in the log before it: consumers that read both
                # topics (the scorer's terminal risk) see them in the order they happened.
                await _acknowledged(producer, batch)
                labels_in_flight = False
            destination = topic_names.get(topic, topic) if topic_names else topic
            batch.append(await producer.send(destination, value=value, key=key.encode()))
            if topic == TRANSACTIONS_TOPIC:
                sent_tx += 1
            else:
                sent_labels += 1
                labels_in_flight = True
            if len(batch) >= STEP:
                await _acknowledged(producer, batch)
                if progress is not None:
                    progress(sent_tx, total)
                await _keep_pace(sent_tx, rate, started)
        await _acknowledged(producer, batch)
        if progress is not None:
            progress(sent_tx, total)
        # The last part too, so replays called one after another keep the rate as one would.
        await _keep_pace(sent_tx, rate, started)
    finally:
        await producer.stop()
    return ReplayResult(sent_tx, sent_labels, time.perf_counter() - started)

"""The project's Kafka helpers carry an Avro Transaction through the real broker and back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from fraudops.contracts.messages import DeadLetter, Transaction
from fraudops.contracts.topics import ensure_topics, load_topic_catalog
from fraudops.kafka import dead_letter_for, make_consumer, make_producer, send_dead_letter, send_message, start_client
from fraudops.settings import KafkaSettings
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration


async def test_transaction_round_trip_through_the_broker(running_stack: RunningStack) -> None:
    kafka = KafkaSettings(bootstrap_servers=running_stack.settings.kafka_bootstrap)
    sent = Transaction(
        transaction_id=f"tx-{uuid.uuid4().hex}",
        event_time=datetime.now(UTC),
        customer_id="c-42",
        terminal_id="t-7",
        amount=99.95,
    )
    producer = make_producer(kafka, "test-producer")
    consumer = make_consumer(kafka, f"test-{uuid.uuid4().hex[:8]}", "transactions")
    await start_client(producer, kafka.bootstrap_servers)
    await start_client(consumer, kafka.bootstrap_servers)
    try:
        await send_message(producer, "transactions", sent.customer_id, sent)
        received = None
        deadline = asyncio.get_running_loop().time() + 30
        while received is None and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    candidate = Transaction.from_avro(record.value)
                    if candidate.transaction_id == sent.transaction_id:
                        received = (record, candidate)
        assert received is not None, "the transaction never came back"
        record, decoded = received
        assert decoded == sent
        assert record.key == b"c-42"
        await consumer.commit()

        letter = dead_letter_for(record, ValueError("rejected in a test"), failed_by="test")
        await send_dead_letter(producer, letter)
    finally:
        await producer.stop()
        await consumer.stop()

    dlq = make_consumer(kafka, f"test-dlq-{uuid.uuid4().hex[:8]}", "transactions.dlq")
    await start_client(dlq, kafka.bootstrap_servers)
    try:
        found = None
        deadline = asyncio.get_running_loop().time() + 30
        while found is None and asyncio.get_running_loop().time() < deadline:
            for records in (await dlq.getmany(timeout_ms=1000)).values():
                for dead in records:
                    letter_back = DeadLetter.from_avro(dead.value)
                    if letter_back.original_offset == record.offset and letter_back.original_value == record.value:
                        found = (dead, letter_back)
        assert found is not None
        dead, letter_back = found
        headers = dict(dead.headers)
        assert headers["error"] == b"ValueError"
        assert headers["original_topic"] == b"transactions"
        assert Transaction.from_avro(letter_back.original_value) == sent
    finally:
        await dlq.stop()


async def test_topic_creation_is_idempotent(running_stack: RunningStack) -> None:
    outcome = await ensure_topics(running_stack.settings.kafka_bootstrap, load_topic_catalog())
    assert set(outcome.values()) == {"exists"}

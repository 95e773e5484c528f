"""Reading back what services produced, for assertions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

from aiokafka import ConsumerRecord

from fraudops.kafka import make_consumer, start_client
from fraudops.settings import KafkaSettings


async def drain(
    bootstrap: str,
    topic: str,
    idle_s: float = 3.0,
    timeout_s: float = 60.0,
    expected_keys: Collection[bytes] = (),
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from the beginning, read by a fresh group until nothing new arrives for `idle_s`.

    With `expected_keys`, a quiet spell ends the reading only once every one of them has been seen: a service
    that pauses (reconnecting to a restarted broker, rebuilding its state) is waited for up to `timeout_s`.
    """
    consumer = make_consumer(KafkaSettings(bootstrap_servers=bootstrap), f"test-drain-{uuid.uuid4().hex[:8]}", topic)
    await start_client(consumer, bootstrap)
    records: list[ConsumerRecord[bytes, bytes]] = []
    unseen = set(expected_keys)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_new = loop.time()
    try:
        while loop.time() < deadline and (unseen or loop.time() - last_new < idle_s):
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                if batch:
                    records.extend(batch)
                    unseen.difference_update(record.key for record in batch)
                    last_new = loop.time()
    finally:
        await consumer.stop()
    return records

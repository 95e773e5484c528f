"""Publishing a batch's results: one producer batch per partition, then wait for every acknowledgement.

Building the broker's batches here costs about half of one `send()` per message, which is most of the
scorer's Kafka budget at 20,000 messages/s; keys are partitioned a batch at a time as the client would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from fraudops_scorer.partitioner import partitions_for

Headers = Sequence[tuple[str, bytes]]


class BatchPublisher:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], BatchBuilder] = {}
        self._full: list[tuple[str, int, BatchBuilder]] = []
        self.counts: dict[str, int] = {}

    async def prepare(self, topics: Sequence[str]) -> None:
        """Learn the topics' partitions (once; a topic's partition count only changes by operator action)."""
        for topic in topics:
            if topic not in self._partitions:
                self._partitions[topic] = sorted(await self.producer.partitions_for(topic))

    def add(self, topic: str, key: bytes, value: bytes, headers: Headers = ()) -> None:
        self.add_many(topic, [key], [value], headers)

    def add_many(self, topic: str, keys: Sequence[bytes], values: Sequence[bytes], headers: Headers = ()) -> None:
        """Messages for `topic`, each with its key and value (and the same headers)."""
        header_list = list(headers)
        partitions = partitions_for(keys, self._partitions[topic])
        open_batches = self._open
        for key, value, partition in zip(keys, values, partitions, strict=True):
            builder = open_batches.get((topic, partition))
            if builder is None:
                builder = open_batches[(topic, partition)] = self.producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=header_list) is None:
                self._full.append((topic, partition, builder))
                builder = open_batches[(topic, partition)] = self.producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None, headers=header_list) is None:
                    raise ValueError(f"a message for {topic} is larger than the producer's batch size")
        self.counts[topic] = self.counts.get(topic, 0) + len(keys)

    async def flush(self) -> dict[str, int]:
        """Send everything added and wait until the broker acknowledged all of it; returns messages per topic."""
        return await (await self.send())

    async def send(self) -> Awaitable[dict[str, int]]:
        """Send everything added (in order, after what was sent before); the messages per topic, once the
        broker acknowledged all of it, are awaited from what this returns."""
        batches = [*self._full, *((topic, partition, b) for (topic, partition), b in self._open.items())]
        counts = dict(self.counts)
        self.abandon()
        sent = []
        for topic, partition, builder in batches:
            builder.close()  # a closed batch goes out at once instead of lingering linger_ms for more
            sent.append(await self.producer.send_batch(builder, topic, partition=partition))
        return _acknowledged(sent, counts)

    def abandon(self) -> None:
        self._open.clear()
        self._full.clear()
        self.counts.clear()


async def _acknowledged(sent: Sequence[asyncio.Future[object]], counts: dict[str, int]) -> dict[str, int]:
    await asyncio.gather(*sent)
    return counts

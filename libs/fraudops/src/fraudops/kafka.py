"""Kafka helpers every service uses: safe producer and consumer defaults, typed send, dead letters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaConnectionError, KafkaError

from fraudops.contracts.messages import AvroMessage, DeadLetter
from fraudops.errors import DependencyUnavailableError, FraudOpsError, OversizeMessageError
from fraudops.settings import KafkaSettings

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
MAX_MESSAGE_BYTES = 1_048_576


def make_producer(settings: KafkaSettings, client_name: str, linger_ms: int = 5) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica: nothing acknowledged is lost."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{client_name}",
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_request_size=MAX_MESSAGE_BYTES,
        request_timeout_ms=settings.request_timeout_ms,
    )


def make_consumer(settings: KafkaSettings, group_id: str, *topics: str) -> AIOKafkaConsumer:
    """A consumer that commits only when told to, after its results are safely produced."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{group_id}",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=max(settings.request_timeout_ms, 40_000),
    )


async def start_client(client: AIOKafkaProducer | AIOKafkaConsumer, bootstrap_servers: str) -> None:
    """Start a client, turning 'broker unreachable' into one error that says what to do."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        raise DependencyUnavailableError(
            f"Kafka at {bootstrap_servers} is unreachable ({exc}); start it with `fraudops up` "
            "or point the service's KAFKA__BOOTSTRAP_SERVERS setting at a running broker"
        ) from exc


class ManagedProducer:
    """A producer started on first use, so a service starts (and reports not-ready) while Kafka is down."""

    def __init__(self, settings: KafkaSettings, client_name: str) -> None:
        self.settings = settings
        self.client_name = client_name
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = make_producer(self.settings, self.client_name)
                try:
                    await start_client(producer, self.settings.bootstrap_servers)
                except DependencyUnavailableError:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def send_message(producer: AIOKafkaProducer, topic: str, key: str, message: AvroMessage) -> None:
    """Produce one Avro message and wait until the broker has acknowledged it."""
    try:
        await producer.send_and_wait(topic, value=message.to_avro(), key=key.encode())
    except KafkaError as exc:
        raise DependencyUnavailableError(f"Kafka did not acknowledge a message on {topic}: {exc}") from exc


def dead_letter_for(
    record: ConsumerRecord[bytes, bytes], error: FraudOpsError | Exception, failed_by: str
) -> DeadLetter:
    """Wrap an unprocessable record byte for byte, with the reason and its origin.

    An oversize record's value is left out: the letter must fit the producer's request limit, and the value
    stays in the source topic at the offset the letter names.
    """
    code = error.code if isinstance(error, FraudOpsError) else error.__class__.__name__
    oversize = isinstance(error, OversizeMessageError)
    headers: Sequence[tuple[str, bytes]] = record.headers or ()
    return DeadLetter(
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        original_key=record.key,
        original_value=None if oversize else record.value,
        original_headers=dict(headers),
        error_type=code,
        error_message=str(error)[:2000],
        failed_by=failed_by,
        failed_at=datetime.now(UTC),
    )


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Headers that repeat a dead letter's reason and origin, so tools can filter without decoding."""
    return [
        ("error", letter.error_type.encode()),
        ("original_topic", letter.original_topic.encode()),
        ("original_partition", str(letter.original_partition).encode()),
        ("original_offset", str(letter.original_offset).encode()),
        ("failed_at", letter.failed_at.isoformat().encode()),
    ]


async def send_dead_letter(producer: AIOKafkaProducer, letter: DeadLetter, dlq_topic: str | None = None) -> None:
    """Publish a dead letter and wait for the broker's acknowledgement."""
    topic = dlq_topic or letter.original_topic + DLQ_SUFFIX
    await producer.send_and_wait(
        topic, value=letter.to_avro(), key=letter.original_key, headers=dead_letter_headers(letter)
    )
    log.warning(
        "message dead-lettered",
        extra={
            "topic": letter.original_topic,
            "partition": letter.original_partition,
            "offset": letter.original_offset,
            "error": letter.error_type,
        },
    )


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of `topic`, for a consumer that assigns them itself (no subscription, so no metadata)."""
    await consumer._client.add_topic(topic)
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topic {topic} has no partitions; create the topics first (`fraudops topics create`)")

"""Deliver recorded model events to Kafka, oldest first, until each is acknowledged.

Delivery is at least once: a crash between Kafka's acknowledgement and marking the row delivered sends
that event again, and consumers drop repeats by `event_id`. Order is kept by never sending an event
while an older one is still pending: after a failure the publisher waits and starts again from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.errors import KafkaError

from fraudops.errors import DependencyUnavailableError
from fraudops.kafka import ManagedProducer
from fraudops_registry_gateway.metrics import GatewayMetrics
from fraudops_registry_gateway.store import GatewayStore

log = logging.getLogger(__name__)

BATCH = 100


class OutboxPublisher:
    def __init__(
        self,
        store: GatewayStore,
        producer: ManagedProducer,
        metrics: GatewayMetrics,
        poll_interval_s: float,
        max_backoff_s: float,
        send_timeout_s: float,
    ) -> None:
        self.store = store
        self.producer = producer
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.send_timeout_s = send_timeout_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-publisher")

    def wake(self) -> None:
        """A change committed: deliver now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                delivered_all = await self.deliver_pending()
            except Exception:
                # The database may be away too; the rows wait there, so keep trying.
                log.exception("outbox delivery round failed")
                delivered_all = False
            failures = 0 if delivered_all else failures + 1
            delay = self.poll_interval_s if failures == 0 else min(self.max_backoff_s, 0.5 * 2**failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()

    async def deliver_pending(self) -> bool:
        """Send pending events in order; True when none is left, False when one failed (it stays pending)."""
        while True:
            self.metrics.outbox_pending.set(await asyncio.to_thread(self.store.pending_count))
            events = await asyncio.to_thread(self.store.pending_events, BATCH)
            if not events:
                return True
            for pending in events:
                try:
                    producer = await self.producer.get()
                    await asyncio.wait_for(
                        producer.send_and_wait(pending.topic, value=pending.payload, key=pending.key.encode()),
                        timeout=self.send_timeout_s,
                    )
                except (KafkaError, DependencyUnavailableError, TimeoutError) as exc:
                    error = str(exc) or exc.__class__.__name__
                    await asyncio.to_thread(self.store.mark_failed, pending.id, error)
                    self.metrics.publish_failures.inc()
                    log.warning(
                        "model event not delivered; will retry", extra={"outbox_id": pending.id, "error": error}
                    )
                    return False
                await asyncio.to_thread(self.store.mark_delivered, pending.id)
                self.metrics.events_published.inc()
            if len(events) < BATCH:
                self.metrics.outbox_pending.set(0)
                return True

"""Kafka killed with SIGKILL while ingest takes transactions: clients retrying the same bodies lose nothing."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from fraudops.contracts.messages import Transaction
from tests.support.kafka import drain
from tests.support.stack import RunningStack

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

BATCHES = 30
BATCH_SIZE = 10


def _batch(prefix: str, number: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "transaction_id": f"{prefix}-{number}-{i}",
            "event_time": (now - timedelta(seconds=number * BATCH_SIZE + i)).isoformat(),
            "customer_id": f"c-{i}",
            "terminal_id": f"t-{number}",
            "amount": 10.0 + i,
        }
        for i in range(BATCH_SIZE)
    ]


def _submit_until_settled(client: httpx.Client, items: list[dict[str, Any]], deadline: float) -> None:
    """What a well-behaved client does: resend the same body on 503 or a dropped connection."""
    while time.monotonic() < deadline:
        try:
            response = client.post("/v1/transactions", json={"transactions": items}, timeout=30)
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if response.status_code == 200:
            body = response.json()
            assert body["rejected"] == 0, body
            return
        assert response.status_code == 503, response.text
        time.sleep(0.5)
    raise AssertionError("batch never settled")


async def test_no_transaction_is_lost_across_a_broker_crash(running_stack: RunningStack) -> None:
    prefix = f"r{uuid.uuid4().hex[:10]}"
    kafka = running_stack.stack.component("kafka")
    crashed = threading.Event()

    def crash_and_restart() -> None:
        kafka.process.kill()
        crashed.set()
        time.sleep(3)
        kafka.start()

    deadline = time.monotonic() + 300
    crasher: threading.Thread | None = None
    with running_stack.client("ingest") as client:
        for number in range(BATCHES):
            if number == BATCHES // 3:
                crasher = threading.Thread(target=crash_and_restart)
                crasher.start()
                crashed.wait(30)
            _submit_until_settled(client, _batch(prefix, number), deadline)
    assert crasher is not None
    crasher.join(120)
    assert kafka.status().healthy

    records = await drain(running_stack.settings.kafka_bootstrap, "transactions", idle_s=5)
    received: dict[str, list[Transaction]] = {}
    for record in records:
        transaction = Transaction.from_avro(record.value)
        if transaction.transaction_id.startswith(prefix):
            received.setdefault(transaction.transaction_id, []).append(transaction)
    expected = {f"{prefix}-{n}-{i}" for n in range(BATCHES) for i in range(BATCH_SIZE)}
    assert set(received) == expected
    # At least once: a redelivered transaction is the same transaction; only the time ingest
    # accepted it may differ, since the client's retry was a second acceptance.
    for copies in received.values():
        first = copies[0].model_dump(exclude={"received_time"})
        assert all(copy.model_dump(exclude={"received_time"}) == first for copy in copies)

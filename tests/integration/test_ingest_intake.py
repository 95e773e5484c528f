"""Ingest against the real broker: valid items land exactly once, bad ones get reasons, bad bodies a clear 4xx."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fraudops.contracts.messages import Label, Transaction
from tests.support.kafka import drain
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration


def _transaction(prefix: str, n: int, **overrides: Any) -> dict[str, Any]:
    item = {
        "transaction_id": f"{prefix}-{n}",
        "event_time": (datetime.now(UTC) - timedelta(minutes=n)).isoformat(),
        "customer_id": f"c-{n % 7}",
        "terminal_id": f"t-{n % 11}",
        "amount": round(5 + n * 1.5, 2),
    }
    item.update(overrides)
    return item


async def _ids_in_topic(stack: RunningStack, topic: str, prefix: str) -> list[str]:
    records = await drain(stack.settings.kafka_bootstrap, topic)
    model = Transaction if topic == "transactions" else Label
    ids = [model.from_avro(r.value).transaction_id for r in records]
    return [i for i in ids if i.startswith(prefix)]


async def test_batch_with_invalid_rows_and_resubmission(running_stack: RunningStack) -> None:
    prefix = f"b{uuid.uuid4().hex[:10]}"
    items = [_transaction(prefix, n) for n in range(100)]
    items[5]["amount"] = -3
    items[40]["event_time"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    del items[77]["terminal_id"]
    with running_stack.client("ingest") as client:
        first = client.post("/v1/transactions", json={"transactions": items})
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["accepted"], body["rejected"], body["duplicates"]) == (97, 3, 0)
        rejected = {r["index"]: r["reasons"] for r in body["results"] if r["status"] == "rejected"}
        assert rejected.keys() == {5, 40, 77}
        assert rejected[5][0].startswith("amount:")
        assert rejected[40] == ["event_time: in the future"]
        assert rejected[77][0].startswith("terminal_id:")

        again = client.post("/v1/transactions", json={"transactions": items}).json()
        assert (again["accepted"], again["rejected"], again["duplicates"]) == (0, 3, 97)

    produced = await _ids_in_topic(running_stack, "transactions", prefix)
    assert sorted(produced) == sorted(f"{prefix}-{n}" for n in range(100) if n not in {5, 40, 77})


async def test_records_are_keyed_by_customer_and_stamped(running_stack: RunningStack) -> None:
    prefix = f"k{uuid.uuid4().hex[:10]}"
    with running_stack.client("ingest") as client:
        assert client.post("/v1/transactions", json=_transaction(prefix, 3)).status_code == 200
    records = await drain(running_stack.settings.kafka_bootstrap, "transactions")
    mine = [(r.key, Transaction.from_avro(r.value)) for r in records]
    mine = [(k, t) for k, t in mine if t.transaction_id.startswith(prefix)]
    assert len(mine) == 1
    key, transaction = mine[0]
    assert key == b"c-3"
    assert transaction.received_time is not None


def test_duplicate_inside_one_batch(running_stack: RunningStack) -> None:
    prefix = f"d{uuid.uuid4().hex[:10]}"
    item = _transaction(prefix, 1)
    with running_stack.client("ingest") as client:
        body = client.post("/v1/transactions", json={"transactions": [item, item]}).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]


@pytest.mark.parametrize(
    ("content", "headers", "status", "error"),
    [
        (b'{"transactions": [', {"content-type": "application/json"}, 422, "invalid_input"),
        (b"transaction_id,amount\n1,2\n", {"content-type": "text/csv"}, 415, "unsupported_media_type"),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "invalid_input"),
        (b'{"transactions": []}', {"content-type": "application/json"}, 422, "invalid_input"),
        (b'{"transactions": [], "extra": 1}', {"content-type": "application/json"}, 422, "invalid_input"),
    ],
    ids=["malformed", "csv", "array", "empty", "extra-key"],
)
def test_unreadable_bodies_are_refused(
    running_stack: RunningStack, content: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    with running_stack.client("ingest") as client:
        response = client.post("/v1/transactions", content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_oversize_body_is_refused_before_reading(running_stack: RunningStack) -> None:
    with running_stack.client("ingest") as client:
        response = client.post(
            "/v1/transactions", content=b" " * (5 * 1024 * 1024), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"amount": "NaN"}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 5e9}, "amount"),
        ({"event_time": "1970-01-01T00:00:00Z"}, "event_time"),
        ({"event_time": "2024-01-01T00:00:00"}, "event_time"),
        ({"transaction_id": "a b"}, "transaction_id"),
        ({"currency": "euro"}, "currency"),
        ({"received_time": "2024-01-01T00:00:00Z"}, "received_time"),
    ],
    ids=["nan", "zero", "absurd", "epoch", "naive", "space-in-id", "currency", "server-field"],
)
def test_each_bad_value_is_named(running_stack: RunningStack, override: dict[str, Any], field: str) -> None:
    item = _transaction(f"v{uuid.uuid4().hex[:10]}", 1, **override)
    with running_stack.client("ingest") as client:
        response = client.post("/v1/transactions", json=item)
    assert response.status_code == 422
    (result,) = response.json()["results"]
    assert result["status"] == "rejected"
    assert result["reasons"][0].startswith(f"{field}:")


async def test_labels_reach_topic_and_store_with_their_known_time(running_stack: RunningStack) -> None:
    prefix = f"l{uuid.uuid4().hex[:10]}"
    t0 = datetime.now(UTC) - timedelta(days=10)
    labels = [
        {"transaction_id": f"{prefix}-1", "is_fraud": True, "source": "CHARGEBACK", "known_at": t0.isoformat()},
        {"transaction_id": f"{prefix}-2", "is_fraud": False, "source": "ANALYST", "known_at": (t0 + timedelta(days=5)).isoformat()},
        # The analyst later reverses the verdict on the first transaction.
        {"transaction_id": f"{prefix}-1", "is_fraud": False, "source": "ANALYST", "known_at": (t0 + timedelta(days=8)).isoformat()},
        {"transaction_id": f"{prefix}-3", "is_fraud": True, "source": "ANALYST", "known_at": "2999-01-01T00:00:00Z"},
    ]  # fmt: skip
    with running_stack.client("ingest") as client:
        body = client.post("/v1/labels", json={"labels": labels}).json()
        assert (body["accepted"], body["rejected"]) == (3, 1)

        def verdicts(as_of: datetime) -> dict[str, bool]:
            found: dict[str, bool] = {}
            after = 0
            while True:
                page = client.get(
                    "/v1/labels", params={"as_of": as_of.isoformat(), "after": after, "limit": 500}
                ).json()
                found |= {
                    x["transaction_id"]: x["is_fraud"] for x in page["labels"] if x["transaction_id"].startswith(prefix)
                }
                if page["next_after"] is None:
                    return found
                after = page["next_after"]

        assert verdicts(t0 - timedelta(days=1)) == {}
        assert verdicts(t0 + timedelta(days=6)) == {f"{prefix}-1": True, f"{prefix}-2": False}
        assert verdicts(t0 + timedelta(days=9)) == {f"{prefix}-1": False, f"{prefix}-2": False}

    assert sorted(await _ids_in_topic(running_stack, "labels", prefix)) == [f"{prefix}-1", f"{prefix}-1", f"{prefix}-2"]


def test_write_while_kafka_is_down_is_a_503_and_retry_succeeds(running_stack: RunningStack) -> None:
    prefix = f"o{uuid.uuid4().hex[:10]}"
    item = _transaction(prefix, 1)
    kafka = running_stack.stack.component("kafka")
    kafka.stop()
    try:
        with running_stack.client("ingest") as client:
            response = client.post("/v1/transactions", json=item, timeout=60)
        assert response.status_code == 503
        assert response.json()["error"] == "dependency_unavailable"
    finally:
        kafka.start()
    with running_stack.client("ingest") as client:
        retry = client.post("/v1/transactions", json=item, timeout=60).json()
    assert retry["accepted"] == 1, retry

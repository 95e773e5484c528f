"""Datasets cut from the stream, against the running stack: a simulated stream with late labels is replayed into
the stack's Kafka, then ingest builds a dataset of a window of it through POST /v1/datasets/from-stream.

Other tests write to the same topics, so this stream lives in 2011 and its ids carry a prefix of their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest

from fraudops.contracts.messages import Label, LabelSource
from fraudops.datasets import read_manifest, read_valid_rows
from fraudops.kafka import make_producer
from fraudops.replay import replay
from fraudops.settings import KafkaSettings
from fraudops.simulator import SimulatorConfig, derive_labels, simulate
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration

SIMULATION_START = datetime(2011, 3, 1, tzinfo=UTC)
WINDOW_START = SIMULATION_START + timedelta(days=3)
WINDOW_END = SIMULATION_START + timedelta(days=7)


def _wait(client: httpx.Client, dataset_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/datasets/{dataset_id}").json()
        if body["status"] in {"ready", "failed"}:
            return body
        time.sleep(0.5)
    raise AssertionError(f"dataset {dataset_id} still not done")


def _from_stream(client: httpx.Client, start: datetime, end: datetime, **extra: Any) -> httpx.Response:
    return client.post("/v1/datasets/from-stream", json={"start": start.isoformat(), "end": end.isoformat(), **extra})


async def _send_labels(kafka: KafkaSettings, labels: list[Label]) -> None:
    producer = make_producer(kafka, "test-labels")
    await producer.start()
    try:
        for label in labels:
            await producer.send_and_wait("labels", value=label.to_avro(), key=label.transaction_id.encode())
    finally:
        await producer.stop()


def _verdicts(labels: pd.DataFrame) -> dict[str, int]:
    """The latest verdict per transaction, as the dataset must have it."""
    ordered = labels.sort_values("known_at", kind="stable")
    return {str(tid): int(fraud) for tid, fraud in zip(ordered["transaction_id"], ordered["is_fraud"], strict=True)}


def test_a_window_of_the_stream_becomes_a_labelled_validated_dataset(running_stack: RunningStack) -> None:
    prefix = f"sd{uuid.uuid4().hex[:8]}-"
    kafka = KafkaSettings(bootstrap_servers=running_stack.settings.kafka_bootstrap)
    simulated = simulate(
        SimulatorConfig(n_customers=60, n_terminals=120, n_days=10, start_date=SIMULATION_START.date(), seed=11)
    ).transactions
    simulated["transaction_id"] = prefix + simulated["transaction_id"].astype(str)
    labels = derive_labels(simulated)
    # A replay sends a label once the stream has reached its known_at: the later ones never reach the log.
    labels = labels[labels["known_at"] <= simulated["event_time"].max()]
    inside = simulated[(simulated["event_time"] >= WINDOW_START) & (simulated["event_time"] < WINDOW_END)]
    verdicts = _verdicts(labels)
    genuine = [t for t in inside["transaction_id"] if t not in verdicts]
    frauds = [t for t in inside["transaction_id"] if verdicts.get(t) == 1]
    assert len(genuine) >= 3, "the simulation should give unlabelled payments in the window"
    assert frauds, "the simulation should give labelled frauds in the window"
    flipped, future, later = genuine[0], genuine[1], genuine[2]
    stale = frauds[0]
    stale_known = pd.Timestamp(labels.loc[labels["transaction_id"] == stale, "known_at"].max()).to_pydatetime()

    asyncio.run(replay(simulated, kafka, 0, labels))
    # At least once: some payments reach the log twice, the second copy different (only the first counts).
    again = inside.head(20).assign(amount=inside.head(20)["amount"] + 1.0)
    asyncio.run(replay(again, kafka, 0))
    asyncio.run(
        _send_labels(
            kafka,
            [
                # An analyst's verdict after the chargebacks: the latest verdict wins.
                Label(transaction_id=flipped, is_fraud=True, source=LabelSource.ANALYST, known_at=datetime(2011, 4, 2, tzinfo=UTC)),
                # Written after the chargeback but known before it: the chargeback stays the verdict.
                Label(transaction_id=stale, is_fraud=False, source=LabelSource.ANALYST, known_at=stale_known - timedelta(days=1)),
                # Not known yet when the job runs.
                Label(transaction_id=future, is_fraud=True, source=LabelSource.ANALYST, known_at=datetime.now(UTC) + timedelta(days=1)),
            ],
        )
    )  # fmt: skip
    expected = {t: verdicts.get(t, 0) for t in inside["transaction_id"]} | {flipped: 1}

    with running_stack.client("ingest") as client:
        response = _from_stream(client, WINDOW_START, WINDOW_END, name="stream-test")
        assert response.status_code == 202, response.text
        assert response.json()["source"] == "stream"
        dataset = _wait(client, response.json()["dataset_id"])
        assert dataset["status"] == "ready", dataset
        # A label that becomes known after the job does not change the dataset; the next dataset has it.
        answer = client.post(
            "/v1/labels",
            json={"transaction_id": later, "is_fraud": True, "source": "ANALYST", "known_at": datetime.now(UTC).isoformat()},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        response = _from_stream(client, WINDOW_START, WINDOW_END, name="stream-test")
        assert response.status_code == 202, response.text
        assert response.json()["dataset_id"] != dataset["dataset_id"]
        newer = _wait(client, response.json()["dataset_id"])
        assert newer["status"] == "ready", newer

    rows = read_valid_rows(dataset["uri"])
    assert rows["transaction_id"].is_unique
    assert set(rows["transaction_id"]) == set(expected)  # nothing else lies in 2011
    assert (dataset["rows_valid"], dataset["rows_quarantined"]) == (len(expected), 0)
    assert dict(zip(rows["transaction_id"], rows["is_fraud"].astype(int), strict=True)) == expected
    first_amounts = dict(zip(inside["transaction_id"], inside["amount"], strict=True))
    assert dict(zip(rows["transaction_id"], rows["amount"], strict=True)) == pytest.approx(first_amounts)
    assert rows["event_time"].min() >= WINDOW_START
    assert rows["event_time"].max() < WINDOW_END

    manifest = read_manifest(dataset["uri"])
    assert manifest["failed_expectations"] == {}
    assert "is_fraud" in manifest["label_columns"]
    stream = dataset["report"]["stream"]
    assert stream["rows_labelled"] == sum(t in verdicts for t in expected) + (flipped not in verdicts)
    assert stream["rows_fraud"] == sum(expected.values())
    assert stream["duplicates_dropped"] >= len(again)
    assert stream["labels_known_later"] >= 1
    assert stream["unlabelled_as"] == 0

    newer_rows = read_valid_rows(newer["uri"])
    assert dict(zip(newer_rows["transaction_id"], newer_rows["is_fraud"].astype(int), strict=True)) == {
        **expected,
        later: 1,
    }


def test_a_window_without_transactions_fails_the_job_with_the_reason(running_stack: RunningStack) -> None:
    with running_stack.client("ingest") as client:
        start = datetime(2003, 2, 1, tzinfo=UTC)
        response = _from_stream(client, start, start + timedelta(days=2))
        assert response.status_code == 202, response.text
        dataset = _wait(client, response.json()["dataset_id"])
    assert dataset["status"] == "failed"
    assert "no transactions between 2003-02-01T00:00:00+00:00 and 2003-02-03T00:00:00+00:00" in dataset["error"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"start": "2024-03-02T00:00:00Z", "end": "2024-03-01T00:00:00Z"}, "end must be after start"),
        ({"start": "2024-03-01T00:00:00Z", "end": "2024-03-01T00:00:00Z"}, "end must be after start"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}, "at most 120 are allowed"),
        ({"start": "2024-01-01T00:00:00Z"}, "end"),
        ({"start": "2024-01-01", "end": "2024-01-02", "rows": 5}, "rows"),
    ],
)
def test_a_bad_window_is_refused_with_the_reason(
    running_stack: RunningStack, body: dict[str, Any], reason: str
) -> None:
    with running_stack.client("ingest") as client:
        response = client.post("/v1/datasets/from-stream", json=body)
        anonymous = httpx.post(running_stack.url("ingest") + "/v1/datasets/from-stream", json=body)
    assert response.status_code == 422, response.text
    assert reason in response.text
    assert anonymous.status_code == 401


def test_the_window_default_is_in_utc(running_stack: RunningStack) -> None:
    """A window without a zone is read as UTC, as ingest reads timestamps elsewhere."""
    with running_stack.client("ingest") as client:
        response = _from_stream(client, datetime(2003, 5, 1), datetime(2003, 5, 2))
        assert response.status_code == 202, response.text
        dataset = _wait(client, response.json()["dataset_id"])
    assert "2003-05-01T00:00:00+00:00" in (dataset["error"] or "")

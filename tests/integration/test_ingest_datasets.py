"""Dataset intake against the real service: Great Expectations validation, quarantine, storage, idempotency."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from fraudops.datasets import read_manifest, read_valid_rows
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 1, tzinfo=UTC)


def _frame(rows: int, prefix: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [f"{prefix}-{i}" for i in range(rows)],
            "event_time": [(START + timedelta(hours=i)).isoformat() for i in range(rows)],
            "customer_id": [f"c-{i % 13}" for i in range(rows)],
            "terminal_id": [f"t-{i % 17}" for i in range(rows)],
            "amount": [round(3 + (i * 7.3) % 180, 2) for i in range(rows)],
            "is_fraud": [int(i % 25 == 0) for i in range(rows)],
        }
    )


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _wait(client: httpx.Client, dataset_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/datasets/{dataset_id}").json()
        if body["status"] in {"ready", "failed"}:
            return body
        time.sleep(0.5)
    raise AssertionError(f"dataset {dataset_id} still not done")


def _upload(client: httpx.Client, content: bytes, content_type: str = "text/csv", **params: str) -> httpx.Response:
    query = {"period_start": "2024-03-01", "period_end": "2024-03-31", **params}
    return client.post("/v1/datasets", content=content, params=query, headers={"content-type": content_type})


def test_bad_rows_go_to_quarantine_with_their_failed_expectation(running_stack: RunningStack) -> None:
    prefix = f"q{uuid.uuid4().hex[:8]}"
    frame = _frame(100, prefix)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[3, "amount"] = "NaN"
    frame.loc[11, "amount"] = -5
    frame.loc[12, "amount"] = 9e12
    frame.loc[20, "event_time"] = "2024-05-15T10:00:00+00:00"  # outside the declared period
    frame.loc[31, "transaction_id"] = f"{prefix}-30"  # same id as row 30: neither can be trusted
    frame.loc[44, "customer_id"] = None
    bad = {3: "not_be_null(amount)", 11: "be_between(amount)", 12: "be_between(amount)",
           20: "be_between(event_time)", 30: "be_unique(transaction_id)", 31: "be_unique(transaction_id)",
           44: "not_be_null(customer_id)"}  # fmt: skip
    with running_stack.client("ingest") as client:
        response = _upload(client, _csv(frame), name="quarantine-test")
        assert response.status_code == 202, response.text
        dataset = _wait(client, response.json()["dataset_id"])
    assert dataset["status"] == "ready", dataset
    assert (dataset["rows_valid"], dataset["rows_quarantined"]) == (100 - len(bad), len(bad))

    quarantine = pd.read_parquet(Path(dataset["uri"].removeprefix("file://")) / "quarantine")
    by_position = {
        int(str(tid).rsplit("-", 1)[1]): failed
        for tid, failed in zip(quarantine["transaction_id"], quarantine["failed_expectations"], strict=True)
    }
    # Row 31 carries row 30's id; tell them apart by amount.
    assert len(quarantine) == len(bad)
    assert set(quarantine["event_time"]) >= {"2024-05-15T10:00:00+00:00"}
    for position, expectation in bad.items():
        if position == 31:
            continue
        assert expectation in by_position[position], (position, by_position[position])

    valid = read_valid_rows(dataset["uri"])
    assert len(valid) == 100 - len(bad)
    assert not set(valid["transaction_id"]) & {f"{prefix}-{p}" for p in (3, 11, 12, 20, 30, 44)}
    assert str(valid["event_time"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(valid["event_time"].dtype)
    manifest = read_manifest(dataset["uri"])
    assert manifest["rows_quarantined"] == len(bad)
    root = Path(dataset["uri"].removeprefix("file://"))
    report = json.loads((root / "report.json").read_text())
    assert report["success"] is False
    assert (root / "data_docs" / "index.html").is_file()
    assert any(p.name.startswith("event_date=2024-03-") for p in (root / "valid").iterdir())


def test_same_content_is_the_same_dataset(running_stack: RunningStack) -> None:
    content = _csv(_frame(20, f"s{uuid.uuid4().hex[:8]}"))
    key = f"key-{uuid.uuid4().hex}"
    with running_stack.client("ingest") as client:
        first = _upload(client, content, name="idem").json()
        second = _upload(client, content, name="idem").json()
        assert first["dataset_id"] == second["dataset_id"]
        keyed = client.post(
            "/v1/datasets",
            content=_csv(_frame(21, "other")),
            params={"period_start": "2024-03-01", "period_end": "2024-03-31"},
            headers={"content-type": "text/csv", "Idempotency-Key": key},
        )
        assert keyed.status_code == 202
        reused = client.post(
            "/v1/datasets",
            content=content,
            params={"period_start": "2024-03-01", "period_end": "2024-03-31"},
            headers={"content-type": "text/csv", "Idempotency-Key": key},
        )
        assert reused.status_code == 409
        assert _wait(client, first["dataset_id"])["status"] == "ready"


def test_parquet_upload(running_stack: RunningStack) -> None:
    frame = _frame(50, f"p{uuid.uuid4().hex[:8]}")
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    with running_stack.client("ingest") as client:
        response = _upload(client, buffer.getvalue(), "application/vnd.apache.parquet")
        assert response.status_code == 202, response.text
        dataset = _wait(client, response.json()["dataset_id"])
    assert (dataset["status"], dataset["rows_valid"], dataset["rows_quarantined"]) == ("ready", 50, 0)


def _staging_files(stack: RunningStack) -> set[str]:
    staging = stack.settings.state_dir / "ingest" / "staging"
    return {p.name for p in staging.iterdir()} if staging.exists() else set()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "detail"),
    [
        (b"transaction_id,event_time,amount\n1,2024-03-02T00:00:00Z,5\n", "text/csv", 422, "missing required column(s): customer_id, terminal_id"),
        (b"", "text/csv", 422, "empty"),
        (b"PAR1 not really parquet", "application/vnd.apache.parquet", 422, "not readable parquet"),
        (b'{"rows": []}', "application/json", 415, "text/csv"),
    ],
    ids=["missing-columns", "empty", "corrupt-parquet", "json"],
)  # fmt: skip
def test_unusable_uploads_are_refused_and_leave_nothing(
    running_stack: RunningStack, content: bytes, content_type: str, status: int, detail: str
) -> None:
    before = _staging_files(running_stack)
    with running_stack.client("ingest") as client:
        listed_before = len(client.get("/v1/datasets", params={"limit": 500}).json())
        response = _upload(client, content, content_type)
        assert response.status_code == status, response.text
        assert detail in response.json()["detail"]
        assert len(client.get("/v1/datasets", params={"limit": 500}).json()) == listed_before
    assert _staging_files(running_stack) == before


def test_oversize_upload_is_refused(running_stack: RunningStack) -> None:
    before = _staging_files(running_stack)
    with running_stack.client("ingest") as client:
        response = _upload(client, b"x" * (9 * 1024 * 1024))
    assert response.status_code == 413
    assert _staging_files(running_stack) == before


def test_unknown_dataset_is_404(running_stack: RunningStack) -> None:
    with running_stack.client("ingest") as client:
        assert client.get("/v1/datasets/ds-00000000000000000000").status_code == 404
        assert client.get("/v1/datasets/not-an-id").status_code == 422


def test_simulated_dataset_is_generated_validated_and_stored(running_stack: RunningStack) -> None:
    request = {"name": "sim-small", "customers": 200, "terminals": 400, "days": 30, "seed": 7}
    with running_stack.client("ingest") as client:
        response = client.post("/v1/datasets/simulated", json=request)
        assert response.status_code == 202, response.text
        dataset = _wait(client, response.json()["dataset_id"])
        again = client.post("/v1/datasets/simulated", json=request).json()
        bad = client.post("/v1/datasets/simulated", json={**request, "drift": "no_such_drift", "drift_start_day": 3})
    assert dataset["status"] == "ready", dataset
    assert dataset["rows_valid"] > 1000
    assert dataset["rows_quarantined"] == 0
    assert dataset["report"]["label_columns"] == ["is_fraud", "fraud_scenario"]
    assert again["dataset_id"] == dataset["dataset_id"]
    assert bad.status_code == 422
    valid = read_valid_rows(dataset["uri"])
    assert valid["is_fraud"].sum() > 0

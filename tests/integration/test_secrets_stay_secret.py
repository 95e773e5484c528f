"""Known secret values (tokens, the Postgres password, the S3 secret key) appear nowhere a request cycle
leaves a trace: not in the service's logs, its answers (errors included), nor its OpenAPI document."""

from __future__ import annotations

import io
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest

from tests.support.postgres import fresh_database
from tests.support.s3 import admin_filesystem, moto_server, s3_environment
from tests.support.service_process import ServiceProcess
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration

OPERATOR = "Op" + secrets.token_hex(16)
READER = "Rd" + secrets.token_hex(16)
S3_SECRET = "S3" + secrets.token_hex(16)


@pytest.fixture
def ingest(
    running_stack: RunningStack, postgres_admin_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ServiceProcess, list[str]]]:
    with moto_server() as endpoint, fresh_database(postgres_admin_dsn, "ingest_secrets") as database_url:
        for name, value in s3_environment(endpoint, tmp_path).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        bucket = f"secrets-{uuid.uuid4().hex[:10]}"
        admin_filesystem(endpoint).create_dir(bucket)
        password = urlsplit(database_url).password
        assert password
        service = ServiceProcess(
            "ingest",
            running_stack,
            tmp_path,
            {
                "TOKENS": json.dumps({"operator": OPERATOR, "reader": READER}),
                "SCOPES": json.dumps({"operator": ["*"], "reader": []}),
                "DATABASE_URL": database_url,
                "DATASETS_URI": f"s3://{bucket}/datasets",
                "STAGING_DIR": str(tmp_path / "staging"),
                "LOG_LEVEL": "DEBUG",
            },
        )
        service.start()
        try:
            yield service, [OPERATOR, READER, S3_SECRET, password]
        finally:
            service.stop()


def _csv() -> bytes:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "transaction_id": [f"sec-{i}" for i in range(30)],
            "event_time": [(start + timedelta(hours=i)).isoformat() for i in range(30)],
            "customer_id": [f"c-{i % 5}" for i in range(30)],
            "terminal_id": [f"t-{i % 7}" for i in range(30)],
            "amount": [10.0 + i for i in range(30)],
            "is_fraud": [int(i % 10 == 0) for i in range(30)],
        }
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def test_a_request_cycle_leaves_no_secret_in_logs_answers_or_openapi(
    ingest: tuple[ServiceProcess, list[str]],
) -> None:
    service, known_secrets = ingest
    answers: list[str] = []
    with httpx.Client(base_url=service.url, timeout=60) as client:
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        now = datetime.now(UTC)
        transaction = {
            "transaction_id": f"sec-{uuid.uuid4().hex[:10]}",
            "event_time": now.isoformat(),
            "customer_id": "c-1",
            "terminal_id": "t-1",
            "amount": 12.5,
        }
        calls = [
            client.post("/v1/transactions", json=transaction, headers=operator),
            client.post("/v1/transactions", json={**transaction, "amount": -1}, headers=operator),
            client.post("/v1/transactions", json=transaction, headers={"Authorization": f"Bearer {READER}"}),
            client.post("/v1/transactions", json=transaction, headers={"Authorization": f"Bearer {OPERATOR}x"}),
            client.post("/v1/transactions", json=transaction, headers={"Authorization": f"Basic {S3_SECRET}"}),
            client.post("/v1/transactions", content=b"{", headers={**operator, "content-type": "application/json"}),
            client.post(
                "/v1/labels",
                json={
                    "transaction_id": transaction["transaction_id"],
                    "is_fraud": True,
                    "source": "ANALYST",
                    "known_at": now.isoformat(),
                },
                headers=operator,
            ),
            client.post(
                "/v1/datasets",
                content=_csv(),
                params={"period_start": "2024-03-01", "period_end": "2024-03-31"},
                headers={**operator, "content-type": "text/csv"},
            ),
            client.get("/v1/labels"),
            client.get("/readyz"),
            client.get("/metrics"),
            client.get("/openapi.json"),
        ]
        assert [c.status_code for c in calls[:8]] == [200, 422, 403, 401, 401, 422, 200, 202], [c.text for c in calls]
        dataset_id = calls[7].json()["dataset_id"]
        deadline = time.monotonic() + 180
        while (dataset := client.get(f"/v1/datasets/{dataset_id}").json())["status"] not in {"ready", "failed"}:
            assert time.monotonic() < deadline, dataset
            time.sleep(0.5)
        assert dataset["status"] == "ready", dataset
        answers += [c.text for c in calls] + [json.dumps(dataset), json.dumps([dict(c.headers) for c in calls])]
    service.stop()
    logs = "\n".join(path.read_text(errors="replace") for path in service.workdir.glob("ingest-*.log"))
    assert "dataset" in logs  # the log is the one of this cycle, not empty
    for secret in known_secrets:
        assert secret not in logs
        for answer in answers:
            assert secret not in answer

"""The lifecycle through the services' public APIs: simulate and validate a dataset, train, gate, promote."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.stack import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "fraud-detector"


def _wait(client: httpx.Client, path: str, done: set[str], timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if body["status"] in done:
            return body
        time.sleep(1)
    raise AssertionError(f"{path} did not finish: {body}")


def test_dataset_to_champion(running_stack: RunningStack) -> None:
    world = {"name": "e2e", "customers": 2000, "terminals": 4000, "days": 60, "seed": 21}
    with running_stack.client("ingest") as ingest:
        accepted = ingest.post("/v1/datasets/simulated", json=world)
        assert accepted.status_code == 202, accepted.text
        dataset = _wait(ingest, accepted.headers["location"], {"ready", "failed"})
    assert dataset["status"] == "ready", dataset
    assert dataset["rows_valid"] > 100_000
    assert dataset["rows_quarantined"] == 0

    with running_stack.client("trainer") as trainer:
        started = trainer.post(
            "/v1/training-jobs", json={"dataset_id": dataset["dataset_id"], "protocol": {"train_days": 21}}
        )
        assert started.status_code == 202, started.text
        job = _wait(trainer, started.headers["location"], {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job
    version = job["result"]["model_version"]

    with running_stack.client("registry-gateway") as gateway:
        gateway.timeout = httpx.Timeout(120)
        verdict = gateway.post(f"/v1/models/{MODEL}/versions/{version}/validate")
        assert verdict.status_code == 200, verdict.text
        assert verdict.json()["validation_status"] == "passed", verdict.json()
        promoted = gateway.post(
            f"/v1/models/{MODEL}/versions/{version}/promote", json={"target": "champion", "reason": "e2e"}
        )
        assert promoted.status_code == 200, promoted.text
        champion = gateway.get(f"/v1/models/{MODEL}/champion").json()
        history = gateway.get(f"/v1/models/{MODEL}/history").json()
    assert champion["version"] == version
    assert champion["threshold_review"] == pytest.approx(job["result"]["thresholds"]["review"])
    assert any(entry["event_type"] == "PROMOTED" and entry["to_version"] == version for entry in history["entries"])

"""The registry gateway against the real stack: MLflow on Postgres, Kafka, and the gateway on Postgres.

Each test registers its own model (a unique name), so tests share the stack without sharing state.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import mlflow
import psycopg
import pytest
import xgboost
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fraudops.contracts.messages import ModelEvent
from fraudops.features import FEATURE_VERSION
from fraudops_registry_gateway.store import GatewayStore
from tests.support.db_lock import lock_order
from tests.support.kafka import drain
from tests.support.models import (
    register_foreign_version,
    register_version,
    train_booster,
    unique_model_name,
)
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration

SERVICE = "registry-gateway"


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> RunningStack:
    """The stack (gateway on Postgres), with this process's MLflow client pointed at its MLflow."""
    mlflow.set_tracking_uri(running_stack.url("mlflow"))
    return running_stack


@pytest.fixture(scope="module")
def good_booster() -> xgboost.Booster:
    return train_booster(seed=1)


@pytest.fixture(scope="module")
def bad_booster() -> xgboost.Booster:
    return train_booster(seed=1, inverted_labels=True)


@pytest.fixture
def client(stack: RunningStack) -> Iterator[httpx.Client]:
    with stack.client(SERVICE) as client:
        client.timeout = httpx.Timeout(120)
        yield client


def _validate(client: httpx.Client, name: str, version: str) -> dict[str, Any]:
    response = client.post(f"/v1/models/{name}/versions/{version}/validate")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _promote(client: httpx.Client, name: str, version: str, target: str = "champion") -> httpx.Response:
    return client.post(
        f"/v1/models/{name}/versions/{version}/promote", json={"target": target, "reason": f"test: {target}"}
    )


def _passed_versions(client: httpx.Client, name: str, booster: xgboost.Booster, count: int) -> list[str]:
    versions = [register_version(name, booster) for _ in range(count)]
    for version in versions:
        assert _validate(client, name, version)["validation_status"] == "passed"
    return versions


def _history(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{name}/history", params={"limit": 1000})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def _wait_delivered(client: httpx.Client, name: str, timeout_s: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        entries = _history(client, name)
        if all(entry["delivered"] for entry in entries):
            return entries
        assert time.monotonic() < deadline, f"events not delivered: {[e for e in entries if not e['delivered']]}"
        time.sleep(0.5)


def _events(stack: RunningStack, name: str) -> list[ModelEvent]:
    records = asyncio.run(drain(stack.settings.kafka_bootstrap, "model-events", idle_s=2))
    return [ModelEvent.from_avro(r.value) for r in records if r.key == name.encode()]


def _champion_alias(name: str) -> str | None:
    aliases: dict[str, str] = MlflowClient().get_registered_model(name).aliases
    return aliases.get("champion")


def test_write_endpoints_refuse_requests_without_a_token(stack: RunningStack) -> None:
    with stack.client(SERVICE, authenticated=False) as anonymous:
        for path, body in (
            ("/v1/models/m/versions/1/validate", None),
            ("/v1/models/m/versions/1/promote", {"target": "champion", "reason": "x"}),
            ("/v1/models/m/rollback", {"reason": "x"}),
            ("/v1/models/m/fallback", {"enabled": True, "reason": "x"}),
        ):
            response = anonymous.post(path, json=body)
            assert response.status_code == 401, (path, response.text)


def test_a_failed_version_cannot_be_promoted(client: httpx.Client, bad_booster: xgboost.Booster) -> None:
    name = unique_model_name()
    version = register_version(name, bad_booster)
    pending = _promote(client, name, version)
    assert pending.status_code == 409
    assert "not been validated" in pending.json()["detail"]

    result = _validate(client, name, version)
    assert result["validation_status"] == "failed"
    assert any("average precision" in reason for reason in result["reasons"])
    refused = _promote(client, name, version)
    assert refused.status_code == 409
    assert "failed validation: average precision" in refused.json()["detail"]
    assert _champion_alias(name) is None
    tags = MlflowClient().get_model_version(name, version).tags
    assert tags["validation_status"] == "failed"
    assert [entry["event_type"] for entry in _history(client, name)] == ["VALIDATED"]


def test_promotion_moves_the_alias_audits_and_announces(
    stack: RunningStack, client: httpx.Client, good_booster: xgboost.Booster
) -> None:
    name = unique_model_name()
    (version,) = _passed_versions(client, name, good_booster, 1)
    response = _promote(client, name, version, target="Production")
    assert response.status_code == 200, response.text
    assert _champion_alias(name) == version

    champion = client.get(f"/v1/models/{name}/champion").json()
    assert champion["version"] == version
    assert champion["model_uri"] == f"models:/{name}/{version}"
    assert (champion["threshold_review"], champion["threshold_decline"]) == (0.5, 0.9)
    assert champion["feature_version"] == FEATURE_VERSION
    assert champion["fallback"] is False
    assert client.get(f"/v1/models/{name}/Production").json()["version"] == version
    model = client.get(f"/v1/models/{name}").json()
    assert model["versions"][0]["stage"] == "Production"
    assert model["versions"][0]["metrics"]["average_precision"] == 0.9

    entries = _wait_delivered(client, name)
    promoted = entries[-1]
    assert promoted["event_type"] == "PROMOTED"
    assert (promoted["alias"], promoted["from_version"], promoted["to_version"]) == ("champion", None, version)
    assert promoted["principal"] == "operator"
    assert promoted["reason"] == "test: Production"
    events = _events(stack, name)
    assert [e.event_id for e in events] == [e["event_id"] for e in entries]
    assert events[-1].event_type == "PROMOTED"
    assert events[-1].to_version == version


def test_rollback_restores_the_previous_champion(client: httpx.Client, good_booster: xgboost.Booster) -> None:
    name = unique_model_name()
    first, second = _passed_versions(client, name, good_booster, 2)
    assert _promote(client, name, first).status_code == 200
    assert _promote(client, name, second).status_code == 200
    assert _champion_alias(name) == second

    response = client.post(f"/v1/models/{name}/rollback", json={"reason": "second misbehaves"})
    assert response.status_code == 200, response.text
    assert (response.json()["from_version"], response.json()["to_version"]) == (second, first)
    assert _champion_alias(name) == first
    stages = {v["version"]: v["stage"] for v in client.get(f"/v1/models/{name}").json()["versions"]}
    assert stages == {first: "Production", second: "Archived"}
    again = client.post(f"/v1/models/{name}/rollback", json={"reason": "again"})
    assert again.status_code == 409
    assert "no previous champion" in again.json()["detail"]

    staged = _promote(client, name, second, target="Staging")
    assert staged.status_code == 200, staged.text
    assert client.get(f"/v1/models/{name}/challenger").json()["version"] == second


def test_a_version_stored_outside_the_artifact_store_fails_validation(client: httpx.Client) -> None:
    name = unique_model_name()
    # MLflow 3 refuses file:// sources outside a run's folder and `..` itself; foreign buckets it accepts.
    with pytest.raises(MlflowException, match="Invalid model version source"):
        register_foreign_version(name, "file:///etc/passwd")
    version = register_foreign_version(name, "s3://someone-else/model")
    result = _validate(client, name, version)
    assert result["validation_status"] == "failed"
    assert any("outside the artifact store" in reason for reason in result["reasons"]), result["reasons"]
    assert result["metrics"] is None  # refused before anything was fetched from there
    assert _promote(client, name, version).status_code == 409


def test_a_run_whose_artifacts_live_elsewhere_fails_validation(client: httpx.Client) -> None:
    name = unique_model_name()
    experiment = mlflow.create_experiment(f"foreign-{name}", artifact_location="s3://someone-else/experiments")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_param("purpose", "artifacts elsewhere")
    version = register_foreign_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    result = _validate(client, name, version)
    assert result["validation_status"] == "failed"
    assert any("resolves to 's3://someone-else" in reason for reason in result["reasons"]), result["reasons"]


def test_fallback_switch_is_announced_and_visible(
    stack: RunningStack, client: httpx.Client, good_booster: xgboost.Booster
) -> None:
    name = unique_model_name()
    (version,) = _passed_versions(client, name, good_booster, 1)
    assert _promote(client, name, version).status_code == 200
    on = client.post(f"/v1/models/{name}/fallback", json={"enabled": True, "reason": "incident 42"})
    assert on.status_code == 200, on.text
    assert on.json()["changed"] is True
    assert client.get(f"/v1/models/{name}/champion").json()["fallback"] is True
    repeated = client.post(f"/v1/models/{name}/fallback", json={"enabled": True, "reason": "still"})
    assert repeated.json()["changed"] is False
    off = client.post(f"/v1/models/{name}/fallback", json={"enabled": False, "reason": "resolved"})
    assert off.json()["changed"] is True
    assert client.get(f"/v1/models/{name}/champion").json()["fallback"] is False

    _wait_delivered(client, name)
    kinds = [(e.event_type, e.reason) for e in _events(stack, name) if e.event_type.startswith("FALLBACK")]
    assert kinds == [("FALLBACK_ON", "incident 42"), ("FALLBACK_OFF", "resolved")]


def test_concurrent_promotions_and_rollbacks_leave_a_consistent_history(
    stack: RunningStack, gateway_database_dsn: str, client: httpx.Client, good_booster: xgboost.Booster
) -> None:
    name = unique_model_name()
    versions = _passed_versions(client, name, good_booster, 3)
    before = len(_history(client, name))

    def change(i: int) -> int:
        with stack.client(SERVICE) as own:
            own.timeout = httpx.Timeout(120)
            if i % 4 == 3:
                response = own.post(f"/v1/models/{name}/rollback", json={"reason": f"race {i}"})
            else:
                response = _promote(own, name, versions[i % 3])
        assert response.status_code in (200, 409), response.text
        return response.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(change, range(20)))

    entries = _wait_delivered(client, name)
    changes = entries[before:]
    assert len(changes) == codes.count(200) > 0
    for earlier, later in itertools.pairwise(changes):
        assert later["from_version"] == earlier["to_version"], (earlier, later)
    assert _champion_alias(name) == changes[-1]["to_version"]
    assert [e.event_id for e in _events(stack, name)] == [e["event_id"] for e in entries]
    # The audit log is durable in Postgres, not only in the gateway's answers.
    with psycopg.connect(gateway_database_dsn) as conn:
        stored = conn.execute("SELECT event_id FROM audit_log WHERE model_name = %s ORDER BY id", (name,)).fetchall()
    assert [row[0] for row in stored] == [e["event_id"] for e in entries]


def test_postgres_locks_one_model_at_a_time(gateway_database_dsn: str) -> None:
    first, second = GatewayStore(gateway_database_dsn), GatewayStore(gateway_database_dsn)
    name, other = unique_model_name(), unique_model_name()
    try:
        # The same model waits for the holder (SELECT ... FOR UPDATE); another model does not.
        assert lock_order(first, second, name, name) == ["holder released", "waiter entered"]
        assert lock_order(first, second, name, other) == ["waiter entered", "holder released"]
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_mlflow_down_answers_503_and_changes_nothing(
    stack: RunningStack, client: httpx.Client, good_booster: xgboost.Booster
) -> None:
    name = unique_model_name()
    first, second = _passed_versions(client, name, good_booster, 2)
    assert _promote(client, name, first).status_code == 200
    before = _wait_delivered(client, name)
    mlflow_server = stack.stack.component("mlflow")
    mlflow_server.stop()
    try:
        for response in (
            _promote(client, name, second),
            client.post(f"/v1/models/{name}/rollback", json={"reason": "x"}),
            client.post(f"/v1/models/{name}/fallback", json={"enabled": True, "reason": "x"}),
            client.post(f"/v1/models/{name}/versions/{second}/validate"),
            client.get(f"/v1/models/{name}/champion"),
        ):
            assert response.status_code == 503, response.text
            assert "MLflow" in response.json()["detail"]
        assert _history(client, name) == before
    finally:
        mlflow_server.start()
    assert _champion_alias(name) == first
    assert _promote(client, name, second).status_code == 200


def test_events_recorded_while_kafka_is_down_are_delivered_later(stack: RunningStack, client: httpx.Client) -> None:
    name = unique_model_name()
    register_foreign_version(name, "s3://someone-else/model")
    kafka = stack.stack.component("kafka")
    kafka.stop()
    try:
        response = client.post(f"/v1/models/{name}/fallback", json={"enabled": True, "reason": "kafka is away"})
        assert response.status_code == 200, response.text
        assert response.json()["record"]["delivered"] is False
    finally:
        kafka.start()
    entries = _wait_delivered(client, name, timeout_s=120)
    assert [e.reason for e in _events(stack, name)] == [e["reason"] for e in entries]

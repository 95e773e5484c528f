"""The DAGs against the live local stack: real Kafka, MLflow on Postgres, ingest, trainer and registry gateway.

1. `airflow dags test fraud_training_pipeline` ends in success and leaves its version as the champion.
2. A running `airflow standalone` (the stack's own component) accepts a trigger of `fraud_retrain_on_alert`
   through its REST API with the monitor's conf, and the run completes and reports its outcome to the monitor
   (a recording stand-in here: the monitor's action endpoints are built separately). Its dataset is cut from
   the stream: a simulated history with its labels is replayed into the stack's Kafka first.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from fraudops.contracts.messages import Label, LabelSource
from fraudops.kafka import make_producer, start_client
from fraudops.replay import LABELS_TOPIC, replay
from fraudops.settings import KafkaSettings
from fraudops.simulator import SimulatorConfig, derive_labels, simulate
from fraudops.stack.airflow import airflow_password
from fraudops.stack.config import StackSettings
from fraudops.stack.stack import Stack
from tests.support.airflow import (
    airflow_env,
    migrate,
    recording_server,
    require_airflow,
    run_airflow,
    run_outcome,
    service_connections,
    wait_for,
    xcom_value,
)
from tests.support.ports import free_port
from tests.support.postgres import fresh_database
from tests.support.stack import RunningStack, run_cli

pytestmark = pytest.mark.slow

MODEL = "fraud-detector"
# Small enough for a test, large enough for the gateway's default quality gate (as in the e2e test).
WORLD: dict[str, Any] = {"name": "airflow-test", "customers": 2000, "terminals": 4000, "days": 60}
TRAINING = {"protocol": {"train_days": 21}}
# The retraining's stream: a period no other test writes to, so its window holds only these payments.
STREAM_START = datetime(2012, 1, 2, tzinfo=UTC)
LIFECYCLE = {
    "create_dataset",
    "wait_for_dataset",
    "start_training",
    "wait_for_training",
    "validate_version",
    "promote_challenger",
    "promote_champion",
}


async def _send_labels(kafka: KafkaSettings, labels: pd.DataFrame) -> None:
    """Every label at once: the dataset only needs them in the log before it is built, and a replay interleaving
    them with the payments waits for each burst (and stops at the last payment, leaving later labels out)."""
    producer = make_producer(kafka, "test-labels")
    await start_client(producer, kafka.bootstrap_servers)
    try:
        sends = []
        for tid, fraud, source, known in zip(
            labels["transaction_id"].astype(str).tolist(),
            labels["is_fraud"].astype(bool).tolist(),
            labels["source"].astype(str).tolist(),
            pd.to_datetime(labels["known_at"], utc=True),
            strict=True,
        ):
            label = Label(
                transaction_id=tid, is_fraud=fraud, source=LabelSource(source), known_at=known.to_pydatetime()
            )
            sends.append(await producer.send(LABELS_TOPIC, value=label.to_avro(), key=tid.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def _replay_history(stack: RunningStack) -> tuple[datetime, datetime, int, int]:
    """A simulated history and every label of it into the stack's topics; returns its period, how many
    payments and how many frauds it holds."""
    kafka = KafkaSettings(bootstrap_servers=stack.settings.kafka_bootstrap)
    days = int(WORLD["days"])
    config = SimulatorConfig(n_customers=WORLD["customers"], n_terminals=WORLD["terminals"], n_days=days,
                             start_date=STREAM_START.date(), seed=21)  # fmt: skip
    transactions = simulate(config).transactions
    # Other tests replay simulations too: their labels must not land on these payments.
    transactions["transaction_id"] = f"af{uuid.uuid4().hex[:6]}-" + transactions["transaction_id"].astype(str)
    labels = derive_labels(transactions)
    asyncio.run(replay(transactions, kafka, 0))
    asyncio.run(_send_labels(kafka, labels))
    frauds = int(transactions["is_fraud"].sum())
    return STREAM_START, STREAM_START + timedelta(days=days), len(transactions), frauds


def _champion(stack: RunningStack) -> str | None:
    with stack.client("registry-gateway", authenticated=False) as gateway:
        response = gateway.get(f"/v1/models/{MODEL}/champion")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    version: str = response.json()["version"]
    return version


def _history(stack: RunningStack) -> list[dict[str, Any]]:
    with stack.client("registry-gateway", authenticated=False) as gateway:
        response = gateway.get(f"/v1/models/{MODEL}/history", params={"limit": 1000})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def test_dags_test_of_the_training_pipeline_leaves_a_new_champion(running_stack: RunningStack, tmp_path: Path) -> None:
    require_airflow()
    before = _champion(running_stack)
    env = airflow_env(tmp_path, service_connections(running_stack.settings, running_stack.token), retry_delay_s=2)
    migrate(env)
    conf = {"auto_promote": True, "simulation": WORLD, "training": TRAINING}

    started = time.monotonic()
    result = run_airflow(env, "dags", "test", "fraud_training_pipeline", "--conf", json.dumps(conf), timeout=1200)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    state, tasks = run_outcome(tmp_path, "fraud_training_pipeline")
    assert state == "success", output[-6000:]
    assert {task: outcome.state for task, outcome in tasks.items()} == dict.fromkeys(LIFECYCLE, "success")

    version = xcom_value(tmp_path, "fraud_training_pipeline", "wait_for_training")
    assert version is not None
    assert _champion(running_stack) == version != before
    changes = [(e["event_type"], e["alias"], e["to_version"], e["reason"]) for e in _history(running_stack)]
    promotions = [(alias, reason) for kind, alias, to, reason in changes if kind == "PROMOTED" and to == version]
    assert {alias for alias, _ in promotions} == {"challenger", "champion"}, changes
    assert all(reason.startswith("fraud_training_pipeline run ") for _, reason in promotions)

    dataset_id = xcom_value(tmp_path, "fraud_training_pipeline", "wait_for_dataset")
    with running_stack.client("ingest", authenticated=False) as ingest:
        dataset = ingest.get(f"/v1/datasets/{dataset_id}").json()
    assert dataset["status"] == "ready"
    assert dataset["rows_quarantined"] == 0
    print(f"airflow dags test fraud_training_pipeline: {elapsed:.0f} s")


@pytest.fixture
def airflow_database(postgres_admin_dsn: str) -> Iterator[str]:
    with fresh_database(postgres_admin_dsn, "airflow") as dsn:
        yield dsn


def test_a_retrain_triggered_through_the_rest_api_completes_and_reports_to_the_monitor(
    running_stack: RunningStack, airflow_database: str
) -> None:
    require_airflow()
    action_id = "act-" + datetime.now(UTC).strftime("%H%M%S%f")
    now = datetime.now(UTC)
    alert = {
        "status": "firing",
        "labels": {"alertname": "FraudLiveAveragePrecisionLow", "severity": "critical"},
        "annotations": {"summary": "live AP below the floor"},
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "4f2b0c1d",
    }
    replay_started = time.monotonic()
    start, end, payments, frauds = _replay_history(running_stack)
    replay_s = time.monotonic() - replay_started
    conf = {
        "action_id": action_id,
        "reason": "live average precision below the floor",
        "alerts": [alert],
        # The monitor's window is 28 days of the newest events; this history needs more for the training below.
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "training": TRAINING,
    }
    with recording_server([(200, lambda path, body: {"recorded": True})]) as monitor:
        env = dict(running_stack.env)
        env.update(
            {
                "FRAUDOPS_STACK_AIRFLOW_PORT": str(free_port()),
                # The DAG's connection to the monitor goes to the recording server.
                "FRAUDOPS_STACK_MONITOR_PORT": str(monitor.port),
                "FRAUDOPS_STACK_AIRFLOW_PARALLELISM": "2",
                "FRAUDOPS_STACK_AIRFLOW_RETRY_DELAY_S": "2",
                "FRAUDOPS_STACK_START_TIMEOUT_S": "240",
                "FRAUDOPS_STACK_AIRFLOW_DATABASE_URL": airflow_database,
            }
        )
        settings = StackSettings.model_validate(
            {k[len("FRAUDOPS_STACK_") :].lower(): v for k, v in env.items() if k.startswith("FRAUDOPS_STACK_")}
        )
        started = time.monotonic()
        up = run_cli(env, "up", "--only", "airflow", "--with-airflow")
        startup_s = time.monotonic() - started
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            run = _trigger_and_wait(settings, conf)
        finally:
            Stack(settings).airflow.stop()
    print(f"replay {replay_s:.0f} s; airflow standalone ready in {startup_s:.0f} s; run took {run['duration_s']:.0f} s")

    assert run["state"] == "success", run
    assert run["tasks"] == {**dict.fromkeys(LIFECYCLE, "success"), "record_success": "success",
                            "record_failure": "skipped"}  # fmt: skip
    outcomes = [r for r in monitor.requests if r.path == f"/v1/actions/{action_id}/outcome"]
    assert len(outcomes) == 1, [r.path for r in monitor.requests]
    assert outcomes[0].method == "POST"
    assert outcomes[0].headers["Authorization"] == f"Bearer {running_stack.token('monitor')}"
    assert outcomes[0].body["outcome"] == "succeeded"
    assert outcomes[0].body["dag_run_id"] == run["dag_run_id"]
    assert outcomes[0].body["model_version"] == _champion(running_stack)

    # The run's dataset came from the stream: one request (its Idempotency-Key holds across retries).
    with running_stack.client("ingest", authenticated=False) as ingest:
        listed = ingest.get("/v1/datasets", params={"limit": 500}).json()
    built = [
        d
        for d in listed
        if d["source"] == "stream" and d["name"] == "retrain" and datetime.fromisoformat(d["created_at"]) >= now
    ]
    assert len(built) == 1, built
    dataset = built[0]
    assert dataset["status"] == "ready", dataset
    assert dataset["report"]["stream"]["start"] == start.isoformat()
    # Every payment of the window, each fraud labelled: its chargeback was in the log when the job ran.
    assert (dataset["rows_valid"], dataset["rows_quarantined"]) == (payments, 0)
    assert dataset["report"]["stream"]["rows_fraud"] == frauds


def _trigger_and_wait(settings: StackSettings, conf: dict[str, Any]) -> dict[str, Any]:
    """Trigger as the monitor does (its own user, a token from /auth/token) and follow the run to its end."""
    base = f"http://{settings.host}:{settings.airflow_port}"
    with httpx.Client(base_url=base, timeout=60) as client:
        login = client.post(
            "/auth/token", json={"username": "monitor", "password": airflow_password(settings, "monitor")}
        )
        assert login.status_code in (200, 201), login.text
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        # The monitor unpauses before it triggers; its user may (and the DAG starts unpaused anyway).
        unpaused = client.patch("/api/v2/dags/fraud_retrain_on_alert", json={"is_paused": False})
        assert unpaused.status_code == 200, unpaused.text
        triggered = client.post(
            "/api/v2/dags/fraud_retrain_on_alert/dagRuns", json={"logical_date": None, "conf": conf}
        )
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["dag_run_id"]
        started = time.monotonic()

        def finished() -> dict[str, Any] | None:
            try:
                response = client.get(f"/api/v2/dags/fraud_retrain_on_alert/dagRuns/{quote(run_id)}")
            except httpx.TimeoutException:
                return None  # a busy 2-core machine; the next poll asks again
            run: dict[str, Any] = response.json()
            return run if run["state"] in {"success", "failed"} else None

        run = wait_for(finished, timeout_s=1200, interval_s=3)
        listed = client.get(f"/api/v2/dags/fraud_retrain_on_alert/dagRuns/{quote(run_id)}/taskInstances").json()
    return {
        "dag_run_id": run_id,
        "state": run["state"],
        "duration_s": time.monotonic() - started,
        "tasks": {ti["task_id"]: ti["state"] for ti in listed["task_instances"]},
    }

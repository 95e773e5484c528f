"""The DAGs against the live local stack: real Kafka, MLflow on Postgres, ingest, trainer and registry gateway.

1. `airflow dags test fraud_training_pipeline` ends in success and leaves its version as the champion.
2. The whole retraining loop on real parts: an alert delivered to a monitor starts its action, which
   triggers `fraud_retrain_on_alert` through a running `airflow standalone`'s REST API (the stack's own
   component, the monitor's own user); the run cuts its dataset from the stream (a simulated history with
   its labels is replayed into the stack's Kafka first), trains, promotes, and reports its end to the
   monitor's action.
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

import pandas as pd
import pytest
from pydantic import SecretStr

from fraudops.airflow_api import AirflowClient
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
    require_airflow,
    run_airflow,
    run_outcome,
    service_connections,
    wait_for,
    xcom_value,
)
from tests.support.ports import free_port
from tests.support.postgres import fresh_database
from tests.support.service_process import ServiceProcess
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


def test_the_monitor_starts_a_retraining_run_that_completes_and_reports_back_to_it(
    running_stack: RunningStack, airflow_database: str, tmp_path: Path
) -> None:
    """The whole loop on real parts: an alert at the monitor, its action triggers the retraining DAG through
    Airflow's REST API, the run cuts its dataset from the stream, trains and promotes, and reports its end
    to the monitor's action."""
    require_airflow()
    now = datetime.now(UTC)
    replay_started = time.monotonic()
    start, end, payments, frauds = _replay_history(running_stack)
    replay_s = time.monotonic() - replay_started
    airflow_port = free_port()
    monitor = ServiceProcess(
        "monitor",
        running_stack,
        tmp_path,
        {
            # Only the alert webhook and the actions here: the stack's own monitor reads the topics.
            "CONSUME": "false",
            "DATA_DIR": str(tmp_path / "monitor"),
            "AIRFLOW__URL": f"http://127.0.0.1:{airflow_port}",
            "AIRFLOW__USERNAME": "monitor",
            # The window ends at the alert (no evaluation ran); this history needs more than 28 days.
            "AIRFLOW__RETRAIN_WINDOW_DAYS": str((end - start).days),
            "AIRFLOW__RETRAIN_CONF": json.dumps({"training": TRAINING}),
        },
    )
    env = dict(running_stack.env)
    env.update(
        {
            "FRAUDOPS_STACK_AIRFLOW_PORT": str(airflow_port),
            # The DAG's connection to the monitor goes to this test's monitor.
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
        monitor.settings["AIRFLOW_PASSWORD"] = airflow_password(settings, "monitor")
        monitor.start()
        action = _alert_and_wait(monitor, end)
        run = _run(settings, action["dag_run_id"])
    finally:
        monitor.stop()
        Stack(settings).airflow.stop()
    print(f"replay {replay_s:.0f} s; airflow standalone ready in {startup_s:.0f} s; run ended {action['updated_at']}")

    assert run["state"] == "success", run
    assert run["tasks"] == {**dict.fromkeys(LIFECYCLE, "success"), "record_success": "success",
                            "record_failure": "skipped"}  # fmt: skip
    assert action["status"] == "succeeded", action
    assert action["dag_run_id"] == f"monitor-{action['id']}"
    assert action["model_version"] == _champion(running_stack)
    assert run["conf"]["action_id"] == action["id"]
    assert run["conf"]["alerts"][0]["labels"]["alertname"] == "FraudLiveAccuracyLow"

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


def _alert_and_wait(monitor: ServiceProcess, starts_at: datetime) -> dict[str, Any]:
    """Deliver a low-accuracy alert as Alertmanager does; wait until the retraining it starts has reported."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "FraudLiveAccuracyLow", "category": "accuracy", "model_name": MODEL},
        "annotations": {"summary": "live AP below the floor"},
        "startsAt": starts_at.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": uuid.uuid4().hex[:16],
    }
    with monitor.client() as client:
        received = client.post("/v1/alerts", json={"version": "4", "status": "firing", "alerts": [alert]})
        assert received.status_code == 202, received.text
        retrain = [a for a in received.json()["actions"] if a["kind"] == "retrain"]
        assert len(retrain) == 1, received.json()

        def ended() -> dict[str, Any] | None:
            current: dict[str, Any] = client.get(f"/v1/actions/{retrain[0]['id']}").json()
            return current if current["status"] in {"succeeded", "failed"} else None

        action: dict[str, Any] = wait_for(ended, timeout_s=1200, interval_s=3)
        return action


def _run(settings: StackSettings, run_id: str) -> dict[str, Any]:
    """A DAG run's state, conf and task states once the run has ended, read with the admin's token (the
    client the demo uses). The action's outcome is reported from inside the run's last task, so the run
    itself ends a moment after the monitor knows (a clean-clone CI run read it still running)."""
    client = AirflowClient(
        f"http://{settings.host}:{settings.airflow_port}", "admin", SecretStr(airflow_password(settings)), 60
    )

    def ended() -> dict[str, Any] | None:
        run = asyncio.run(client.run_state("fraud_retrain_on_alert", run_id))
        if run.state not in {"success", "failed"}:
            return None
        return {"state": run.state, "conf": run.conf, "tasks": run.tasks}

    run: dict[str, Any] = wait_for(ended, timeout_s=120, interval_s=1)
    return run

"""`fraudops up` brings the whole local stack to ready on loopback only, with MLflow on Postgres."""

from __future__ import annotations

import ipaddress
import uuid

import httpx
import psutil
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from tests.support.stack import RunningStack, run_cli

pytestmark = pytest.mark.integration


def test_status_reports_every_component_ready(running_stack: RunningStack) -> None:
    result = run_cli(running_stack.env, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [
        "kafka", "mlflow", "ingest", "trainer", "scorer", "monitor", "registry-gateway",
    ]  # fmt: skip
    assert all(line.rstrip().endswith("ready") for line in lines)


def test_up_again_reuses_the_running_stack(running_stack: RunningStack) -> None:
    before = {s.name: s.pid for s in running_stack.stack.status()}
    result = run_cli(running_stack.env, "up")
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
    assert {s.name: s.pid for s in running_stack.stack.status()} == before


def test_every_listener_is_on_loopback(running_stack: RunningStack) -> None:
    pids = {s.pid for s in running_stack.stack.status() if s.pid}
    addresses = set()
    for pid in pids:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for process in tree:
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    address = ipaddress.ip_address(conn.laddr.ip)
                    # The JVM reports its IPv4 sockets as IPv4-mapped IPv6 addresses.
                    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                        address = address.ipv4_mapped
                    addresses.add(str(address))
    assert addresses == {"127.0.0.1"}


def test_services_answer_health_and_metrics(running_stack: RunningStack) -> None:
    for service in ("ingest", "trainer", "scorer", "monitor", "registry-gateway"):
        with running_stack.client(service, authenticated=False) as client:
            assert client.get("/healthz").json()["status"] == "alive"
            assert client.get("/readyz").json()["status"] == "ready"
            metrics = client.get("/metrics").text
            assert "fraud_service_info" in metrics
            assert "fraud_http_requests_total" in metrics


def test_mlflow_keeps_runs_in_postgres(running_stack: RunningStack, mlflow_backend_dsn: str) -> None:
    client = MlflowClient(tracking_uri=running_stack.url("mlflow"))
    experiment_id = client.create_experiment(f"foundation-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "auc", 0.9)
    client.set_terminated(run.info.run_id)
    with psycopg.connect(mlflow_backend_dsn) as conn:
        row = conn.execute(
            "SELECT value FROM metrics WHERE run_uuid = %s AND key = 'auc'", (run.info.run_id,)
        ).fetchone()
    assert row is not None
    assert row[0] == pytest.approx(0.9)


def test_mlflow_health_is_served(running_stack: RunningStack) -> None:
    assert httpx.get(running_stack.url("mlflow") + "/health", timeout=10).status_code == 200

"""Retries as Airflow really runs them (`airflow dags test`): 5xx twice then 201 succeeds on the third try;
a 4xx fails the task at once, without a retry. The service is a recording stand-in for the monitor."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.support.airflow import (
    airflow_env,
    connection,
    migrate,
    recording_server,
    require_airflow,
    run_airflow,
    run_outcome,
    xcom_value,
)

DAG = "fraud_monitoring_report"
REPORT = {"id": "rep-1", "url": "/v1/reports/rep-1", "created_at": "2026-11-28T12:00:00+00:00"}


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_airflow()
    home = tmp_path_factory.mktemp("airflow-retries")
    migrate(airflow_env(home, {}))
    return home


def _run_report_dag(home: Path, port: int, token: str) -> None:
    env = airflow_env(home, {"AIRFLOW_CONN_FRAUDOPS_MONITOR": connection("127.0.0.1", port, token)}, retry_delay_s=1)
    result = run_airflow(env, "dags", "test", DAG, timeout=300)
    # The outcome is read from the metadata DB; the output only explains a surprise.
    (home / f"dags-test-{port}.log").write_text(result.stdout + result.stderr)


def test_two_server_errors_then_success_succeeds_on_the_third_try(airflow_home: Path) -> None:
    token = secrets.token_urlsafe(24)
    with recording_server([(500, {"error": "boom"}), (503, {"error": "busy"}), (201, REPORT)]) as monitor:
        _run_report_dag(airflow_home, monitor.port, token)
    state, tasks = run_outcome(airflow_home, DAG)
    assert state == "success", (airflow_home / f"dags-test-{monitor.port}.log").read_text()[-4000:]
    assert tasks["request_report"].state == "success"
    assert tasks["request_report"].try_number == 3
    assert [r.path for r in monitor.requests] == ["/v1/reports"] * 3
    assert {r.headers["Authorization"] for r in monitor.requests} == {f"Bearer {token}"}
    link = xcom_value(airflow_home, DAG, "request_report")
    assert link == {**REPORT, "url": f"http://127.0.0.1:{monitor.port}/v1/reports/rep-1"}
    # The token never reaches the task logs in clear (Airflow masks connection passwords).
    log = (airflow_home / f"dags-test-{monitor.port}.log").read_text()
    assert token not in log
    assert "request failed" in log


def test_a_client_error_fails_at_once_without_retrying(airflow_home: Path) -> None:
    with recording_server([(403, {"error": "forbidden", "detail": "wrong token"})]) as monitor:
        _run_report_dag(airflow_home, monitor.port, secrets.token_urlsafe(24))
    state, tasks = run_outcome(airflow_home, DAG)
    assert state == "failed"
    assert tasks["request_report"].state == "failed"
    assert tasks["request_report"].try_number == 1
    assert len(monitor.requests) == 1
    log = (airflow_home / f"dags-test-{monitor.port}.log").read_text()
    assert "answered 403, not retried" in log
    assert json.dumps({"error": "forbidden", "detail": "wrong token"}) in log

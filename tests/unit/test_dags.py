"""DAG integrity: every DAG imports, has no cycle, calls services only over HTTP, with retries and timeouts.

Airflow is not importable in the workspace's venv, so orchestration/checks/dag_integrity.py gathers the facts
inside Airflow's own venv (a real DagBag parse, as the dag-processor does) and these tests assert on them.
"""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow import AIRFLOW_BIN, ROOT, airflow_env, require_airflow

DAGS = ROOT / "orchestration" / "dags"
EXPECTED = {"fraud_training_pipeline", "fraud_retrain_on_alert", "fraud_monitoring_report"}
HTTP_CLASSES = {
    "airflow.providers.http.operators.http.HttpOperator",
    "airflow.providers.http.sensors.http.HttpSensor",
}
CONNECTIONS = {"fraudops_ingest", "fraudops_trainer", "fraudops_registry_gateway", "fraudops_monitor"}
LIFECYCLE = [
    "create_dataset",
    "wait_for_dataset",
    "start_training",
    "wait_for_training",
    "validate_version",
    "promote_challenger",
    "promote_champion",
]


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_airflow()
    home = tmp_path_factory.mktemp("airflow-home")
    out = home / "facts.json"
    result = subprocess.run(
        [str(AIRFLOW_BIN / "python"), str(ROOT / "orchestration" / "checks" / "dag_integrity.py"), str(DAGS), str(out)],
        env=airflow_env(home, {}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def tasks(facts: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(dag_id, task) for dag_id, dag in facts["dags"].items() for task in dag["tasks"]]


def test_every_dag_imports_without_error_and_none_is_missing(facts: dict[str, Any]) -> None:
    assert facts["import_errors"] == {}
    assert set(facts["dags"]) == EXPECTED


def test_no_dag_has_a_cycle(facts: dict[str, Any]) -> None:
    for dag_id, dag in facts["dags"].items():
        assert dag["cycle"] is None, dag_id


def test_tasks_are_http_operators_and_sensors_on_the_services_connections(facts: dict[str, Any]) -> None:
    for dag_id, task in tasks(facts):
        assert task["class"] in HTTP_CLASSES, f"{dag_id}.{task['task_id']} is a {task['class']}"
        assert task["http_conn_id"] in CONNECTIONS, f"{dag_id}.{task['task_id']}"


def test_every_task_retries_with_backoff_and_has_timeouts(facts: dict[str, Any]) -> None:
    for dag_id, task in tasks(facts):
        name = f"{dag_id}.{task['task_id']}"
        assert task["retries"] >= 3, name
        assert task["retry_exponential_backoff"] >= 2, name
        assert task["max_retry_delay_s"], name
        assert 0 < (task["execution_timeout_s"] or 0) <= 3 * 3600, name
        connect, read = task["request_timeout"]
        assert 0 < connect <= 10, name
        assert 0 < read <= 300, name
        assert task["on_failure_callbacks"] >= 1, name
        if task["class"].endswith("HttpSensor"):
            assert 0 < task["sensor_timeout_s"] < task["execution_timeout_s"], name


def test_responses_are_checked_by_the_shared_rules_not_by_the_hook(facts: dict[str, Any]) -> None:
    """The hook's own check would raise one exception for every error; the shared check tells 4xx from 5xx."""
    for dag_id, task in tasks(facts):
        name = f"{dag_id}.{task['task_id']}"
        assert task["check_response"] is False, name
        assert task["has_response_check"] or task["has_response_filter"], name


def test_4xx_fails_at_once_and_5xx_is_retried(facts: dict[str, Any]) -> None:
    rules = facts["status_rules"]
    assert rules["200"] == rules["201"] == "pass"
    assert {rules[code] for code in ("400", "401", "404", "409", "422")} == {"fail-without-retry"}
    assert {rules[code] for code in ("500", "502", "503")} == {"retry"}


def test_sensors_wait_pass_or_stop_with_a_clear_failure(facts: dict[str, Any]) -> None:
    rules = facts["status_rules"]
    assert rules["dataset_validating"] == "keep-waiting"
    assert rules["dataset_ready"] == "pass"
    assert rules["dataset_too_much_quarantine"] == "fail-without-retry"
    assert rules["dataset_failed"] == "fail-without-retry"
    assert rules["dataset_503"] == "retry"
    assert rules["training_running"] == "keep-waiting"
    assert rules["training_succeeded"] == "pass"
    assert rules["training_failed"] == "fail-without-retry"
    assert rules["gate_passed"] == "pass"
    assert rules["gate_failed"] == "fail-without-retry"


def test_write_calls_take_their_token_from_the_connection(facts: dict[str, Any]) -> None:
    for dag_id, task in tasks(facts):
        if task["method"] == "GET":
            assert "Authorization" not in (task["headers"] or {}), f"{dag_id}.{task['task_id']}"
            continue
        expected = "Bearer {{ conn." + task["http_conn_id"] + ".password }}"
        assert task["headers"]["Authorization"] == expected, f"{dag_id}.{task['task_id']}"


def test_dag_files_import_only_airflow_the_standard_library_and_their_helper(facts: dict[str, Any]) -> None:
    allowed_stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for module in [*facts["helper_imports"], *(i for dag in facts["dags"].values() for i in dag["imports"])]:
        top = module.split(".")[0]
        assert top in allowed_stdlib or top == "airflow" or module == "service_calls", module
    assert facts["dag_files"] == sorted(["service_calls.py", *(f"{dag_id}.py" for dag_id in EXPECTED)])


def test_no_secret_or_address_is_written_in_the_dag_files() -> None:
    for path in DAGS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
                assert "127.0.0.1" not in value, f"{path.name}: {value!r}"
                assert "localhost" not in value, f"{path.name}: {value!r}"
                if "Bearer" in value:
                    assert value.startswith("Bearer {{ conn."), f"{path.name}: {value!r}"


def test_lifecycle_order_and_policy(facts: dict[str, Any]) -> None:
    for dag_id in ("fraud_training_pipeline", "fraud_retrain_on_alert"):
        by_id = {task["task_id"]: task for task in facts["dags"][dag_id]["tasks"]}
        for upstream, downstream in itertools.pairwise(LIFECYCLE):
            assert upstream in by_id[downstream]["upstream"], f"{dag_id}: {upstream} -> {downstream}"
        # Choosing an existing dataset skips its creation; waiting for it must still run.
        assert by_id["wait_for_dataset"]["trigger_rule"] == "none_failed"
        assert {"dataset_id", "auto_promote", "max_quarantined_share"} <= set(facts["dags"][dag_id]["params"])
    retrain = {task["task_id"]: task for task in facts["dags"]["fraud_retrain_on_alert"]["tasks"]}
    assert retrain["record_success"]["trigger_rule"] == "none_failed"
    assert retrain["record_failure"]["trigger_rule"] == "one_failed"
    assert set(LIFECYCLE) <= set(retrain["record_failure"]["upstream"])
    assert {"action_id", "reason", "alerts", "window"} <= set(facts["dags"]["fraud_retrain_on_alert"]["params"])
    # The monitor's trigger must not wait for someone to unpause the DAG; schedules are switched on by people.
    assert facts["dags"]["fraud_retrain_on_alert"]["is_paused_upon_creation"] is False
    assert facts["dags"]["fraud_retrain_on_alert"]["schedule"] == "NullTimetable"
    assert facts["dags"]["fraud_training_pipeline"]["is_paused_upon_creation"] is True
    assert facts["dags"]["fraud_monitoring_report"]["schedule"] == "0 0 * * *"
    assert facts["dags"]["fraud_training_pipeline"]["schedule"] == "0 3 * * 0"
    # A retraining learns from the real stream; the scheduled pipeline still asks the simulator.
    assert retrain["create_dataset"]["endpoint"] == "/v1/datasets/from-stream"
    assert retrain["create_dataset"]["headers"]["Idempotency-Key"] == "{{ dag.dag_id }}.{{ run_id }}"
    pipeline = {task["task_id"]: task for task in facts["dags"]["fraud_training_pipeline"]["tasks"]}
    assert pipeline["create_dataset"]["endpoint"] == "/v1/datasets/simulated"


def test_the_airflow_lock_pins_every_package_without_urls() -> None:
    lock = (ROOT / "infrastructure" / "airflow" / "requirements.lock").read_text(encoding="utf-8")
    requirements = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    assert requirements, "empty lock"
    for line in requirements:
        assert "==" in line.split(";")[0], line
    assert "://" not in lock
    assert any(line.startswith("apache-airflow==3.") for line in requirements)
    assert any(line.startswith("apache-airflow-providers-http==") for line in requirements)


def test_request_bodies_are_built_from_the_run_params(tmp_path: Path) -> None:
    """The body builders run in Airflow's venv: a window end sets the dataset's period, none means the run time."""
    script = """
import json, sys
from datetime import datetime, UTC
sys.path.insert(0, sys.argv[1])
import service_calls as c
params = {"simulation": {"name": "retrain", "customers": 100, "terminals": 200, "days": 30},
          "window": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-08T12:00:00Z"}}
print(json.dumps({
    "window": json.loads(c.recent_simulation(params, datetime(2026, 11, 28, tzinfo=UTC))),
    "no_window": json.loads(c.recent_simulation({**params, "window": None}, datetime(2026, 11, 28, 5, tzinfo=UTC))),
    "training": json.loads(c.training_request("ds-0", {"training": {"protocol": {"train_days": 14}}})),
    "outcome": json.loads(c.outcome_request("failed", "boom", "run-1", None)),
    "stream": json.loads(c.stream_window({**params, "window_days": 28}, datetime(2026, 11, 28, tzinfo=UTC))),
    "stream_no_window": json.loads(
        c.stream_window({"window": None, "window_days": 28}, datetime(2026, 11, 28, 5, tzinfo=UTC))
    ),
    "stream_end_only": json.loads(
        c.stream_window({"window": {"end": "2026-03-08T12:00:00"}, "window_days": 7, "dataset_name": "r1"},
                        datetime(2026, 11, 28, tzinfo=UTC))
    ),
}))
"""
    result = subprocess.run(
        [str(AIRFLOW_BIN / "python"), "-c", script, str(DAGS)],
        env=airflow_env(tmp_path, {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    built = json.loads(result.stdout.strip().splitlines()[-1])
    assert built["window"]["start_date"] == "2026-02-06"
    assert built["window"]["days"] == 30
    assert built["no_window"]["start_date"] == "2026-10-29"
    assert built["window"]["seed"] != built["no_window"]["seed"]
    assert built["training"] == {"protocol": {"train_days": 14}, "dataset_id": "ds-0"}
    assert built["outcome"] == {"outcome": "failed", "detail": "boom", "dag_run_id": "run-1", "model_version": None}
    assert built["stream"] == {
        "start": "2026-03-01T00:00:00+00:00",
        "end": "2026-03-08T12:00:00+00:00",
        "name": "stream",
    }
    assert built["stream_no_window"] == {
        "start": "2026-10-31T05:00:00+00:00",
        "end": "2026-11-28T05:00:00+00:00",
        "name": "stream",
    }
    assert built["stream_end_only"] == {
        "start": "2026-03-01T12:00:00+00:00",
        "end": "2026-03-08T12:00:00+00:00",
        "name": "r1",
    }

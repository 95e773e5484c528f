"""Facts about the DAGs, gathered inside Airflow's own virtualenv and written as one JSON file.

tests/unit/test_dags.py runs this with `.tools/airflow/bin/python` (Airflow is not importable in the
workspace's venv) and asserts on the facts;  It parses the DAG folder the
way the dag-processor does (the folder is the bundle, so the DAGs' helper module imports), checks each DAG
for cycles, describes every task, lists the modules each DAG file imports, and feeds the shared response
checks made-up responses to record which status codes are retried.
"""

from __future__ import annotations

import ast
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any


def _imports(path: Path) -> list[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return sorted(names)


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else None


def _task(task: Any) -> dict[str, Any]:
    from airflow.providers.http.operators.http import HttpOperator
    from airflow.providers.http.sensors.http import HttpSensor

    return {
        "task_id": task.task_id,
        "class": f"{type(task).__module__}.{type(task).__name__}",
        "is_http_operator": isinstance(task, HttpOperator),
        "is_http_sensor": isinstance(task, HttpSensor),
        "http_conn_id": getattr(task, "http_conn_id", None),
        "method": getattr(task, "method", None),
        "endpoint": getattr(task, "endpoint", None),
        "headers": getattr(task, "headers", None),
        "request_timeout": (getattr(task, "extra_options", None) or {}).get("timeout"),
        "check_response": (getattr(task, "extra_options", None) or {}).get("check_response", True),
        "has_response_check": getattr(task, "response_check", None) is not None,
        "has_response_filter": getattr(task, "response_filter", None) is not None,
        "retries": task.retries,
        "retry_exponential_backoff": task.retry_exponential_backoff,
        "max_retry_delay_s": _seconds(task.max_retry_delay),
        "execution_timeout_s": _seconds(task.execution_timeout),
        "sensor_timeout_s": getattr(task, "timeout", None) if isinstance(task, HttpSensor) else None,
        "on_failure_callbacks": len(task.on_failure_callback or ()),
        "trigger_rule": str(task.trigger_rule.value if hasattr(task.trigger_rule, "value") else task.trigger_rule),
        "upstream": sorted(task.upstream_task_ids),
    }


class _Request:
    method = "POST"


class _Response:
    """Just enough of requests.Response for the shared checks."""

    def __init__(self, status: int, payload: Any) -> None:
        self.status_code = status
        self.url = "http://127.0.0.1:1/v1/probe"
        self.request = _Request()
        self._payload = payload
        self.text = json.dumps(payload)

    def json(self) -> Any:
        return self._payload


def _verdict(check: Any, status: int, payload: Any = None, **kwargs: Any) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    try:
        outcome = check(_Response(status, payload if payload is not None else {}), **kwargs)
    except AirflowFailException:
        return "fail-without-retry"
    except Exception:
        return "retry"
    done = getattr(outcome, "is_done", outcome)
    return "pass" if done else "keep-waiting"


def _status_rules() -> dict[str, str]:
    import service_calls as calls

    params = {"max_quarantined_share": 0.01}
    ready = {"dataset_id": "ds-0", "status": "ready", "rows_valid": 990, "rows_quarantined": 10}
    return {
        "200": _verdict(calls.accept_status, 200),
        "201": _verdict(calls.accept_status, 201),
        "400": _verdict(calls.accept_status, 400),
        "401": _verdict(calls.accept_status, 401),
        "404": _verdict(calls.accept_status, 404),
        "409": _verdict(calls.accept_status, 409),
        "422": _verdict(calls.accept_status, 422),
        "500": _verdict(calls.accept_status, 500),
        "502": _verdict(calls.accept_status, 502),
        "503": _verdict(calls.accept_status, 503),
        "dataset_validating": _verdict(calls.dataset_ready, 200, {"status": "validating"}, params=params),
        "dataset_ready": _verdict(calls.dataset_ready, 200, ready, params=params),
        "dataset_too_much_quarantine": _verdict(
            calls.dataset_ready, 200, {**ready, "rows_quarantined": 11}, params=params
        ),
        "dataset_failed": _verdict(calls.dataset_ready, 200, {"status": "failed", "error": "bad"}, params=params),
        "dataset_503": _verdict(calls.dataset_ready, 503, params=params),
        "training_running": _verdict(calls.training_finished, 200, {"status": "running"}),
        "training_succeeded": _verdict(
            calls.training_finished, 200, {"status": "succeeded", "result": {"model_version": "3"}}
        ),
        "training_failed": _verdict(calls.training_finished, 200, {"status": "failed", "error": "oom"}),
        "gate_passed": _verdict(calls.gate_passed, 200, {"validation_status": "passed", "version": "3"}),
        "gate_failed": _verdict(calls.gate_passed, 200, {"validation_status": "failed", "reasons": ["ap"]}),
    }


def main(folder: str, out: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dags_folder = Path(folder).resolve()
    # As the dag-processor does for a bundle: its folder is importable, so the helper module is found.
    sys.path.insert(0, str(dags_folder))
    bag = DagBag(dag_folder=dags_folder, bundle_path=dags_folder, bundle_name="dags-folder")
    report: dict[str, Any] = {"import_errors": {str(k): v for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in sorted(bag.dags.items()):
        try:
            dag.check_cycle()
            cycle = None
        except Exception as exc:
            cycle = str(exc)
        report["dags"][dag_id] = {
            "file": Path(dag.fileloc).name,
            "imports": _imports(Path(dag.fileloc)),
            "schedule": getattr(dag.timetable, "expression", None) or type(dag.timetable).__name__,
            "is_paused_upon_creation": dag.is_paused_upon_creation,
            "max_active_runs": dag.max_active_runs,
            "params": sorted(dag.params.keys()),
            "cycle": cycle,
            "tasks": [_task(task) for task in dag.tasks],
        }
    report["helper_imports"] = _imports(dags_folder / "service_calls.py")
    report["dag_files"] = sorted(p.name for p in dags_folder.glob("*.py"))
    report["status_rules"] = _status_rules()
    # A file, not stdout: Airflow's own logging writes to stdout.
    Path(out).write_text(json.dumps(report, default=str, indent=1), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: dag_integrity.py DAGS_FOLDER OUT_JSON")
    main(sys.argv[1], sys.argv[2])

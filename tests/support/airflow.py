"""Airflow for tests: its own virtualenv (`make airflow-setup`), run through subprocesses only.

Airflow cannot be imported in the workspace's venv (its pins differ), so everything here runs
`.tools/airflow/bin/…` with an environment that points Airflow at a throwaway home, the repository's DAGs,
and the services of a running stack through `AIRFLOW_CONN_FRAUDOPS_*` connections.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fraudops.paths import repo_root
from fraudops.stack.airflow import CONNECTED_SERVICES, connection_id, dags_folder

ROOT = repo_root() or Path.cwd()
AIRFLOW_BIN = ROOT / ".tools" / "airflow" / "bin"


def require_airflow() -> Path:
    """Airflow's executable; `make test` creates the venv, a bare pytest run is told how."""
    airflow = AIRFLOW_BIN / "airflow"
    if not airflow.exists():
        pytest.fail("Airflow's virtualenv is missing: run `make airflow-setup` (make test does it itself)")
    return airflow


def connection(host: str, port: int, token: str | None) -> str:
    """An AIRFLOW_CONN_* value (JSON form): an HTTP service and its token as the password."""
    value: dict[str, Any] = {"conn_type": "http", "host": host, "port": port, "schema": "http"}
    if token is not None:
        value["password"] = token
    return json.dumps(value)


def airflow_env(home: Path, connections: dict[str, str], retry_delay_s: int = 1) -> dict[str, str]:
    """A minimal, lean Airflow configuration for `airflow dags test` in a throwaway home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FRAUDOPS_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(retry_delay_s),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    env.update(connections)
    return env


def service_connections(
    stack_settings: Any, token_of: Any, monitor_url: tuple[str, int] | None = None
) -> dict[str, str]:
    """AIRFLOW_CONN_FRAUDOPS_* for the stack's services; the monitor may be a recording server instead."""
    conns = {}
    for service in CONNECTED_SERVICES:
        host, port = stack_settings.host, stack_settings.service_port(service)
        if service == "monitor" and monitor_url is not None:
            host, port = monitor_url
        conns["AIRFLOW_CONN_" + connection_id(service).upper()] = connection(host, port, token_of(service))
    return conns


def run_airflow(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(require_airflow()), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def migrate(env: dict[str, str]) -> None:
    result = run_airflow(env, "db", "migrate", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@dataclass(frozen=True)
class TaskOutcome:
    state: str | None
    try_number: int


def run_outcome(home: Path, dag_id: str) -> tuple[str, dict[str, TaskOutcome]]:
    """The newest run of a DAG in the metadata DB (SQLite in `home`): its state and each task's state and try."""
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, state = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchall()
    return str(state), {task: TaskOutcome(task_state, int(tries)) for task, task_state, tries in rows}


def xcom_value(home: Path, dag_id: str, task_id: str) -> Any:
    """A task's return value (XCom) in the newest run, as the JSON Airflow stored."""
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute(
            "SELECT x.value FROM xcom x JOIN dag_run r ON r.id = x.dag_run_id WHERE x.dag_id = ? AND x.task_id = ? "
            "AND x.key = 'return_value' ORDER BY r.id DESC LIMIT 1",
            (dag_id, task_id),
        ).fetchone()
    if row is None:
        return None
    value = row[0]
    return json.loads(value) if isinstance(value, (str, bytes)) else value


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class RecordingServer:
    """A stand-in HTTP service on 127.0.0.1 that answers from a script and records every request."""

    answers: list[tuple[int, Any]]
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        self.requests.append(Recorded(method, path, headers, parsed))
        # The last answer repeats once the script runs out.
        status, payload = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(payload):
            payload = payload(path, parsed)
        return status, payload


@contextmanager
def recording_server(answers: list[tuple[int, Any]]) -> Iterator[RecordingServer]:
    recorder = RecordingServer(list(answers))

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            status, payload = recorder.answer(self.command, self.path, dict(self.headers), raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


def wait_for(check: Any, timeout_s: float, interval_s: float = 1.0) -> Any:
    """Poll `check()` until it returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"not done after {timeout_s:.0f} s; last: {last!r}")

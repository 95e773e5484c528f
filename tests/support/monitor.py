"""Monitor processes on a test's own topics, and a stand-in for Airflow's REST API that records its calls."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.scorer import ScorerRun
from tests.support.service_process import ServiceProcess


class MonitorProcess(ServiceProcess):
    """`python -m fraudops_monitor` reading a ScorerRun's topics, evaluating every `every` transactions."""

    def __init__(self, run: ScorerRun, workdir: Path, **settings: str) -> None:
        topics = run.topics
        super().__init__(
            "monitor",
            run.stack,
            workdir,
            {
                "TOPICS__TRANSACTIONS": topics.name("transactions"),
                "TOPICS__SCORES": topics.name("scores"),
                "TOPICS__LABELS": topics.name("labels"),
                "MODEL_NAME": run.model_name,
                "DATA_DIR": str(workdir / f"monitor-{topics.prefix}"),
                "GATEWAY_URL": run.stack.url("registry-gateway"),
                "EVALUATION_INTERVAL_S": "3600",
                **settings,
            },
        )


@dataclass
class AirflowApiRecorder:
    """Airflow's REST API as the monitor uses it (token, unpause, trigger), on 127.0.0.1; keeps every call."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def triggers(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.calls if method == "POST" and path.endswith("/dagRuns")]


@contextmanager
def airflow_api_recorder() -> Iterator[AirflowApiRecorder]:
    recorder = AirflowApiRecorder()
    lock = threading.Lock()
    run_ids: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            with lock:
                recorder.calls.append((method, self.path, body))
            if self.path == "/auth/token":
                if body.get("password") != recorder.password:
                    self._answer(401, {"detail": "bad credentials"})
                else:
                    self._answer(201, {"access_token": "token-" + recorder.password})
                return
            if self.headers.get("Authorization") != "Bearer token-" + recorder.password:
                self._answer(401, {"detail": "not authenticated"})
            elif method == "PATCH":
                self._answer(200, {"is_paused": False})
            elif body.get("dag_run_id") in run_ids:
                self._answer(409, {"detail": "run exists"})
            else:
                run_ids.add(body["dag_run_id"])
                self._answer(200, {"dag_run_id": body["dag_run_id"], "state": "queued"})

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what was recorded."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="airflow-recorder", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

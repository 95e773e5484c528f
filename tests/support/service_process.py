"""A service started by a test as its own process (`python -m fraudops_<service>`), wired to the stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fraudops.stack.components import env_prefix, operator_token
from tests.support.ports import free_port
from tests.support.stack import RunningStack

# Settings refuse unknown variables, and ingest has no MLflow to find.
SERVICES_WITHOUT_MLFLOW = frozenset({"ingest"})


class ServiceProcess:
    """One service process on a free port, with the stack's secrets and the test's own settings."""

    def __init__(self, service: str, stack: RunningStack, workdir: Path, settings: dict[str, str]) -> None:
        self.service = service
        self.stack = stack
        self.workdir = workdir
        self.port = free_port()
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def module(self) -> str:
        return "fraudops_" + self.service.replace("-", "_")

    def environment(self) -> dict[str, str]:
        prefix = env_prefix(self.service)
        # Not MLflow's own variables either: mlflow.set_tracking_uri() in the test process exports one, and a
        # service must find MLflow through its settings alone, as it does when deployed.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUDOPS_", "MLFLOW_"))}
        env.update(
            {
                "FRAUDOPS_SECRETS_DIR": str(self.stack.settings.secrets_dir),
                prefix + "HOST": "127.0.0.1",
                prefix + "PORT": str(self.port),
                prefix + "KAFKA__BOOTSTRAP_SERVERS": self.stack.settings.kafka_bootstrap,
                **{prefix + key: value for key, value in self.settings.items()},
            }
        )
        if self.service not in SERVICES_WITHOUT_MLFLOW:
            env.setdefault(prefix + "MLFLOW_TRACKING_URI", self.stack.settings.mlflow_url)
        return env

    def start(self, wait: bool = True) -> None:
        self.starts += 1
        log = (self.workdir / f"{self.service}-{self.port}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=self.environment(), stdout=log, stderr=subprocess.STDOUT
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.service} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise AssertionError(f"{self.service} not ready after {timeout_s} s: {last}; {self.log_tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        logs = sorted(self.workdir.glob(f"{self.service}-{self.port}-*.log"))
        if not logs:
            return ""
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def client(self) -> httpx.Client:
        token = operator_token(self.stack.settings, self.service)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of a metric's samples whose label set contains `labels` (e.g. 'decision="DECLINE"')."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {") and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

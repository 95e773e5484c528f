"""The local stack as tests use it: started by the real `fraudops up` on free ports in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from fraudops.paths import repo_root
from fraudops.stack.components import SERVICE_DEPENDENCIES, operator_token
from fraudops.stack.config import StackSettings
from fraudops.stack.stack import Stack
from tests.support.ports import free_port

FRAUDOPS = str(Path(sys.executable).with_name("fraudops"))


def stack_environment(state_dir: Path, mlflow_backend: str | None) -> dict[str, str]:
    # MLFLOW_TRACKING_URI too: mlflow.set_tracking_uri() in the test process exports it, and a service that
    # inherited it would find MLflow even where the stack forgot to tell it where MLflow is.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUDOPS_", "MLFLOW_"))}
    root = repo_root()
    assert root is not None
    env.update(
        {
            "FRAUDOPS_STACK_STATE_DIR": str(state_dir),
            "FRAUDOPS_STACK_TOOLS_DIR": str(root / ".tools"),
            "FRAUDOPS_STACK_KAFKA_PORT": str(free_port()),
            "FRAUDOPS_STACK_KAFKA_CONTROLLER_PORT": str(free_port()),
            "FRAUDOPS_STACK_MLFLOW_PORT": str(free_port()),
            "FRAUDOPS_STACK_START_TIMEOUT_S": "180",
            # Small enough that the oversize-upload test stays cheap.
            "FRAUDOPS_INGEST_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
        }
    )
    for service in SERVICE_DEPENDENCIES:
        env[f"FRAUDOPS_STACK_{service.replace('-', '_').upper()}_PORT"] = str(free_port())
    if mlflow_backend:
        env["FRAUDOPS_STACK_MLFLOW_BACKEND_STORE_URI"] = mlflow_backend
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FRAUDOPS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def started_stack(state_dir: Path, mlflow_backend: str, gateway_database: str) -> Iterator[RunningStack]:
    """`fraudops up` on free ports, MLflow and the registry gateway on Postgres (as in compose); `fraudops down`
    afterwards, whatever happened."""
    env = stack_environment(state_dir, mlflow_backend)
    env["FRAUDOPS_REGISTRY_GATEWAY_DATABASE_URL"] = gateway_database
    try:
        result = run_cli(env, "up")
        assert result.returncode == 0, f"fraudops up failed:\n{result.stdout}\n{result.stderr}"
        yield RunningStack(env)
    finally:
        run_cli(env, "down")


@dataclass
class RunningStack:
    """Handles on a stack some test started: its settings, the CLI environment and per-service tokens."""

    env: dict[str, str]

    @property
    def settings(self) -> StackSettings:
        keys = {k[len("FRAUDOPS_STACK_") :].lower(): v for k, v in self.env.items() if k.startswith("FRAUDOPS_STACK_")}
        return StackSettings.model_validate(keys)

    @property
    def stack(self) -> Stack:
        return Stack(self.settings)

    def url(self, component: str) -> str:
        return self.stack.component(component).url

    def token(self, service: str) -> str:
        return operator_token(self.settings, service)

    def client(self, service: str, authenticated: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(service)}"} if authenticated else {}
        return httpx.Client(base_url=self.url(service), headers=headers, timeout=30)

"""Each part of the local stack: how it starts, how it is known to be ready, where it answers."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fraudops.health import KafkaProbe
from fraudops.stack.config import StackSettings
from fraudops.stack.kafka_runtime import KafkaRuntime
from fraudops.stack.process import ManagedProcess, StackError, ensure_port_free, tail


def run_check(check: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run an async check from sync code, also when the caller already runs an event loop (async tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(check())
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, check()).result()


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    marker: str


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    url: str
    pid: int | None
    healthy: bool
    detail: str


class Component(ABC):
    """A process of the stack. Subclasses say how to launch it and how to tell it is ready."""

    name: str

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.process = ManagedProcess(self.name, settings.run_dir, settings.log_dir)

    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def ports(self) -> list[tuple[int, str]]:
        """(port, setting that moves it) pairs this component listens on."""

    @abstractmethod
    def launch(self) -> Launch: ...

    @abstractmethod
    async def check(self) -> None:
        """Return when ready; raise with the reason otherwise."""

    def prepare(self) -> None:  # noqa: B027 - optional hook, most components need no set-up
        """One-time set-up before the first start (directories, formats, downloads)."""

    def start(self) -> str:
        outcome = self.spawn()
        self.wait_ready()
        return outcome

    def spawn(self) -> str:
        """Start the process without waiting for it to be ready (a running one is reused)."""
        if self.process.running():
            return "already running"
        for port, setting in self.ports():
            ensure_port_free(self.settings.host, port, self.name, setting)
        self.prepare()
        launch = self.launch()
        self.process.start(launch.argv, launch.env, self.settings.state_dir, launch.marker)
        return "started"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        last_error = "not checked yet"
        while time.monotonic() < deadline:
            if self.process.exited():
                raise StackError(
                    f"{self.name} exited during start-up; last lines of {self.process.log_path}:\n"
                    + tail(self.process.log_path)
                )
            try:
                run_check(self.check)
                return
            except Exception as exc:
                last_error = str(exc) or exc.__class__.__name__
            time.sleep(0.5)
        raise StackError(
            f"{self.name} not ready after {self.settings.start_timeout_s:.0f} s ({last_error}); "
            f"see {self.process.log_path}"
        )

    def stop(self) -> bool:
        return self.process.stop()

    def status(self) -> ComponentStatus:
        pid = self.process.pid()
        if pid is None:
            return ComponentStatus(self.name, self.url, None, False, "not running")
        try:
            run_check(self.check)
        except Exception as exc:
            return ComponentStatus(self.name, self.url, pid, False, str(exc) or exc.__class__.__name__)
        return ComponentStatus(self.name, self.url, pid, True, "ready")


class KafkaBroker(Component):
    name = "kafka"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.runtime = KafkaRuntime(settings.tools_dir / "kafka")
        self.home = settings.state_dir / "kafka"

    @property
    def url(self) -> str:
        return f"kafka://{self.settings.kafka_bootstrap}"

    def ports(self) -> list[tuple[int, str]]:
        return [
            (self.settings.kafka_port, "FRAUDOPS_STACK_KAFKA_PORT"),
            (self.settings.kafka_controller_port, "FRAUDOPS_STACK_KAFKA_CONTROLLER_PORT"),
        ]

    def prepare(self) -> None:
        self.runtime.ensure_jars()
        self.runtime.write_config(
            self.home, self.settings.host, self.settings.kafka_port, self.settings.kafka_controller_port
        )
        self.runtime.ensure_formatted(self.home)

    def launch(self) -> Launch:
        return Launch(
            argv=self.runtime.broker_command(self.home, self.settings.kafka_heap),
            env=dict(os.environ),
            marker=str(self.home / "server.properties"),
        )

    async def check(self) -> None:
        await KafkaProbe(self.settings.kafka_bootstrap).check()


class MlflowServer(Component):
    name = "mlflow"

    @property
    def url(self) -> str:
        return self.settings.mlflow_url

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.mlflow_port, "FRAUDOPS_STACK_MLFLOW_PORT")]

    def launch(self) -> Launch:
        home = self.settings.state_dir / "mlflow"
        (home / "artifacts").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        backend = self.settings.mlflow_backend_store_uri
        # Passed through the environment, not argv: a Postgres URI carries a password that `ps` would show.
        env["MLFLOW_BACKEND_STORE_URI"] = backend.get_secret_value() if backend else f"sqlite:///{home / 'mlflow.db'}"
        # No job runner (a dozen extra processes), and no telemetry calls from a machine that may be offline.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env["DO_NOT_TRACK"] = "true"
        mlflow = Path(sys.executable).with_name("mlflow")
        argv = [
            str(mlflow), "server",
            "--host", self.settings.host,
            "--port", str(self.settings.mlflow_port),
            "--workers", "1",
            "--serve-artifacts",
            "--artifacts-destination", str(home / "artifacts"),
        ]  # fmt: skip
        return Launch(argv=argv, env=env, marker=f"--port {self.settings.mlflow_port}")

    async def check(self) -> None:
        async with httpx.AsyncClient(timeout=3.0) as client:
            response = await client.get(f"{self.url}/health")
        if response.status_code != 200:
            raise ConnectionError(f"MLflow /health answered {response.status_code}")


# Which stack settings each service needs; services refuse unknown settings, so this stays exact.
SERVICE_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "ingest": ("kafka", "database", "datasets"),
    "trainer": ("mlflow", "database", "ingest"),
    "scorer": ("kafka", "mlflow"),
    "monitor": ("kafka", "mlflow", "gateway", "data"),
    "registry-gateway": ("kafka", "mlflow", "database"),
}


def env_prefix(service: str) -> str:
    return "FRAUDOPS_" + service.replace("-", "_").upper() + "_"


def token_file(settings: StackSettings, service: str) -> Path:
    """The secret file a service reads its token table from (pydantic-settings secrets_dir naming)."""
    return settings.secrets_dir / (env_prefix(service) + "TOKENS").lower()


def ensure_service_tokens(settings: StackSettings) -> None:
    """Give each service its own operator token on first start; tokens never leave the state dir."""
    settings.secrets_dir.mkdir(parents=True, exist_ok=True)
    settings.secrets_dir.chmod(0o700)
    for service in SERVICE_DEPENDENCIES:
        path = token_file(settings, service)
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(json.dumps({"operator": secrets.token_urlsafe(32)}))


def operator_token(settings: StackSettings, service: str) -> str:
    table: dict[str, str] = json.loads(token_file(settings, service).read_text())
    return table["operator"]


class ServiceProcess(Component):
    def __init__(self, settings: StackSettings, service: str) -> None:
        self.name = service
        super().__init__(settings)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.service_port(self.name)}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.service_port(self.name), f"FRAUDOPS_STACK_{self.name.replace('-', '_').upper()}_PORT")]

    def prepare(self) -> None:
        ensure_service_tokens(self.settings)
        if "gateway" in SERVICE_DEPENDENCIES[self.name]:
            # A service that acts on the registry calls the gateway with the gateway's operator token.
            path = self.settings.secrets_dir / (env_prefix(self.name) + "GATEWAY_TOKEN").lower()
            path.touch(mode=0o600)
            path.write_text(operator_token(self.settings, "registry-gateway"))

    def launch(self) -> Launch:
        prefix = env_prefix(self.name)
        # The caller's own FRAUDOPS_<SERVICE>_* settings pass through; the stack sets only the wiring below.
        env = dict(os.environ)
        env.update(
            {
                "FRAUDOPS_SECRETS_DIR": str(self.settings.secrets_dir),
                prefix + "HOST": self.settings.host,
                prefix + "PORT": str(self.settings.service_port(self.name)),
            }
        )
        needs = SERVICE_DEPENDENCIES[self.name]
        if "kafka" in needs:
            env[prefix + "KAFKA__BOOTSTRAP_SERVERS"] = self.settings.kafka_bootstrap
        if "database" in needs:
            home = self.settings.state_dir / self.name
            home.mkdir(parents=True, exist_ok=True)
            # A database the caller chose (Postgres in tests and compose) wins over the local SQLite file.
            env.setdefault(prefix + "DATABASE_URL", f"sqlite:///{home / 'service.db'}")
        if "datasets" in needs:
            env[prefix + "STAGING_DIR"] = str(self.settings.state_dir / self.name / "staging")
            env[prefix + "DATASETS_URI"] = (self.settings.state_dir / "datasets").as_uri()
        if "ingest" in needs:
            env[prefix + "INGEST_URL"] = f"http://{self.settings.host}:{self.settings.service_port('ingest')}"
        if "mlflow" in needs:
            env[prefix + "MLFLOW_TRACKING_URI"] = self.settings.mlflow_url
        if "gateway" in needs:
            env[prefix + "GATEWAY_URL"] = (
                f"http://{self.settings.host}:{self.settings.service_port('registry-gateway')}"
            )
        if "data" in needs:
            env[prefix + "DATA_DIR"] = str(self.settings.state_dir / self.name)
        module = "fraudops_" + self.name.replace("-", "_")
        return Launch(argv=[sys.executable, "-m", module], env=env, marker=f"-m {module}")

    async def check(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.url}/readyz")
        if response.status_code != 200:
            raise ConnectionError(f"/readyz answered {response.status_code}: {response.text[:300]}")

"""Airflow 3 in the local stack: `airflow standalone` from its own virtualenv, wired to the services.

Airflow's dependency pins clash with the services', so it runs from `.tools/airflow` (`make airflow-setup`,
pinned by infrastructure/airflow/requirements.lock) and nothing here imports it. The DAGs reach the
services through `AIRFLOW_CONN_FRAUDOPS_*` connections whose password is the service's operator token;
the REST API's users and passwords, the JWT secret and the Fernet key are made once in the state dir's
secrets folder and never printed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

import httpx

from fraudops.paths import repo_root
from fraudops.stack.components import Component, Launch, ensure_service_tokens, operator_token
from fraudops.stack.config import StackSettings
from fraudops.stack.process import StackError

SETUP_HINT = "run `make airflow-setup` (Airflow lives in its own virtualenv under .tools/airflow)"
# Services the DAGs call; each becomes the Airflow connection `fraudops_<service>`.
CONNECTED_SERVICES = ("ingest", "trainer", "registry-gateway", "monitor")
DAG_IDS = ("fraud_training_pipeline", "fraud_retrain_on_alert", "fraud_monitoring_report")
# The REST API's users (SimpleAuthManager roles): one for people, one the monitor triggers runs with.
USERS = {"admin": "admin", "monitor": "user"}


def airflow_executable(settings: StackSettings) -> Path:
    return settings.tools_dir / "airflow" / "bin" / "airflow"


def dags_folder() -> Path:
    root = repo_root()
    if root is None:
        raise StackError("Airflow runs the DAGs of a checkout of the repository (orchestration/dags not found)")
    return root / "orchestration" / "dags"


def connection_id(service: str) -> str:
    return "fraudops_" + service.replace("-", "_")


def connection_environment(settings: StackSettings) -> dict[str, str]:
    """AIRFLOW_CONN_* variables: one HTTP connection per service, its operator token as the password."""
    env = {}
    for service in CONNECTED_SERVICES:
        connection = {
            "conn_type": "http",
            "host": settings.host,
            "port": settings.service_port(service),
            "schema": "http",
            "password": operator_token(settings, service),
        }
        env["AIRFLOW_CONN_" + connection_id(service).upper()] = json.dumps(connection)
    return env


def _secret_file(settings: StackSettings, name: str, make: Any) -> str:
    """A secret made once and kept (0600) in the state dir, so restarts keep sessions and encrypted values."""
    path = settings.secrets_dir / name
    if not path.exists():
        settings.secrets_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


def passwords_file(settings: StackSettings) -> Path:
    return settings.secrets_dir / "airflow_passwords.json"


def ensure_airflow_secrets(settings: StackSettings) -> None:
    ensure_service_tokens(settings)
    _secret_file(settings, "airflow_jwt_secret", lambda: secrets.token_urlsafe(48))
    _secret_file(settings, "airflow_fernet_key", lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
    _secret_file(
        settings, passwords_file(settings).name, lambda: json.dumps({u: secrets.token_urlsafe(24) for u in USERS})
    )


def monitor_wiring(settings: StackSettings) -> dict[str, str]:
    """What the monitor needs to trigger retraining: its Airflow password as a secret file of the
    monitor's (FRAUDOPS_SECRETS_DIR), and Airflow's URL and user as settings, returned as environment."""
    ensure_airflow_secrets(settings)
    path = settings.secrets_dir / "fraudops_monitor_airflow_password"
    path.touch(mode=0o600)
    path.write_text(airflow_password(settings, "monitor"))
    return {
        "FRAUDOPS_MONITOR_AIRFLOW__URL": f"http://{settings.host}:{settings.airflow_port}",
        "FRAUDOPS_MONITOR_AIRFLOW__USERNAME": "monitor",
    }


def airflow_password(settings: StackSettings, user: str = "admin") -> str:
    """The local stack's password of an Airflow REST API user (admin or monitor)."""
    table: dict[str, str] = json.loads(passwords_file(settings).read_text())
    return table[user]


def database_url(settings: StackSettings, home: Path) -> str:
    """Airflow's metadata DB: Postgres through psycopg 3 when configured (Airflow derives its asyncpg URL
    from it), else SQLite in the state dir."""
    if settings.airflow_database_url is None:
        return f"sqlite:///{home / 'airflow.db'}"
    url = settings.airflow_database_url.get_secret_value()
    scheme, _, rest = url.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else url


def airflow_environment(settings: StackSettings, home: Path) -> dict[str, str]:
    """Airflow's whole configuration for the local stack, as AIRFLOW__* variables (no airflow.cfg edits)."""
    api = f"http://{settings.host}:{settings.airflow_port}"
    return {
        # In the environment, not argv: a Postgres URL carries a password that `ps` would show.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(settings, home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A 2-core machine shared with Kafka, MLflow and five services: few task processes at once.
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(settings.airflow_retry_delay_s),
        "AIRFLOW__CORE__FERNET_KEY": _secret_file(settings, "airflow_fernet_key", str),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
        # Tasks report to the API server; when its port moves, this must move with it.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__HOST": settings.host,
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret_file(settings, "airflow_jwt_secret", str),
        # New DAG files show up within 30 s instead of 5 minutes.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }


async def api_token(client: httpx.AsyncClient, settings: StackSettings, user: str = "admin") -> str:
    """A bearer token for Airflow's REST API (POST /auth/token)."""
    response = await client.post(
        f"http://{settings.host}:{settings.airflow_port}/auth/token",
        json={"username": user, "password": airflow_password(settings, user)},
    )
    if response.status_code not in (200, 201):
        raise ConnectionError(f"/auth/token answered {response.status_code}")
    token: str = response.json()["access_token"]
    return token


class AirflowStandalone(Component):
    """`airflow standalone`: API server, scheduler, dag-processor and triggerer, on SQLite in the state dir."""

    name = "airflow"

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.airflow_port}"

    @property
    def home(self) -> Path:
        return self.settings.state_dir / "airflow"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.airflow_port, "FRAUDOPS_STACK_AIRFLOW_PORT")]

    def prepare(self) -> None:
        if not airflow_executable(self.settings).exists():
            raise StackError(f"Airflow is not installed: {SETUP_HINT}")
        self.home.mkdir(parents=True, exist_ok=True)
        ensure_airflow_secrets(self.settings)

    def launch(self) -> Launch:
        # The caller's own AIRFLOW__* settings pass through; the stack sets only the wiring below.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDOPS_")}
        env.update(airflow_environment(self.settings, self.home))
        # `airflow standalone` starts its parts as `airflow …` subprocesses, found on PATH.
        env["PATH"] = f"{airflow_executable(self.settings).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(connection_environment(self.settings))
        return Launch(
            argv=[str(airflow_executable(self.settings)), "standalone"],
            env=env,
            # `airflow standalone` has no port on its command line; its home in the environment tells ours apart.
            marker="standalone",
        )

    async def check(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.url}/api/v2/monitor/health")
            if response.status_code != 200:
                raise ConnectionError(f"/api/v2/monitor/health answered {response.status_code}")
            health = response.json()
            for part in ("metadatabase", "scheduler", "dag_processor"):
                status = (health.get(part) or {}).get("status")
                if status != "healthy":
                    raise ConnectionError(f"Airflow's {part} is {status}")
            token = await api_token(client, self.settings)
            listed = await client.get(
                f"{self.url}/api/v2/dags",
                params={"dag_id_pattern": "fraud_"},
                headers={"Authorization": f"Bearer {token}"},
            )
        if listed.status_code != 200:
            raise ConnectionError(f"/api/v2/dags answered {listed.status_code}")
        known = {dag["dag_id"] for dag in listed.json()["dags"]}
        missing = sorted(set(DAG_IDS) - known)
        if missing:
            raise ConnectionError(f"DAGs not parsed yet: {', '.join(missing)}")

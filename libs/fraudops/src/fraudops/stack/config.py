"""Settings of the local stack (environment prefix FRAUDOPS_STACK_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraudops.paths import repo_root

SERVICE_NAMES = ("ingest", "trainer", "scorer", "monitor", "registry-gateway")


def _default_base() -> Path:
    return repo_root() or Path.cwd()


class StackSettings(BaseSettings):
    """Where the local stack keeps its files and which loopback ports it uses."""

    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_STACK_", extra="forbid")

    host: str = Field(default="127.0.0.1", pattern=r"^127\.\d+\.\d+\.\d+$")
    state_dir: Path = Field(default_factory=lambda: _default_base() / ".fraudops")
    # Downloaded tools (Kafka's jars) are shared by every state dir, so tests do not fetch them again.
    tools_dir: Path = Field(default_factory=lambda: _default_base() / ".tools")
    kafka_port: int = Field(default=9092, ge=1024, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1024, le=65535)
    kafka_heap: str = Field(default="512m", pattern=r"^\d+[mg]$")
    mlflow_port: int = Field(default=5000, ge=1024, le=65535)
    # None: SQLite in the state dir. A postgresql:// URI puts MLflow's backend store in Postgres.
    mlflow_backend_store_uri: SecretStr | None = None
    ingest_port: int = Field(default=8001, ge=1024, le=65535)
    trainer_port: int = Field(default=8002, ge=1024, le=65535)
    scorer_port: int = Field(default=8003, ge=1024, le=65535)
    monitor_port: int = Field(default=8004, ge=1024, le=65535)
    registry_gateway_port: int = Field(default=8005, ge=1024, le=65535)
    start_timeout_s: float = Field(default=120.0, gt=0)
    # Airflow 3 (`airflow standalone` from .tools/airflow) joins `fraudops up` with `--with-airflow`.
    with_airflow: bool = False
    airflow_port: int = Field(default=8080, ge=1024, le=65535)
    # Task processes at once: the machine is shared with Kafka, MLflow and the services.
    airflow_parallelism: int = Field(default=4, ge=1, le=64)
    # First delay before a failed task is retried (then doubled each try).
    airflow_retry_delay_s: int = Field(default=10, ge=1, le=3600)
    # None: SQLite in the state dir. A postgresql:// URI puts Airflow's metadata DB in Postgres: the tests
    # use it, having seen the API server stop answering for minutes on SQLite while a busy machine ran tasks.
    airflow_database_url: SecretStr | None = None
    # Prometheus and Alertmanager (Debian packages) join `fraudops up` only when asked (`--observability`
    # or this setting): fixed ports appearing because a package happens to be installed would clash on a
    # shared machine, and a missing package should be an error when they are wanted.
    observability: bool = False
    prometheus_port: int = Field(default=9090, ge=1024, le=65535)
    # Not Alertmanager's usual 9093: that is Kafka's controller port here.
    alertmanager_port: int = Field(default=9094, ge=1024, le=65535)
    # Scrape and rule evaluation interval; tests use 1-2 s.
    prometheus_interval_s: float = Field(default=15.0, gt=0)
    # Caps every alert rule's `for:` (tests and demos that cannot wait minutes); None keeps the rule files'.
    alert_for_max_s: float | None = Field(default=None, ge=0)
    alertmanager_group_wait_s: float = Field(default=30.0, ge=0)
    alertmanager_group_interval_s: float = Field(default=300.0, gt=0)

    def service_port(self, service: str) -> int:
        port: int = getattr(self, service.replace("-", "_") + "_port")
        return port

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

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

    host: str = Field(
        default="127.0.0.1", pattern=r"^127\.\d+\.\d+\.\d+$", description="Loopback address every part listens on."
    )
    state_dir: Path = Field(
        default_factory=lambda: _default_base() / ".fraudops",
        description="Data, logs, secrets and pid files of the stack; by default `.fraudops` in the checkout "
        "(or the working directory).",
    )
    # Shared by every state dir, so tests do not fetch the jars again.
    tools_dir: Path = Field(
        default_factory=lambda: _default_base() / ".tools",
        description="Downloaded tools (Kafka's jars, Airflow's virtualenv); by default `.tools` in the checkout "
        "(or the working directory).",
    )
    kafka_port: int = Field(default=9092, ge=1024, le=65535, description="Kafka's client port.")
    kafka_controller_port: int = Field(default=9093, ge=1024, le=65535, description="Kafka's KRaft controller port.")
    kafka_heap: str = Field(default="512m", pattern=r"^\d+[mg]$", description="Kafka's JVM heap size.")
    mlflow_port: int = Field(default=5000, ge=1024, le=65535, description="MLflow server's port.")
    mlflow_backend_store_uri: SecretStr | None = Field(
        default=None,
        description="A postgresql:// URI puts MLflow's backend store in Postgres; unset, SQLite in the state dir.",
    )
    ingest_port: int = Field(default=8001, ge=1024, le=65535, description="Ingest service's port.")
    trainer_port: int = Field(default=8002, ge=1024, le=65535, description="Trainer service's port.")
    scorer_port: int = Field(default=8003, ge=1024, le=65535, description="Scorer service's port.")
    monitor_port: int = Field(default=8004, ge=1024, le=65535, description="Monitor service's port.")
    registry_gateway_port: int = Field(default=8005, ge=1024, le=65535, description="Registry gateway's port.")
    start_timeout_s: float = Field(default=120.0, gt=0, description="How long each part may take to become ready.")
    with_airflow: bool = Field(
        default=False,
        description="Also run Airflow 3 (`airflow standalone` from .tools/airflow), as `fraudops up --with-airflow` does.",
    )
    airflow_port: int = Field(default=8080, ge=1024, le=65535, description="Airflow API server's port.")
    # The machine is shared with Kafka, MLflow and the services.
    airflow_parallelism: int = Field(default=4, ge=1, le=64, description="Airflow task processes at once.")
    airflow_retry_delay_s: int = Field(
        default=10, ge=1, le=3600, description="First delay before a failed task is retried (then doubled each try)."
    )
    # The tests use Postgres, having seen the API server stop answering for minutes on SQLite while a busy
    # machine ran tasks.
    airflow_database_url: SecretStr | None = Field(
        default=None,
        description="A postgresql:// URI puts Airflow's metadata DB in Postgres; unset, SQLite in the state dir.",
    )
    # Only when asked: fixed ports appearing because a package happens to be installed would clash on a
    # shared machine, and a missing package should be an error when they are wanted.
    observability: bool = Field(
        default=False,
        description="Also run Prometheus and Alertmanager (Debian packages), as `fraudops up --observability` does.",
    )
    prometheus_port: int = Field(default=9090, ge=1024, le=65535, description="Prometheus' port.")
    # Alertmanager's usual 9093 is Kafka's controller port here.
    alertmanager_port: int = Field(default=9094, ge=1024, le=65535, description="Alertmanager's port.")
    prometheus_interval_s: float = Field(
        default=15.0, gt=0, description="Prometheus' scrape and rule evaluation interval (tests use 1-2 s)."
    )
    alert_for_max_s: float | None = Field(
        default=None,
        ge=0,
        description="Caps every alert rule's `for:` (tests and demos that cannot wait minutes); unset keeps the rules'.",
    )
    alertmanager_group_wait_s: float = Field(
        default=30.0, ge=0, description="Alertmanager's wait before the first notification of a group."
    )
    alertmanager_group_interval_s: float = Field(
        default=300.0, gt=0, description="Alertmanager's wait before notifying a group's new alerts."
    )

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

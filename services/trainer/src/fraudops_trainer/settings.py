"""Settings of the trainer service (environment prefix FRAUDOPS_TRAINER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fraudops.settings import ALL_ACTIONS, ServiceSettings


class TrainerSettings(ServiceSettings):
    """Training jobs: features, split, XGBoost, evaluation, MLflow logging and registration."""

    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_TRAINER_")

    service_name: ClassVar[str] = "trainer"
    actions: ClassVar[tuple[str, ...]] = ("training:run", "training:cancel")

    port: int = Field(default=8002, ge=1, le=65535, description="Port the HTTP server listens on.")
    scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"operator": [ALL_ACTIONS], "airflow": ["training:run"]},
        description="Actions each principal may take (`*`: all); every principal of TOKENS needs an entry, and a "
        "request for an action not granted gets 403. Setting it replaces the whole table. By default the operator may do everything, Airflow's DAGs start training jobs.",
    )
    mlflow_tracking_uri: str = Field(default="http://127.0.0.1:5000", description="MLflow tracking server.")
    # Ingest's dataset endpoints are read-only, so no token is needed.
    ingest_url: str = Field(
        default="http://127.0.0.1:8001", description="Ingest service, where datasets are looked up."
    )
    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///trainer.db"),
        description="Where training jobs are kept: SQLite or Postgres URL (a SQLite file in the working directory by default).",
    )
    experiment: str = Field(
        default="fraud-detection", min_length=1, max_length=200, description="MLflow experiment runs are logged to."
    )
    model_name: str = Field(
        default="fraud-detector",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Registered model new versions are added to.",
    )

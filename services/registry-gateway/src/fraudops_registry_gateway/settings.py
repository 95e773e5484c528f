"""Settings of the registry-gateway service (environment prefix FRAUDOPS_REGISTRY_GATEWAY_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fraudops.settings import KafkaSettings, ServiceSettings


class GateSettings(BaseModel):
    """The quality gate a version must pass before it may serve (FRAUDOPS_REGISTRY_GATEWAY_GATE__...)."""

    min_average_precision: float = Field(default=0.25, ge=0, le=1)
    min_roc_auc: float = Field(default=0.75, ge=0, le=1)
    min_card_precision_at_100: float = Field(default=0.1, ge=0, le=1)
    # How much average precision a candidate may lose against the champion on the same data: a small
    # allowance keeps retraining on fresh data possible when both models are equally good within noise.
    max_average_precision_drop: float = Field(default=0.02, ge=0, le=1)


class RegistryGatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_REGISTRY_GATEWAY_")

    service_name: ClassVar[str] = "registry-gateway"

    port: int = Field(default=8005, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    # Failing fast matters more than riding out a blip: a caller gets 503 and retries, while MLflow's own
    # default (7 retries with exponential backoff) would hold a request for minutes.
    mlflow_request_retries: int = Field(default=2, ge=0, le=10)
    mlflow_request_timeout_s: int = Field(default=15, ge=1, le=600)
    # Audit log, outbox and per-model lock rows (SQLite or Postgres URL).
    database_url: SecretStr = SecretStr("sqlite:///registry-gateway.db")
    gate: GateSettings = GateSettings()
    # What a version's `source` may start with; anything else (s3://, file://, http://) is outside the store.
    allowed_source_prefixes: list[str] = Field(
        default_factory=lambda: ["mlflow-artifacts:/", "models:/", "runs:/"], min_length=1
    )
    # Where runs:/ and models:/ sources must finally resolve to: the artifact store MLflow serves.
    artifact_store_prefixes: list[str] = Field(default_factory=lambda: ["mlflow-artifacts:/"], min_length=1)
    model_events_topic: str = "model-events"
    outbox_poll_interval_s: float = Field(default=2.0, gt=0, le=300)
    outbox_max_backoff_s: float = Field(default=30.0, gt=0, le=3600)

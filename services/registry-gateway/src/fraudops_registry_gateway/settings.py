"""Settings of the registry-gateway service (environment prefix FRAUDOPS_REGISTRY_GATEWAY_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fraudops.settings import ALL_ACTIONS, KafkaSettings, ServiceSettings


class GateSettings(BaseModel):
    """The quality gate a version must pass before it may serve (FRAUDOPS_REGISTRY_GATEWAY_GATE__...)."""

    min_average_precision: float = Field(
        default=0.25, ge=0, le=1, description="Lowest average precision a version may be promoted with."
    )
    min_roc_auc: float = Field(default=0.75, ge=0, le=1, description="Lowest ROC AUC a version may be promoted with.")
    min_card_precision_at_100: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Lowest card precision@100 (share of each day's 100 riskiest cards that were fraud) a version may "
        "be promoted with.",
    )
    # A small allowance keeps retraining on fresh data possible when both models are equally good within noise.
    max_average_precision_drop: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Average precision a candidate may lose against the champion on the same data.",
    )


class RegistryGatewaySettings(ServiceSettings):
    """The only writer of model aliases: promotion through quality gates, rollback, audit log, model events."""

    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_REGISTRY_GATEWAY_")

    service_name: ClassVar[str] = "registry-gateway"
    actions: ClassVar[tuple[str, ...]] = ("models:validate", "models:promote", "models:rollback", "models:fallback")

    port: int = Field(default=8005, ge=1, le=65535, description="Port the HTTP server listens on.")
    scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "operator": [ALL_ACTIONS],
            "airflow": ["models:validate", "models:promote"],
            "monitor": ["models:rollback", "models:fallback"],
        },
        description="Actions each principal may take (`*`: all); every principal of TOKENS needs an entry, and a "
        "request for an action not granted gets 403. Setting it replaces the whole table. By default the operator may do everything, Airflow's DAGs validate and promote, the monitor rolls back and switches to the rules.",
    )
    kafka: KafkaSettings = KafkaSettings()
    mlflow_tracking_uri: str = Field(
        default="http://127.0.0.1:5000", description="MLflow tracking server and registry."
    )
    # Failing fast matters more than riding out a blip: a caller gets 503 and retries, while MLflow's own
    # default (7 retries with exponential backoff) would hold a request for minutes.
    mlflow_request_retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed MLflow request.")
    mlflow_request_timeout_s: int = Field(default=15, ge=1, le=600, description="Timeout of one MLflow request.")
    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///registry-gateway.db"),
        description="Audit log, outbox and per-model locks: SQLite or Postgres URL "
        "(a SQLite file in the working directory by default).",
    )
    gate: GateSettings = GateSettings()
    # Anything else (s3://, file://, http://) is outside the store.
    allowed_source_prefixes: list[str] = Field(
        default_factory=lambda: ["mlflow-artifacts:/", "models:/", "runs:/"],
        min_length=1,
        description="What a model version's `source` may start with.",
    )
    artifact_store_prefixes: list[str] = Field(
        default_factory=lambda: ["mlflow-artifacts:/"],
        min_length=1,
        description="Where runs:/ and models:/ sources must finally resolve to: the artifact store MLflow serves.",
    )
    model_events_topic: str = Field(default="model-events", description="Kafka topic model events are published to.")
    outbox_poll_interval_s: float = Field(
        default=2.0, gt=0, le=300, description="How often the outbox is checked for events to publish."
    )
    outbox_max_backoff_s: float = Field(
        default=30.0, gt=0, le=3600, description="Longest wait between retries while publishing fails."
    )

"""Settings of the scorer service (environment prefix FRAUDOPS_SCORER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from fraudops.settings import ALL_ACTIONS, KafkaSettings, ServiceSettings


class FallbackRules(BaseModel):
    """The rules that score when no model can (FRAUDOPS_SCORER_RULES__...): amount and velocity thresholds."""

    review_amount: float = Field(default=500.0, gt=0, description="Amount from which a payment is reviewed.")
    decline_amount: float = Field(default=2_000.0, gt=0, description="Amount from which a payment is declined.")
    review_payments_per_hour: int = Field(
        default=4, ge=1, description="Payments of the card within the last hour (this one included) that mean review."
    )
    decline_payments_per_hour: int = Field(
        default=8, ge=1, description="Payments of the card within the last hour (this one included) that mean decline."
    )

    @model_validator(mode="after")
    def _decline_is_stricter(self) -> FallbackRules:
        if self.decline_amount < self.review_amount:
            raise ValueError("rules: decline_amount must be at least review_amount")
        if self.decline_payments_per_hour < self.review_payments_per_hour:
            raise ValueError("rules: decline_payments_per_hour must be at least review_payments_per_hour")
        return self


class TopicSettings(BaseModel):
    """Kafka topic names (FRAUDOPS_SCORER_TOPICS__...)."""

    transactions: str = Field(default="transactions", description="Topic transactions are read from.")
    scores: str = Field(default="scores", description="Topic the champion's scores are written to.")
    shadow_scores: str = Field(default="scores.shadow", description="Topic a challenger's scores are written to.")
    labels: str = Field(default="labels", description="Topic labels are read from (for the features).")
    model_events: str = Field(default="model-events", description="Topic of the registry gateway's model events.")
    dead_letters: str = Field(default="transactions.dlq", description="Topic unreadable transactions are moved to.")


class ScorerSettings(ServiceSettings):
    """Scores transactions from Kafka and on POST /v1/score."""

    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_SCORER_")

    service_name: ClassVar[str] = "scorer"
    actions: ClassVar[tuple[str, ...]] = ("transactions:score",)

    port: int = Field(default=8003, ge=1, le=65535, description="Port the HTTP server listens on.")
    scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"operator": [ALL_ACTIONS]},
        description="Actions each principal may take (`*`: all); every principal of TOKENS needs an entry, and a "
        "request for an action not granted gets 403. Setting it replaces the whole table. By default the operator may do everything.",
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    group_id: str = Field(default="scorer", description="Kafka consumer group of the scoring workers.")
    consume: bool = Field(
        default=True, description="Score the transactions topic; false for a scorer that only answers POST /v1/score."
    )
    max_batch: int = Field(default=2_000, ge=1, le=50_000, description="Most transactions scored in one batch.")
    poll_timeout_ms: int = Field(default=100, ge=1, le=10_000, description="Longest wait for a batch from Kafka.")
    drain_wait_ms: int = Field(
        default=5,
        ge=0,
        le=1_000,
        description="After a batch arrives, how long to wait for the records the client fetched meanwhile, so they "
        "are scored with it instead of one batch later (0: not at all; costs up to this much when traffic is idle).",
    )
    # 0 gives exact features at the cost of one offsets request per batch.
    state_staleness_ms: int = Field(
        default=0,
        ge=0,
        le=600_000,
        description="How far (wall clock) the shared state (labels, other instances' partitions) may trail the log "
        "when a batch is scored; 0 waits until it has read everything written before the batch was fetched.",
    )
    # The same rule as ingest's, for payments written to the topic directly. Every instance must use the same
    # value: the state rebuilt from the log applies it again.
    max_future_skew_s: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How far a payment's event time may be ahead of the time it was written to Kafka (or reached "
        "POST /v1/score); later ones are dead-lettered (or refused with 422).",
    )
    state_late_slack_hours: int = Field(
        default=7 * 24,
        ge=0,
        le=24 * 90,
        description="How far (event time) a payment may trail the newest one seen and still get exact features: "
        "history kept beyond what the features look back on.",
    )
    state_rebuild_margin_hours: int = Field(
        default=24,
        ge=0,
        le=24 * 30,
        description="Log read at start to rebuild the state, beyond what the features look back on.",
    )

    mlflow_tracking_uri: str = Field(
        default="http://127.0.0.1:5000", description="MLflow tracking server and registry."
    )
    mlflow_request_retries: int = Field(default=1, ge=0, le=10, description="Retries of a failed MLflow request.")
    mlflow_request_timeout_s: int = Field(default=10, ge=1, le=600, description="Timeout of one MLflow request.")
    model_name: str = Field(default="fraud-detector", description="Registered model whose aliases are served.")
    # A safety net next to model events.
    model_refresh_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often the registry is asked again for the served versions (and a failed load retried).",
    )
    reason_count: int = Field(default=3, ge=0, le=20, description="Reason codes given with a score.")
    # XGBoost's per-feature contributions cost ~13 µs per row, so by default only reviewed and declined
    # payments carry them.
    reasons_for_approved: bool = Field(default=False, description="Give reason codes to approved payments too.")
    rules: FallbackRules = FallbackRules()
    max_score_batch: int = Field(
        default=1_000, ge=1, le=10_000, description="Most transactions in one POST /v1/score request."
    )

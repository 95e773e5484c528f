"""Settings of the scorer service (environment prefix FRAUDOPS_SCORER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from fraudops.settings import KafkaSettings, ServiceSettings


class FallbackRules(BaseModel):
    """The rules that score when no model can (FRAUDOPS_SCORER_RULES__...): amount and velocity thresholds."""

    review_amount: float = Field(default=500.0, gt=0)
    decline_amount: float = Field(default=2_000.0, gt=0)
    # Payments of the same card within the last hour, this one included.
    review_payments_per_hour: int = Field(default=4, ge=1)
    decline_payments_per_hour: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _decline_is_stricter(self) -> FallbackRules:
        if self.decline_amount < self.review_amount:
            raise ValueError("rules: decline_amount must be at least review_amount")
        if self.decline_payments_per_hour < self.review_payments_per_hour:
            raise ValueError("rules: decline_payments_per_hour must be at least review_payments_per_hour")
        return self


class TopicSettings(BaseModel):
    transactions: str = "transactions"
    scores: str = "scores"
    shadow_scores: str = "scores.shadow"
    labels: str = "labels"
    model_events: str = "model-events"
    dead_letters: str = "transactions.dlq"


class ScorerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_SCORER_")

    service_name: ClassVar[str] = "scorer"

    port: int = Field(default=8003, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    group_id: str = "scorer"
    # Off for a scorer that only answers POST /v1/score.
    consume: bool = True
    max_batch: int = Field(default=2_000, ge=1, le=50_000)
    poll_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    # How far (wall-clock ms) the shared state (labels, other instances' partitions) may trail the log when a
    # batch is scored. 0 waits until it has read everything written before the batch was fetched: exact
    # features at the cost of one offsets request per batch.
    state_staleness_ms: int = Field(default=0, ge=0, le=600_000)
    # How far (event time) a payment may trail the newest one the state has seen and still get exact
    # features: the state keeps this much history beyond what the features look back on.
    state_late_slack_hours: int = Field(default=7 * 24, ge=0, le=24 * 90)
    # How much of the log the state is rebuilt from at start, beyond what the features look back on.
    state_rebuild_margin_hours: int = Field(default=24, ge=0, le=24 * 30)

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    mlflow_request_retries: int = Field(default=1, ge=0, le=10)
    mlflow_request_timeout_s: int = Field(default=10, ge=1, le=600)
    model_name: str = "fraud-detector"
    # Safety net next to model events: how often the registry is asked again (and a failed load retried).
    model_refresh_interval_s: float = Field(default=30.0, gt=0, le=3600)
    # Reason codes: how many, and whether approved payments get them too (XGBoost's per-feature
    # contributions cost ~13 µs per row, so by default only reviewed and declined payments carry them).
    reason_count: int = Field(default=3, ge=0, le=20)
    reasons_for_approved: bool = False
    rules: FallbackRules = FallbackRules()
    max_score_batch: int = Field(default=1_000, ge=1, le=10_000)

"""Settings of the monitor service (environment prefix FRAUDOPS_MONITOR_)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from fraudops.features import FEATURE_NAMES
from fraudops.settings import ALL_ACTIONS, KafkaSettings, ServiceSettings, check_secret


class TopicSettings(BaseModel):
    """Kafka topic names (FRAUDOPS_MONITOR_TOPICS__...)."""

    transactions: str = Field(default="transactions", description="Topic transactions are read from.")
    scores: str = Field(default="scores", description="Topic the scorer's scores are read from.")
    labels: str = Field(default="labels", description="Topic labels are read from.")


class WindowSettings(BaseModel):
    """What the live side of a comparison holds (FRAUDOPS_MONITOR_WINDOW__...)."""

    max_rows: int = Field(
        default=50_000, ge=100, le=1_000_000, description="Most transactions (the newest) in the drift window."
    )
    max_age_hours: float = Field(
        default=24.0, gt=0, le=24 * 90, description="Oldest transaction (event time) in the drift window."
    )
    # Below this many rows a drift figure is noise.
    min_rows: int = Field(default=1_000, ge=10, description="Fewest rows an evaluation needs; it waits for more.")
    # Labels arrive up to a month late.
    performance_days: float = Field(
        default=30.0, gt=0, le=400, description="How long (event time) scores are kept for joining late labels."
    )
    label_wait_hours: float = Field(
        default=24.0,
        gt=0,
        description="Event time after which a label whose transaction was not scored is counted unmatched.",
    )
    max_pending_labels: int = Field(
        default=1_000_000, ge=1_000, description="Most labels held while waiting for their transaction's score."
    )

    @model_validator(mode="after")
    def _min_below_max(self) -> WindowSettings:
        if self.min_rows > self.max_rows:
            raise ValueError("window: min_rows must not exceed max_rows")
        return self


class DriftSettings(BaseModel):
    """How Evidently judges drift (FRAUDOPS_MONITOR_DRIFT__...). Both methods are distances: higher is more drift."""

    numerical_method: str = Field(default="wasserstein", description="Evidently drift method of numerical features.")
    categorical_method: str = Field(
        default="jensenshannon", description="Evidently drift method of categorical features."
    )
    threshold: float = Field(default=0.1, gt=0, le=1, description="Distance above which a feature counts as drifted.")
    dataset_drift_share: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Share of drifted features at which the dataset counts as drifted (the alert rule has its own).",
    )
    # Card testing and account takeover show first as bursts of payments within the hour. (The one-day
    # count is no sentinel: moving payments to the night shifts it too.)
    sentinel_features: tuple[str, ...] = Field(
        default=("customer_nb_tx_1h",),
        description="Features whose drift hints at a new way of committing fraud rather than a change of customers.",
    )
    # The weekend flag follows the calendar, so a one-day window always differs from a week-long reference.
    ignored_features: tuple[str, ...] = Field(default=("is_weekend",), description="Features left out of drift.")

    @field_validator("sentinel_features", "ignored_features")
    @classmethod
    def _known_features(cls, features: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(features) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown sentinel feature(s) {unknown}; features are {list(FEATURE_NAMES)}")
        return features


class ActionKind(StrEnum):
    REPORT = "report"
    RETRAIN = "retrain"
    ROLLBACK = "rollback"
    FALLBACK = "fallback"


class PolicySettings(BaseModel):
    """Which workflow an alert starts (FRAUDOPS_MONITOR_POLICY__...)."""

    by_alertname: dict[str, ActionKind] = Field(
        default={
            "FraudDataDrift": ActionKind.REPORT,
            "FraudPredictionDrift": ActionKind.REPORT,
            "FraudNewPatternDrift": ActionKind.RETRAIN,
            "FraudLiveAccuracyLow": ActionKind.RETRAIN,
            "FraudLiveAccuracyCollapse": ActionKind.ROLLBACK,
        },
        description="Action of an alert, by alert name (looked up first).",
    )
    by_category: dict[str, ActionKind] = Field(
        default={
            "drift": ActionKind.REPORT,
            "accuracy": ActionKind.RETRAIN,
            "operational": ActionKind.REPORT,
        },
        description="Action of an alert by its `category` label, when its name is not in the table above.",
    )
    accuracy_floor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Live average precision below which data drift counts as accuracy loss: retrain, not report.",
    )
    # One incident, one action.
    cooldown_s: float = Field(
        default=6 * 3600, ge=0, description="An action of the same kind for the same model is not repeated within this."
    )
    # Reports are cheap, but an alert that flaps should not fill the disk.
    report_cooldown_s: float = Field(default=600, ge=0, description="Least time between two reports for one alert.")


class AirflowSettings(BaseModel):
    """Airflow's REST API, for the retraining DAG (FRAUDOPS_MONITOR_AIRFLOW__...). No URL: retraining is refused."""

    url: str | None = Field(default=None, description="Airflow's base URL; unset, retraining is refused.")
    username: str = Field(default="admin", description="Airflow user the monitor signs in as.")
    retrain_dag_id: str = Field(default="fraud_retrain_on_alert", description="DAG a retraining action triggers.")
    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one request to Airflow.")
    # The trainer places train, delay and test weeks (7 + 7 + 7 by default) at the end of its dataset and
    # computes features from the dataset alone: the 38 days before them (30-day windows after a 7-day label
    # delay, and a day) must be in it too, or the training rows get the features of customers without a past.
    retrain_window_days: int = Field(
        default=59,
        ge=1,
        le=365,
        description="Days of data before the alert that retraining builds its dataset from: the features' 38-day "
        "horizon plus the training protocol's train, delay and test days.",
    )
    retrain_conf: dict[str, Any] = Field(
        default={},
        description="More of the retraining run's conf (e.g. {\"auto_promote\": false}); the monitor's own keys "
        "(action_id, reason, alerts, window) win.",
    )


class MonitorSettings(ServiceSettings):
    """Drift and live-accuracy monitoring, /metrics for Prometheus, and the alert webhook's actions."""

    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_MONITOR_")

    service_name: ClassVar[str] = "monitor"
    actions: ClassVar[tuple[str, ...]] = ("reports:create", "alerts:receive", "actions:report")

    port: int = Field(default=8004, ge=1, le=65535, description="Port the HTTP server listens on.")
    scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "operator": [ALL_ACTIONS],
            "alertmanager": ["alerts:receive"],
            "airflow": ["reports:create", "actions:report"],
        },
        description="Actions each principal may take (`*`: all); every principal of TOKENS needs an entry, and a "
        "request for an action not granted gets 403. Setting it replaces the whole table. By default the operator may do everything, Alertmanager posts alerts, Airflow's DAGs ask for reports and report how the workflows the monitor started ended.",
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    consume: bool = Field(
        default=True,
        description="Read transactions, scores and labels; false for a monitor that only serves reports and "
        "receives alerts (tests, a read-only replica).",
    )
    # The scorer's rule (it dead-letters these payments): the drift window holds what was scored.
    max_future_skew_s: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How far a payment's event time may be ahead of the time its message was written to Kafka; "
        "later ones are skipped and counted as unreadable.",
    )
    max_batch: int = Field(default=5_000, ge=1, le=100_000, description="Most messages read from Kafka at once.")
    label_delay_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="Delay before a label counts in the terminal risk features (as in training).",
    )
    window: WindowSettings = WindowSettings()
    drift: DriftSettings = DriftSettings()
    evaluation_interval_s: float = Field(default=60.0, gt=0, description="How often (wall clock) an evaluation runs.")
    # A replay of simulated days runs faster than the wall clock.
    evaluate_every_transactions: int = Field(
        default=0, ge=0, description="Also evaluate after this many new transactions; 0: never by count."
    )
    evaluation_max_lag: int = Field(
        default=5_000,
        ge=0,
        description="Scheduled evaluations wait while the consumer is further behind the log's end than this (messages).",
    )
    keep_every_report: bool = Field(
        default=False,
        description="Keep an Evidently report of every evaluation, not only those asked for or set off by an alert.",
    )
    max_reports: int = Field(default=200, ge=1, description="Reports kept; the oldest are deleted beyond this.")
    data_dir: Path = Field(default=Path("monitor-data"), description="Folder of the monitor's reports and state.")

    mlflow_tracking_uri: str = Field(
        default="http://127.0.0.1:5000", description="MLflow tracking server and registry."
    )
    model_name: str = Field(default="fraud-detector", description="Registered model that is watched.")
    model_alias: str = Field(default="champion", description="Alias of the version that is watched.")
    model_refresh_interval_s: float = Field(
        default=60.0, gt=0, description="How often the registry is asked which version the alias points to."
    )

    gateway_url: str = Field(
        default="http://127.0.0.1:8005", description="Registry gateway, which rollback and fallback actions call."
    )
    gateway_token: SecretStr | None = Field(
        default=None, description="Bearer token for the registry gateway; unset, rollback and fallback actions fail."
    )
    airflow: AirflowSettings = AirflowSettings()
    airflow_password: SecretStr | None = Field(default=None, description="Password of the Airflow user.")
    policy: PolicySettings = PolicySettings()

    @field_validator("gateway_token", "airflow_password")
    @classmethod
    def _real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret("monitor credential", value.get_secret_value())
        return value

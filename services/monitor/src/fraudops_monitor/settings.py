"""Settings of the monitor service (environment prefix FRAUDOPS_MONITOR_)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from fraudops.features import FEATURE_NAMES
from fraudops.settings import KafkaSettings, ServiceSettings, check_secret


class TopicSettings(BaseModel):
    transactions: str = "transactions"
    scores: str = "scores"
    labels: str = "labels"


class WindowSettings(BaseModel):
    """What the live side of a comparison holds (FRAUDOPS_MONITOR_WINDOW__...)."""

    # The drift window: the newest transactions (event time), at most this many, at most this old.
    max_rows: int = Field(default=50_000, ge=100, le=1_000_000)
    max_age_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    # Below this many rows a drift figure is noise; the evaluation waits for more.
    min_rows: int = Field(default=1_000, ge=10)
    # Scores kept for joining late labels: labels arrive up to a month late, so keep that long (event time).
    performance_days: float = Field(default=30.0, gt=0, le=400)
    # A label whose transaction has not been scored after this much further event time is counted unmatched.
    label_wait_hours: float = Field(default=24.0, gt=0)
    max_pending_labels: int = Field(default=1_000_000, ge=1_000)

    @model_validator(mode="after")
    def _min_below_max(self) -> WindowSettings:
        if self.min_rows > self.max_rows:
            raise ValueError("window: min_rows must not exceed max_rows")
        return self


class DriftSettings(BaseModel):
    """How Evidently judges drift (FRAUDOPS_MONITOR_DRIFT__...). Both methods are distances: higher is more drift."""

    numerical_method: str = "wasserstein"
    categorical_method: str = "jensenshannon"
    threshold: float = Field(default=0.1, gt=0, le=1)
    # Share of drifted features at which the dataset counts as drifted (the alert rule has its own threshold).
    dataset_drift_share: float = Field(default=0.3, gt=0, le=1)
    # Features whose drift hints at a new way of committing fraud rather than a change of customers:
    # card testing and account takeover show first as bursts of payments within the hour. (The one-day
    # count is no sentinel: moving payments to the night shifts it too.)
    sentinel_features: tuple[str, ...] = ("customer_nb_tx_1h",)
    # Left out of drift: the weekend flag follows the calendar, so a one-day window always differs from a
    # week-long reference.
    ignored_features: tuple[str, ...] = ("is_weekend",)

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

    # By alert name first, then by the alert's `category` label.
    by_alertname: dict[str, ActionKind] = {
        "FraudDataDrift": ActionKind.REPORT,
        "FraudPredictionDrift": ActionKind.REPORT,
        "FraudNewPatternDrift": ActionKind.RETRAIN,
        "FraudLiveAccuracyLow": ActionKind.RETRAIN,
        "FraudLiveAccuracyCollapse": ActionKind.ROLLBACK,
    }
    by_category: dict[str, ActionKind] = {
        "drift": ActionKind.REPORT,
        "accuracy": ActionKind.RETRAIN,
        "operational": ActionKind.REPORT,
    }
    # Data drift while live average precision is below this is accuracy loss too: retrain instead of a report.
    accuracy_floor: float = Field(default=0.5, ge=0, le=1)
    # One incident, one action: an action of the same kind for the same model is not repeated within this.
    cooldown_s: float = Field(default=6 * 3600, ge=0)
    # Reports are cheap, but an alert that flaps should not fill the disk.
    report_cooldown_s: float = Field(default=600, ge=0)


class AirflowSettings(BaseModel):
    """Airflow's REST API, for the retraining DAG (FRAUDOPS_MONITOR_AIRFLOW__...). No URL: retraining is refused."""

    url: str | None = None
    username: str = "admin"
    retrain_dag_id: str = "fraud_retrain_on_alert"
    timeout_s: float = Field(default=10.0, gt=0)
    # The retraining data window ends at the alert and reaches back this far.
    retrain_window_days: int = Field(default=28, ge=1, le=365)
    # More of the retraining run's conf (e.g. {"training": {...}}, {"auto_promote": false}); the monitor's own
    # keys (action_id, reason, alerts, window) win.
    retrain_conf: dict[str, Any] = {}


class MonitorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_MONITOR_")

    service_name: ClassVar[str] = "monitor"

    port: int = Field(default=8004, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    # Off for a monitor that only serves reports and receives alerts (tests, a read-only replica).
    consume: bool = True
    max_batch: int = Field(default=5_000, ge=1, le=100_000)
    label_delay_days: int = Field(default=7, ge=1, le=90)
    window: WindowSettings = WindowSettings()
    drift: DriftSettings = DriftSettings()
    # An evaluation runs this often (wall clock), and also after this many new transactions (0: never by count;
    # a replay of simulated days runs faster than the wall clock).
    evaluation_interval_s: float = Field(default=60.0, gt=0)
    evaluate_every_transactions: int = Field(default=0, ge=0)
    # Scheduled evaluations wait while the consumer is further behind the log's end than this (messages).
    evaluation_max_lag: int = Field(default=5_000, ge=0)
    # Keep an Evidently report of every evaluation, not only those asked for or set off by an alert.
    keep_every_report: bool = False
    max_reports: int = Field(default=200, ge=1)
    data_dir: Path = Path("monitor-data")

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    model_name: str = "fraud-detector"
    model_alias: str = "champion"
    model_refresh_interval_s: float = Field(default=60.0, gt=0)

    gateway_url: str = "http://127.0.0.1:8005"
    gateway_token: SecretStr | None = None
    airflow: AirflowSettings = AirflowSettings()
    airflow_password: SecretStr | None = None
    policy: PolicySettings = PolicySettings()

    @field_validator("gateway_token", "airflow_password")
    @classmethod
    def _real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret("monitor credential", value.get_secret_value())
        return value

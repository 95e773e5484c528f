"""Settings of the ingest service (environment prefix FRAUDOPS_INGEST_)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from fraudops.datasets import check_storage_uri
from fraudops.settings import ALL_ACTIONS, KafkaSettings, ServiceSettings


class IngestSettings(ServiceSettings):
    """REST intake of transactions, labels and datasets."""

    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_INGEST_")

    service_name: ClassVar[str] = "ingest"
    actions: ClassVar[tuple[str, ...]] = ("transactions:write", "labels:write", "datasets:write")

    port: int = Field(default=8001, ge=1, le=65535, description="Port the HTTP server listens on.")
    scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"operator": [ALL_ACTIONS], "airflow": ["datasets:write"]},
        description="Actions each principal may take (`*`: all); every principal of TOKENS needs an entry, and a "
        "request for an action not granted gets 403. Setting it replaces the whole table. By default the operator may do everything, Airflow's DAGs build datasets.",
    )
    kafka: KafkaSettings = KafkaSettings()
    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///ingest.db"),
        description="Where accepted transaction ids and labels are kept: SQLite or Postgres URL "
        "(a SQLite file in the working directory by default).",
    )
    staging_dir: str = Field(default="staging", description="Folder where uploads wait while they are validated.")
    # The URI is returned to clients, so it carries no credentials or options (see fraudops.datasets).
    datasets_uri: str = Field(
        default_factory=lambda: (Path.cwd() / "datasets").as_uri(),
        pattern=r"^(file|s3)://",
        description="Root of stored datasets: file:///abs/path or s3://bucket/prefix (S3 configured by the AWS_* "
        "variables); by default the folder `datasets` in the working directory.",
    )
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024, description="Largest dataset upload accepted.")
    upload_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="Longest time a dataset upload may take, streaming included; a slower one gets 504.",
    )
    max_batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="Most transactions or labels in one request."
    )
    max_amount: float = Field(default=1_000_000.0, gt=0, description="Largest transaction amount accepted.")
    # Card clocks drift; anything further ahead than this is a bad timestamp, not a payment.
    max_future_skew_s: int = Field(
        default=300, ge=0, le=86_400, description="How far ahead of now an event time may be."
    )
    earliest_event_time: datetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC), description="Event times before this are refused."
    )
    # A dataset cut from the stream reads every partition from its start, and a wider window holds more rows
    # in the worker's memory.
    max_stream_window_days: int = Field(
        default=120, ge=1, le=3650, description="Longest window one request may cut from the stream as a dataset."
    )

    @field_validator("datasets_uri")
    @classmethod
    def _datasets_uri_is_plain(cls, uri: str) -> str:
        return check_storage_uri(uri)

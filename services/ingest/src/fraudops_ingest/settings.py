"""Settings of the ingest service (environment prefix FRAUDOPS_INGEST_)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from fraudops.datasets import check_storage_uri
from fraudops.settings import KafkaSettings, ServiceSettings


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_INGEST_")

    service_name: ClassVar[str] = "ingest"

    port: int = Field(default=8001, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    # Where ingest remembers accepted transaction ids and keeps the label store (SQLite or Postgres URL).
    database_url: SecretStr = SecretStr("sqlite:///ingest.db")
    # Dataset uploads are staged here while they are validated, then removed.
    staging_dir: str = "staging"
    # Root of stored datasets: a local folder (file:///abs/path) or s3://bucket/prefix. It is returned to clients,
    # so it carries no credentials or options: S3 is configured by the AWS_* variables (see fraudops.datasets).
    datasets_uri: str = Field(default_factory=lambda: (Path.cwd() / "datasets").as_uri(), pattern=r"^(file|s3)://")
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    max_batch_size: int = Field(default=1000, ge=1, le=10_000)
    max_amount: float = Field(default=1_000_000.0, gt=0)
    # Card clocks drift; anything further ahead than this is a bad timestamp, not a payment.
    max_future_skew_s: int = Field(default=300, ge=0, le=86_400)
    earliest_event_time: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    # A dataset cut from the stream reads every partition from its start, and a wider window holds more rows
    # in the worker's memory: the longest window one request may ask for.
    max_stream_window_days: int = Field(default=120, ge=1, le=3650)

    @field_validator("datasets_uri")
    @classmethod
    def _datasets_uri_is_plain(cls, uri: str) -> str:
        return check_storage_uri(uri)

"""Settings of the ingest service (environment prefix FRAUDOPS_INGEST_)."""

from __future__ import annotations

from typing import ClassVar

from fraudops.settings import KafkaSettings, ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_INGEST_")

    service_name: ClassVar[str] = "ingest"

    port: int = Field(default=8001, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()

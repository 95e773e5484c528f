"""Settings of the scorer service (environment prefix FRAUDOPS_SCORER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fraudops.settings import KafkaSettings, ServiceSettings


class ScorerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_SCORER_")

    service_name: ClassVar[str] = "scorer"

    port: int = Field(default=8003, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()

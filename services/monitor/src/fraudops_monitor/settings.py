"""Settings of the monitor service (environment prefix FRAUDOPS_MONITOR_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fraudops.settings import KafkaSettings, ServiceSettings


class MonitorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_MONITOR_")

    service_name: ClassVar[str] = "monitor"

    port: int = Field(default=8004, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()

"""Settings of the registry-gateway service (environment prefix FRAUDOPS_REGISTRY_GATEWAY_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fraudops.settings import KafkaSettings, ServiceSettings


class RegistryGatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_REGISTRY_GATEWAY_")

    service_name: ClassVar[str] = "registry-gateway"

    port: int = Field(default=8005, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    mlflow_tracking_uri: str = "http://127.0.0.1:5000"

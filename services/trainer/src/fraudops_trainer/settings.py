"""Settings of the trainer service (environment prefix FRAUDOPS_TRAINER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fraudops.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_TRAINER_")

    service_name: ClassVar[str] = "trainer"

    port: int = Field(default=8002, ge=1, le=65535)
    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    # Datasets are looked up at ingest (read-only endpoints, no token needed).
    ingest_url: str = "http://127.0.0.1:8001"
    database_url: SecretStr = SecretStr("sqlite:///trainer.db")
    experiment: str = Field(default="fraud-detection", min_length=1, max_length=200)
    model_name: str = Field(default="fraud-detector", pattern=r"^[A-Za-z0-9._-]{1,100}$")

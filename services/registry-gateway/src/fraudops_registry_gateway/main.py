"""The registry-gateway service's FastAPI app."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.health import HttpProbe, KafkaProbe, Probe
from fraudops.service import create_service_app
from fraudops_registry_gateway.settings import RegistryGatewaySettings


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: RegistryGatewaySettings = app.state.settings
    return [
        HttpProbe("mlflow", settings.mlflow_tracking_uri.rstrip("/") + "/health"),
        KafkaProbe(settings.kafka.bootstrap_servers),
    ]


app = create_service_app(
    service=RegistryGatewaySettings.service_name,
    settings_cls=RegistryGatewaySettings,
    description="The only writer of model aliases in MLflow: promotion with quality gates, rollback, audit and model events.",
    startup=startup,
)

"""The ingest service's FastAPI app."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from fraudops.health import KafkaProbe, Probe
from fraudops.service import create_service_app

from fraudops_ingest.settings import IngestSettings


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: IngestSettings = app.state.settings
    return [KafkaProbe(settings.kafka.bootstrap_servers)]


app = create_service_app(
    service=IngestSettings.service_name,
    settings_cls=IngestSettings,
    description="REST intake of transactions, datasets and labels.",
    startup=startup,
)

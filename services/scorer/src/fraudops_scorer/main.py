"""The scorer service's FastAPI app."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.health import KafkaProbe, Probe
from fraudops.service import create_service_app
from fraudops_scorer.settings import ScorerSettings


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: ScorerSettings = app.state.settings
    return [KafkaProbe(settings.kafka.bootstrap_servers)]


app = create_service_app(
    service=ScorerSettings.service_name,
    settings_cls=ScorerSettings,
    description="Kafka consumer that scores every transaction, plus a synchronous scoring endpoint.",
    startup=startup,
)

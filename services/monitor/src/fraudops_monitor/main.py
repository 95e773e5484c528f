"""The monitor service's FastAPI app."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.health import KafkaProbe, Probe
from fraudops.service import create_service_app
from fraudops_monitor.settings import MonitorSettings


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: MonitorSettings = app.state.settings
    return [KafkaProbe(settings.kafka.bootstrap_servers)]


app = create_service_app(
    service=MonitorSettings.service_name,
    settings_cls=MonitorSettings,
    description="Drift and live-performance monitoring, Prometheus metrics, alert receiver and actions.",
    startup=startup,
)

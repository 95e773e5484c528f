"""The ingest service's FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.errors import DependencyUnavailableError
from fraudops.health import BlockingProbe, KafkaProbe, Probe
from fraudops.kafka import ManagedProducer
from fraudops.service import create_service_app
from fraudops_ingest.datasets.routes import router as datasets_router
from fraudops_ingest.datasets.runner import DatasetRunner
from fraudops_ingest.metrics import IngestMetrics
from fraudops_ingest.routes import router
from fraudops_ingest.settings import IngestSettings
from fraudops_ingest.store import DatasetCatalog, IngestStore


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: IngestSettings = app.state.settings
    app.state.store = IngestStore(settings.database_url.get_secret_value())
    await asyncio.to_thread(app.state.store.create_schema)
    app.state.ingest_metrics = IngestMetrics(app.state.metrics.registry)
    app.state.producer = ManagedProducer(settings.kafka, "ingest")
    with contextlib.suppress(DependencyUnavailableError):
        await app.state.producer.get()
    app.state.datasets = DatasetCatalog(app.state.store)
    app.state.dataset_runner = DatasetRunner(
        app.state.datasets, settings.datasets_uri, settings.max_amount, settings.kafka
    )
    app.state.dataset_runner.metrics_hook = app.state.ingest_metrics.record_dataset
    app.state.dataset_runner.start()
    await app.state.dataset_runner.resume_unfinished()
    return [
        KafkaProbe(settings.kafka.bootstrap_servers),
        BlockingProbe("database", app.state.store.ping, "ingest database"),
    ]


async def shutdown(app: FastAPI) -> None:
    await app.state.dataset_runner.stop()
    await app.state.producer.stop()
    app.state.store.engine.dispose()


app = create_service_app(
    service=IngestSettings.service_name,
    settings_cls=IngestSettings,
    description="REST intake of transactions, datasets and labels.",
    routers=[router, datasets_router],
    upload_limits={"/v1/datasets": ("max_upload_bytes", "upload_timeout_s")},
    startup=startup,
    shutdown=shutdown,
)

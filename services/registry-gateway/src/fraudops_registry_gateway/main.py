"""The registry-gateway service's FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.errors import DependencyUnavailableError
from fraudops.health import BlockingProbe, HttpProbe, KafkaProbe, Probe
from fraudops.kafka import ManagedProducer
from fraudops.service import create_service_app
from fraudops_registry_gateway.metrics import GatewayMetrics
from fraudops_registry_gateway.operations import Operations
from fraudops_registry_gateway.outbox import OutboxPublisher
from fraudops_registry_gateway.registry import MlflowRegistry, configure_mlflow_client
from fraudops_registry_gateway.routes import router
from fraudops_registry_gateway.settings import RegistryGatewaySettings
from fraudops_registry_gateway.store import GatewayStore
from fraudops_registry_gateway.validation import Validator

DESCRIPTION = (
    "The only writer of model aliases in MLflow: promotion with quality gates, rollback, audit and model events."
)


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: RegistryGatewaySettings = app.state.settings
    configure_mlflow_client(
        settings.mlflow_tracking_uri, settings.mlflow_request_retries, settings.mlflow_request_timeout_s
    )
    store = GatewayStore(settings.database_url.get_secret_value(), settings.model_events_topic)
    await asyncio.to_thread(store.create_schema)
    metrics = GatewayMetrics(app.state.metrics.registry)
    registry = MlflowRegistry(settings.mlflow_tracking_uri)
    producer = ManagedProducer(settings.kafka, "registry-gateway")
    with contextlib.suppress(DependencyUnavailableError):
        await producer.get()
    publisher = OutboxPublisher(
        store,
        producer,
        metrics,
        poll_interval_s=settings.outbox_poll_interval_s,
        max_backoff_s=settings.outbox_max_backoff_s,
        send_timeout_s=settings.kafka.request_timeout_ms / 1000 + 5,
    )
    # Events a previous process recorded but could not deliver go out first.
    publisher.start()
    app.state.store = store
    app.state.registry = registry
    app.state.producer = producer
    app.state.publisher = publisher
    app.state.operations = Operations(registry, store, Validator(registry, settings), metrics, publisher.wake)
    return [
        HttpProbe("mlflow", settings.mlflow_tracking_uri.rstrip("/") + "/health"),
        KafkaProbe(settings.kafka.bootstrap_servers),
        BlockingProbe("database", store.ping, "registry-gateway database"),
    ]


async def shutdown(app: FastAPI) -> None:
    await app.state.publisher.stop()
    await app.state.producer.stop()
    app.state.store.engine.dispose()


app = create_service_app(
    service=RegistryGatewaySettings.service_name,
    settings_cls=RegistryGatewaySettings,
    description=DESCRIPTION,
    routers=[router],
    startup=startup,
    shutdown=shutdown,
)
